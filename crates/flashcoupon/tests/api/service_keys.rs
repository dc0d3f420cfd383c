//! Service keys: created by an admin and shown once, used by a shop back end
//! for shop actions, refused at once when deleted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, spawn_app};

/// Create a key as the admin: (id, key).
pub async fn service_key(app: &TestApp, name: &str) -> (String, String) {
    let r = app
        .post_json(
            "/api/v1/admin/api-keys",
            Some(&app.admin),
            &json!({"name": name}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = body(r).await;
    (
        b["id"].as_str().unwrap().to_owned(),
        b["key"].as_str().unwrap().to_owned(),
    )
}

/// Delete a service key as the admin: `204`, refused at once after.
pub async fn delete_key(app: &TestApp, id: &str) {
    let r = delete(app, &format!("/api/v1/admin/api-keys/{id}"), &app.admin).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_is_shown_once_and_listed_without_it() {
    let app = spawn_app().await;
    let (id, key) = service_key(&app, "  order service ").await;
    assert!(key.starts_with("fck_") && key.len() == 68, "{key}");
    let (_, other) = service_key(&app, "payments").await;
    assert_ne!(key, other);

    let r = app.get("/api/v1/admin/api-keys", Some(&app.admin)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(&key[4..]) && !text.contains(&other[4..]),
        "a key was listed"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let keys = list["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["name"], "order service", "the name is trimmed");
    assert!(keys[0].get("key").is_none());
    assert!(keys[0].get("last_used_at").is_none(), "never used yet");
}

#[tokio::test]
async fn a_key_cancels_a_spend_and_is_refused_the_moment_it_is_deleted() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let campaign = app.create_campaign(json!({})).await;
    let r = app
        .issue(campaign["id"].as_str().unwrap(), &token, None)
        .await;
    let coupon = body(r).await;
    let coupon_id = coupon["id"].as_str().unwrap();
    let spend = json!({"order_id": "order-1", "order_amount": 50000});
    let r = app
        .post_json(
            &format!("/api/v1/coupons/{coupon_id}/use"),
            Some(&token),
            &spend,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let (id, key) = service_key(&app, "order service").await;
    let cancel = format!("/api/v1/coupons/{coupon_id}/cancel-use");
    let r = app
        .post_json(&cancel, Some(&key), &json!({"order_id": "order-1"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the shop's back end cancels");
    assert_eq!(body(r).await["status"], "available");
    let listed = body(app.get("/api/v1/admin/api-keys", Some(&app.admin)).await).await;
    // The use is noted off the request path: poll briefly.
    let mut used = listed["api_keys"][0]["last_used_at"].clone();
    for _ in 0..100 {
        if !used.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        used = body(app.get("/api/v1/admin/api-keys", Some(&app.admin)).await).await["api_keys"][0]
            ["last_used_at"]
            .clone();
    }
    assert!(used.is_string(), "last_used_at is noted");

    let r = delete(&app, &format!("/api/v1/admin/api-keys/{id}"), &app.admin).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post_json(&cancel, Some(&key), &json!({"order_id": "order-1"}))
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = delete(&app, &format!("/api/v1/admin/api-keys/{id}"), &app.admin).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn keys_have_no_shopper_or_admin_rights_and_shoppers_have_no_shop_rights() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "order service").await;
    // Not a shopper's or an admin's credential at all (and not looked up:
    // made-up keys on the claim path cost no record read).
    let r = app.get("/api/v1/me/coupons", Some(&key)).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app.get("/api/v1/admin/api-keys", Some(&key)).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Forged, truncated and unknown keys are not credentials.
    for bad in [
        format!("fck_{}", "0".repeat(64)),
        key[..40].to_owned(),
        format!("{key}0"),
        key.replace("fck_", "fck-"),
    ] {
        let r = app.get("/api/v1/me/coupons", Some(&bad)).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let (_, shopper) = app.signup("kim@example.com").await;
    let r = app
        .post_json(
            "/api/v1/admin/api-keys",
            Some(&shopper),
            &json!({"name": "mine"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post_json(
            &format!("/api/v1/coupons/{}/cancel-use", uuid::Uuid::now_v7()),
            Some(&shopper),
            &json!({"order_id": "order-1"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn bad_key_requests_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    for name in [
        json!(""),
        json!("   "),
        json!("x".repeat(101)),
        json!("a\u{0}b"),
        // A control character the trim would take off: refused, as the
        // schema's pattern says.
        json!("\u{c}key"),
        json!(7),
    ] {
        let r = app
            .post_json(
                "/api/v1/admin/api-keys",
                Some(&app.admin),
                &json!({"name": name}),
            )
            .await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(message.contains("name"), "{name}: {message}");
    }
    let r = app
        .post_json(
            "/api/v1/admin/api-keys",
            Some(&app.admin),
            &json!({"name": "ok", "role": "admin"}),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    // A malformed id names nothing that exists, like an unknown one.
    let r = delete(&app, "/api/v1/admin/api-keys/not-an-id", &app.admin).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = delete(
        &app,
        &format!("/api/v1/admin/api-keys/{}", uuid::Uuid::now_v7()),
        &app.admin,
    )
    .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let list = body(app.get("/api/v1/admin/api-keys", Some(&app.admin)).await).await;
    assert_eq!(list["api_keys"], json!([]), "nothing was written");
}
