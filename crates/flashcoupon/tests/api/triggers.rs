//! Event-triggered issuance (API.md "Codes"): a sign-up's welcome coupon
//! and a shop's custom events, exactly once per (user, campaign), subject to
//! stock; both modes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, spawn_app};

/// The user's coupons of `campaign`, once the trigger runner got to them
/// (polled, bounded).
async fn coupons_of(app: &TestApp, token: &str, campaign: &str, expect: usize) -> Vec<Value> {
    for _ in 0..400 {
        let r = app
            .get(&format!("/api/v1/campaigns/{campaign}/me"), Some(token))
            .await;
        let coupons = body(r).await["coupons"].as_array().unwrap().clone();
        if coupons.len() >= expect {
            return coupons;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {expect} coupon(s) of {campaign} arrived");
}

/// A trigger event once it is done (polled, bounded).
pub async fn done_event(app: &TestApp, event_id: &str) -> Value {
    for _ in 0..400 {
        let r = app
            .get(
                &format!("/api/v1/trigger-events/{event_id}"),
                Some(&app.admin),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let e = body(r).await;
        if e["status"] == "done" {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("trigger event {event_id} never finished");
}

async fn post_event(app: &TestApp, b: Value) -> reqwest::Response {
    app.post_json("/api/v1/trigger-events", Some(&app.admin), &b)
        .await
}

#[tokio::test]
async fn a_sign_up_gets_the_welcome_coupon_once_until_it_sells_out() {
    let app = spawn_app().await;
    let welcome = app
        .create_campaign(json!({"trigger": "signup", "total_quantity": 2}))
        .await;
    assert_eq!(welcome["trigger"], "signup");
    let welcome = welcome["id"].as_str().unwrap().to_owned();
    let (first, token) = app.signup("welcome-1@example.com").await;
    let coupons = coupons_of(&app, &token, &welcome, 1).await;
    assert_eq!(coupons.len(), 1);
    let event = done_event(&app, &format!("signup:{first}")).await;
    assert_eq!(event["outcome"], "issued 1");
    assert_eq!(event["source"], "signup");
    // Not by hand.
    assert_error(
        app.issue(&welcome, &token, None).await,
        StatusCode::CONFLICT,
        "not_claimable",
    )
    .await;
    let (_, second) = app.signup("welcome-2@example.com").await;
    coupons_of(&app, &second, &welcome, 1).await;
    // Sold out: the third sign-up gets nothing, and the event says so.
    let (third, third_token) = app.signup("welcome-3@example.com").await;
    let event = done_event(&app, &format!("signup:{third}")).await;
    assert_eq!(event["outcome"], "sold_out 1");
    let r = app
        .get(
            &format!("/api/v1/campaigns/{welcome}/me"),
            Some(&third_token),
        )
        .await;
    assert_eq!(body(r).await["issued"], 0);
    assert_eq!(app.record(&welcome).await.len(), 2);
}

#[tokio::test]
async fn a_custom_event_issues_once_per_user_and_campaign_however_often_it_comes() {
    let app = spawn_app().await;
    let vip = app
        .create_campaign(json!({"trigger": "custom:vip_day", "per_user_limit": 3}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (user, token) = app.signup("vip@example.com").await;
    let event = json!({"event_id": "shop-1", "name": "vip_day", "user_id": user});
    let r = post_event(&app, event.clone()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(body(r).await["name"], "custom:vip_day");
    assert_eq!(done_event(&app, "shop-1").await["outcome"], "issued 1");
    // The same event again, and another event of the same name: no second
    // coupon, though the limit would allow three.
    assert_eq!(post_event(&app, event).await.status(), StatusCode::ACCEPTED);
    let again = json!({"event_id": "shop-2", "name": "custom:vip_day", "user_id": user});
    assert_eq!(post_event(&app, again).await.status(), StatusCode::ACCEPTED);
    assert_eq!(
        done_event(&app, "shop-2").await["outcome"],
        "issued_before 1"
    );
    assert_eq!(coupons_of(&app, &token, &vip, 1).await.len(), 1);
    assert_eq!(app.record(&vip).await.len(), 1);

    // Bad input: a clear 4xx, nothing taken in.
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_error(
        post_event(
            &app,
            json!({"event_id": "x1", "name": "vip_day", "user_id": unknown}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for (b, field) in [
        (
            json!({"event_id": "x3", "name": "VIP DAY", "user_id": user}),
            "name",
        ),
        (
            json!({"event_id": "", "name": "vip_day", "user_id": user}),
            "event_id",
        ),
        (
            json!({"event_id": "x4", "name": "vip_day", "user_id": "nobody"}),
            "user_id",
        ),
    ] {
        let m = assert_error(
            post_event(&app, b).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        assert!(m.contains(field), "{field}: {m}");
    }
    assert_error(
        post_event(
            &app,
            json!({"event_id": "shop-1", "name": "other", "user_id": user}),
        )
        .await,
        StatusCode::CONFLICT,
        "event_id_conflict",
    )
    .await;
    for id in ["x1", "x3", "x4"] {
        assert_error(
            app.get(&format!("/api/v1/trigger-events/{id}"), Some(&app.admin))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    // Shoppers may not post them.
    assert_error(
        app.post_json(
            "/api/v1/trigger-events",
            Some(&token),
            &json!({"event_id": "s", "name": "vip_day", "user_id": user}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}
