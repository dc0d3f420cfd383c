//! `/openapi.json` tells the truth: what it calls valid is accepted, what it
//! calls invalid is refused, and every answer is one it lists. Each test
//! pins one place where schemathesis (`scripts/schemathesis.sh`) found the
//! document and the server disagreeing, and the server was the one to move.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn whole_numbers_written_with_a_decimal_point_are_the_same_amounts() {
    let app = spawn_app().await;
    let c = app
        .create_campaign(json!({
            "discount": {"type": "percent", "percent": 10.0, "max_amount": 5e3},
            "min_order_amount": 30000.0,
            "total_quantity": 100.0,
            "per_user_limit": 2.0,
            "valid_days": 30.0
        }))
        .await;
    assert_eq!(
        (
            &c["discount"],
            &c["total_quantity"],
            &c["per_user_limit"],
            &c["valid_days"]
        ),
        (
            &json!({"type": "percent", "percent": 10, "max_amount": 5000}),
            &json!(100),
            &json!(2),
            &json!(30)
        )
    );
    let (_, token) = app.signup("kim@example.com").await;
    let coupon = body(app.issue(c["id"].as_str().unwrap(), &token, None).await).await;
    let used = app
        .post_json(
            &format!("/api/v1/coupons/{}/use", coupon["id"].as_str().unwrap()),
            Some(&token),
            &json!({"order_id": "A-1", "order_amount": 40000.0}),
        )
        .await;
    assert_eq!(used.status(), StatusCode::OK);
    let used = body(used).await;
    assert_eq!(
        (&used["discount_amount"], &used["payable_amount"]),
        (&json!(4000), &json!(36000))
    );
    let r = app
        .post_json(
            "/api/v1/admin/users/bulk",
            Some(&app.admin),
            &json!({"count": 2.0, "email_prefix": "float", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["users"].as_array().unwrap().len(), 2);
    // A fraction is still no amount.
    let r = app
        .post_json(
            "/api/v1/campaigns",
            Some(&app.admin),
            &app.campaign_body(json!({"per_user_limit": 1.5})),
        )
        .await;
    let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    assert!(message.contains("per_user_limit"), "{message}");
}

#[tokio::test]
async fn an_email_is_taken_as_written_with_nothing_trimmed() {
    let app = spawn_app().await;
    for bad in [
        " kim@example.com",
        "kim@example.com ",
        "kim@example.com\u{a0}",
        "kim\u{85}@example.com",
    ] {
        let r = app
            .post_json(
                "/api/v1/auth/signup",
                None,
                &json!({"email": bad, "password": "password-123"}),
            )
            .await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(message.contains("email"), "{bad:?}: {message}");
    }
    // A bulk prefix too: the Kelvin sign lower-cases to an ASCII `k`.
    let r = app
        .post_json(
            "/api/v1/admin/users/bulk",
            Some(&app.admin),
            &json!({"count": 1, "email_prefix": "\u{212a}im", "password": "password-123"}),
        )
        .await;
    let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    assert!(message.contains("email_prefix"), "{message}");
    app.signup("Kim@Example.com").await;
    for (email, status) in [
        ("kim@example.com", StatusCode::OK),
        (" kim@example.com", StatusCode::UNAUTHORIZED),
    ] {
        let r = app
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"email": email, "password": "password-123"}),
            )
            .await;
        assert_eq!(r.status(), status, "{email:?}");
    }
}

#[tokio::test]
async fn times_from_clients_are_rfc3339_with_a_year_from_2000_to_2999_as_written() {
    let app = spawn_app().await;
    for (field, value) in [
        ("issue_ends_at", "3000-01-01T00:00:00Z"),
        ("issue_starts_at", "1999-12-31T23:59:59Z"),
        ("issue_ends_at", "2099-01-01t00:00:00Z"),
        ("issue_ends_at", "2099-01-01 00:00:00Z"),
        ("issue_ends_at", "2099-01-01T00:00:60Z"),
        ("issue_ends_at", "2099-02-30T00:00:00Z"),
    ] {
        let r = app
            .post_json(
                "/api/v1/campaigns",
                Some(&app.admin),
                &app.campaign_body(json!({ field: value })),
            )
            .await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(message.contains(field), "{value}: {message}");
    }
    // The year as written decides, whatever it is in UTC.
    let c = app
        .create_campaign(json!({
            "issue_starts_at": "2000-01-01T05:00:00+09:00",
            "issue_ends_at": "2999-12-31T23:00:00.123456789-05:00"
        }))
        .await;
    assert_eq!(c["issue_starts_at"], "1999-12-31T20:00:00Z");
    assert_eq!(c["issue_ends_at"], "3000-01-01T04:00:00.123Z");
}

