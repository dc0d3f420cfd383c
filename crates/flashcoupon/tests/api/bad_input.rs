//! Whatever arrives, bad input gets a clear 4xx and changes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn absurd_campaigns_are_400_naming_the_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases = [
        (json!({"total_quantity": 0}), "total_quantity"),
        (json!({"total_quantity": 1_000_000_001}), "total_quantity"),
        (json!({"total_quantity": -5}), "total_quantity"),
        (json!({"total_quantity": "many"}), "total_quantity"),
        (json!({"total_quantity": 1.5}), "total_quantity"),
        (json!({"per_user_limit": 0}), "per_user_limit"),
        (
            json!({"discount": {"type": "percent", "percent": 0}}),
            "discount",
        ),
        (
            json!({"discount": {"type": "percent", "percent": 101}}),
            "discount",
        ),
        (
            json!({"discount": {"type": "bogus", "amount": 5}}),
            "discount",
        ),
        (
            json!({"discount": {"type": "fixed", "amount": 0}}),
            "discount",
        ),
        (json!({"discount": {"type": "fixed"}}), "discount"),
        (
            json!({"issue_ends_at": "2020-01-01T00:00:00Z"}),
            "issue_ends_at",
        ),
        (json!({"issue_starts_at": "yesterday"}), "issue_starts_at"),
        (json!({"valid_days": null}), "valid_days"),
        (json!({"valid_until": "2099-01-01T00:00:00Z"}), "valid_days"),
        (json!({"valid_days": 0}), "valid_days"),
        (json!({"name": ""}), "name"),
        (json!({"name": null}), "name"),
        // Found by the campaign_json fuzz target: SQLite's length() stops at
        // a NUL (its CHECK refused the row: a 500) and PostgreSQL refuses
        // NUL in text altogether.
        (json!({"name": "\u{0}Black Friday"}), "name"),
        (json!({"name": "Black\nFriday"}), "name"),
        (json!({"min_order_amount": -1}), "min_order_amount"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (extra, field) in cases {
        let r = app
            .post_json(
                "/api/v1/campaigns",
                Some(&app.admin),
                &app.campaign_body(extra.clone()),
            )
            .await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(
            message.contains(field),
            "{extra}: message {message:?} names {field}"
        );
    }
    let list = body(app.get("/api/v1/campaigns", None).await).await;
    assert_eq!(list["campaigns"], json!([]), "nothing was written");
}

#[tokio::test]
async fn malformed_json_and_wrong_content_types_are_rejected() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/campaigns");
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    let r = app
        .client
        .post(&url)
        .bearer_auth(&app.admin)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let huge = json!({"email": "kim@example.com", "password": "x".repeat(200_000)});
    let r = app.post_json("/api/v1/auth/signup", None, &huge).await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "kim@example.com", "password": "password-123"}),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn a_flood_of_garbage_never_produces_a_500() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bodies = [
        "",
        "null",
        "{}",
        "[]",
        "\"x\"",
        "{\"a\":",
        "{\"order_id\": {\"$ne\": 1}}",
        "{\"paused\": null}",
        "9999999999999999999999",
    ];
    let paths = [
        format!("/api/v1/campaigns/{id}"),
        format!("/api/v1/campaigns/{id}/issue"),
        "/api/v1/campaigns".to_owned(),
        "/api/v1/auth/signup".to_owned(),
        "/api/v1/auth/login".to_owned(),
        "/api/v1/coupons/x/use".to_owned(),
        "/api/v1/admin/users/bulk".to_owned(),
    ];
    let mut issued = 0;
    for path in &paths {
        for b in bodies {
            for token in [&token, &app.admin] {
                for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
                    let r = app
                        .client
                        .request(method.clone(), app.url(path))
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        r.status().is_client_error() || r.status().is_success(),
                        "{method} {path} {b:?} gave {}",
                        r.status()
                    );
                    if r.status() == StatusCode::CREATED && path.ends_with("/issue") {
                        issued += 1;
                    }
                }
            }
        }
    }
    // The issue endpoint takes no body: each shopper got their one coupon, nothing else was issued.
    assert_eq!(issued, 2);
    let c = body(app.get(&format!("/api/v1/campaigns/{id}"), None).await).await;
    assert_eq!(c["issued_count"].as_i64(), Some(issued));
}

#[tokio::test]
async fn a_body_is_an_object_never_an_array_of_its_fields() {
    let app = spawn_app().await;
    // serde reads a struct from an array of its fields in order: the
    // sign-up below would have made an account.
    let as_array = json!(["array@example.com", "password-123"]);
    let r = app.post_json("/api/v1/auth/signup", None, &as_array).await;
    let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    assert!(message.contains("object"), "{message}");
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "array@example.com", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no account was made");
    // The same fields as an object are fine; whitespace before an array
    // does not hide it.
    let r = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body(" \n [\"array@example.com\", \"password-123\"]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.signup("array@example.com").await;
}
