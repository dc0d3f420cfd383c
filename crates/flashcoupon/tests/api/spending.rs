//! Spending a coupon and cancelling the spend.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, rfc3339, spawn_app};

/// A shopper holding one coupon of a campaign with `extra` terms: (token, coupon).
async fn holder(app: &TestApp, extra: Value) -> (String, Value) {
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(extra).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.issue(&id, &token, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    (token, body(r).await)
}

fn use_path(coupon: &Value) -> String {
    format!("/api/v1/coupons/{}/use", coupon["id"].as_str().unwrap())
}

fn cancel_path(coupon: &Value) -> String {
    format!(
        "/api/v1/coupons/{}/cancel-use",
        coupon["id"].as_str().unwrap()
    )
}

#[tokio::test]
async fn using_a_coupon_returns_the_discount_and_the_payable_amount() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A-1", "order_amount": 42000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    assert_eq!(
        (b["discount_amount"].as_i64(), b["payable_amount"].as_i64()),
        (Some(5000), Some(37000))
    );
    assert_eq!(
        (
            b["coupon"]["status"].as_str(),
            b["coupon"]["order_id"].as_str()
        ),
        (Some("used"), Some("A-1"))
    );
    assert!(b["coupon"]["used_at"].as_str().is_some());
}

#[tokio::test]
async fn the_same_order_again_replays_and_another_order_is_already_used() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    let first = body(
        app.post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A-1", "order_amount": 42000}),
        )
        .await,
    )
    .await;
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A-1", "order_amount": 42000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, first);
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "B-2", "order_amount": 42000}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "already_used").await;
}

#[tokio::test]
async fn concurrent_spends_on_different_orders_let_exactly_one_win() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    let path = use_path(&coupon);
    let answers = futures::future::join_all((0..10).map(|i| {
        let (app, path, token) = (&app, &path, &token);
        async move {
            app.post_json(
                path,
                Some(token),
                &json!({"order_id": format!("O-{i}"), "order_amount": 50000}),
            )
            .await
        }
    }))
    .await;
    let ok = answers
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let conflicts = answers
        .iter()
        .filter(|r| r.status() == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflicts), (1, 9));
}

#[tokio::test]
async fn percent_discounts_round_down_and_respect_the_cap() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({"discount": {"type": "percent", "percent": 15, "max_amount": 10000}, "min_order_amount": 0})).await;
    let b = body(
        app.post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 9999}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (b["discount_amount"].as_i64(), b["payable_amount"].as_i64()),
        (Some(1499), Some(8500))
    );
}

#[tokio::test]
async fn a_fixed_discount_never_exceeds_the_order() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({"min_order_amount": 0})).await;
    let b = body(
        app.post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 3000}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (b["discount_amount"].as_i64(), b["payable_amount"].as_i64()),
        (Some(3000), Some(0))
    );
}

#[tokio::test]
async fn an_order_below_the_minimum_is_refused_and_exactly_the_minimum_is_fine() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 29999}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "below_min_order").await;
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 30000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_coupon_is_refused() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({"valid_days": 7})).await;
    app.clock
        .advance(std::time::Duration::from_secs(7 * 86_400));
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 50000}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "expired").await;
}

#[tokio::test]
async fn a_coupon_before_its_validity_is_not_yet_valid() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let (token, coupon) = holder(
        &app,
        json!({"valid_days": null, "valid_from": rfc3339(now.plus_millis(86_400_000)), "valid_until": rfc3339(now.plus_millis(10 * 86_400_000))}),
    )
    .await;
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 50000}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_yet_valid").await;
    app.clock.advance(std::time::Duration::from_secs(86_400));
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "A", "order_amount": 50000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn somebody_elses_coupon_is_404_and_stays_unused() {
    let app = spawn_app().await;
    let (_, coupon) = holder(&app, json!({})).await;
    let (_, thief) = app.signup("thief@example.com").await;
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&thief),
            &json!({"order_id": "X", "order_amount": 50000}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_json(
            "/api/v1/coupons/not-an-id/use",
            Some(&thief),
            &json!({"order_id": "X", "order_amount": 1}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let row = app
        .record_coupon(coupon["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(row.status, "available");
}

#[tokio::test]
async fn the_shop_cancelling_a_use_makes_the_coupon_available_again() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    app.post_json(
        &use_path(&coupon),
        Some(&token),
        &json!({"order_id": "A-1", "order_amount": 42000}),
    )
    .await;
    let r = app
        .post_json(
            &cancel_path(&coupon),
            Some(&app.admin),
            &json!({"order_id": "B-2"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_used").await;
    let r = app
        .post_json(
            &cancel_path(&coupon),
            Some(&app.admin),
            &json!({"order_id": "A-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let c = body(r).await;
    assert_eq!(
        (c["status"].as_str(), c["order_id"].clone()),
        (Some("available"), Value::Null)
    );
    let r = app
        .post_json(
            &cancel_path(&coupon),
            Some(&app.admin),
            &json!({"order_id": "A-1"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_used").await;
    // Usable again, by another order.
    let r = app
        .post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": "C-3", "order_amount": 42000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_cancelled_use_after_expiry_leaves_the_coupon_expired() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({"valid_days": 1})).await;
    app.post_json(
        &use_path(&coupon),
        Some(&token),
        &json!({"order_id": "A-1", "order_amount": 42000}),
    )
    .await;
    app.clock
        .advance(std::time::Duration::from_secs(2 * 86_400));
    let r = app
        .post_json(
            &cancel_path(&coupon),
            Some(&app.admin),
            &json!({"order_id": "A-1"}),
        )
        .await;
    assert_eq!(body(r).await["status"], "expired");
}

#[tokio::test]
async fn bad_spend_input_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    for bad in [
        json!({"order_id": "A"}),
        json!({"order_id": "", "order_amount": 1}),
        json!({"order_id": "A", "order_amount": -5}),
        json!({"order_id": "A", "order_amount": "lots"}),
        json!({"order_id": "A", "order_amount": 1e30}),
    ] {
        let r = app.post_json(&use_path(&coupon), Some(&token), &bad).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
    let c = body(
        app.get(
            &format!("/api/v1/coupons/{}", coupon["id"].as_str().unwrap()),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(c["status"], "available");
}

#[tokio::test]
async fn a_shopper_cannot_cancel_a_use_or_one_coupon_would_pay_for_many_orders() {
    let app = spawn_app().await;
    let (token, coupon) = holder(&app, json!({})).await;
    let spend = async |order: &str| {
        app.post_json(
            &use_path(&coupon),
            Some(&token),
            &json!({"order_id": order, "order_amount": 42000}),
        )
        .await
    };
    assert_eq!(spend("A-1").await.status(), StatusCode::OK);
    let r = app
        .post_json(
            &cancel_path(&coupon),
            Some(&token),
            &json!({"order_id": "A-1"}),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(spend("B-2").await, StatusCode::CONFLICT, "already_used").await;
    let row = app
        .record_coupon(coupon["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(row.status, "used");
}