#[tokio::test]
async fn a_campaign_name_is_counted_as_sent_before_its_ends_are_trimmed() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/campaigns",
            Some(&app.admin),
            &app.campaign_body(json!({"name": format!("{} ", "x".repeat(200))})),
        )
        .await;
    let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    assert!(message.contains("name"), "{message}");
    let c = app.create_campaign(json!({"name": "  padded  "})).await;
    assert_eq!(c["name"], "padded");
}

#[tokio::test]
async fn a_webhook_url_has_the_documented_shape_and_is_kept_as_written() {
    let app = spawn_app().await;
    let register = |url: String| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/admin/webhooks",
                Some(&app.admin),
                &json!({"url": url, "events": ["coupon.used"]}),
            )
            .await
        }
    };
    // 2048 characters as written, one more once normalised (`a?` becomes `a/?`).
    let longest = format!("http://A?{}", "0".repeat(2039));
    let r = register(longest.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["url"], longest.as_str());
    for bad in [
        format!("http://A?{}", "0".repeat(2040)),
        " https://shop.example/hook".to_owned(),
        "https://shop.example/hook ".to_owned(),
        "HTTPS://shop.example/hook".to_owned(),
        "http://999999999999/hook".to_owned(),
        "http://10.0.0.256/hook".to_owned(),
        "http://[::1]/hook".to_owned(),
        "http://shop.example:65536/hook".to_owned(),
        "http://user@shop.example/hook".to_owned(),
    ] {
        let message = assert_error(
            register(bad.clone()).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        assert!(message.contains("url"), "{bad}: {message}");
    }
    for good in [
        "https://shop.example:8443/hooks/flash?x=1#y",
        "http://10.0.0.5/hook",
    ] {
        assert_eq!(
            register(good.to_owned()).await.status(),
            StatusCode::CREATED
        );
    }
}

#[tokio::test]
async fn ids_and_cursors_are_only_spelled_the_way_the_api_writes_them() {
    let app = spawn_app().await;
    let c = app.create_campaign(json!({})).await;
    let id = c["id"].as_str().unwrap();
    let simple = id.replace('-', "");
    let braced = format!("{{{id}}}");
    assert_eq!(
        app.get(&format!("/api/v1/campaigns/{id}"), None)
            .await
            .status(),
        StatusCode::OK
    );
    assert_error(
        app.get(&format!("/api/v1/campaigns/{braced}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let winners = format!("/api/v1/admin/campaigns/{id}/winners");
    let many = vec![id; 51].join(",");
    for (path, token) in [
        (format!("/api/v1/campaigns?before={simple}"), None),
        (format!("/api/v1/campaigns?before={braced}"), None),
        (format!("{winners}?after=1000000001"), Some(&app.admin)),
        (format!("{winners}?after=%2B5"), Some(&app.admin)),
        (format!("/api/v1/live?campaigns=%20{id}"), None),
        (format!("/api/v1/live?campaigns={many}"), None),
    ] {
        let r = app.get(&path, token.map(String::as_str)).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
    for after in ["123456789", "1000000000"] {
        let r = app
            .get(&format!("{winners}?after={after}"), Some(&app.admin))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "after={after}");
    }
    let (_, shopper) = app.signup("kim@example.com").await;
    for (ids, status) in [
        (
            json!([uuid::Uuid::now_v7().simple().to_string()]),
            StatusCode::BAD_REQUEST,
        ),
        (json!([uuid::Uuid::now_v7().to_string()]), StatusCode::OK),
    ] {
        let r = app
            .post_json(
                "/api/v1/me/notifications/read",
                Some(&shopper),
                &json!({ "ids": ids }),
            )
            .await;
        assert_eq!(r.status(), status, "{ids}");
    }
}

#[tokio::test]
async fn the_document_marks_the_admin_operations_and_a_shopper_gets_403_from_each() {
    let app = spawn_app().await;
    let (_, shopper) = app.signup("kim@example.com").await;
    let doc = body(app.get("/openapi.json", None).await).await;
    assert!(
        doc["paths"].get("/api/v1/notifications/ws").is_none(),
        "a WebSocket is no request and answer"
    );
    let mut admin_only = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"] != json!([{"bearer": ["admin"]}]) {
                continue;
            }
            admin_only += 1;
            assert!(
                op["responses"].get("403").is_some(),
                "{method} {path} lists 403"
            );
            let url = app.url(&path.replace("{id}", &uuid::Uuid::now_v7().to_string()));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .client
                .request(method.clone(), url)
                .bearer_auth(&shopper)
                .json(&Value::Object(Default::default()))
                .send()
                .await
                .unwrap();
            assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
    // Campaigns (create, patch), bulk users, webhooks (5), the dashboard (3),
    // service keys (3), payment events, codes (job, its progress, a
    // campaign's jobs, the CSV), trigger events (post, read), points (a
    // user's balance and history, earn, spend, refund, hold, confirm and
    // release it, adjust, the user look-up), sales (create, patch, summary),
    // summaries (a campaign's, a user's, the overview).
    assert_eq!(admin_only, 38, "every admin route is marked");
}
