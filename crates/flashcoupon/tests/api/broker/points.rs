//! Points through the real broker: a hold confirmed by a payment message on
//! `flashcoupon.payments`, and `points.earned` / `points.spent` published to
//! the exchange from the outbox, each once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::TestBroker;
use crate::helpers::{body, spawn_app_with};
use crate::payments::payment;
use crate::service_keys::service_key;

#[tokio::test]
async fn a_payment_message_spends_a_points_hold_and_the_ledger_events_are_published() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("points-broker@example.com").await;
    let r = app
        .post_json(
            &format!("/api/v1/users/{user}/points/earn"),
            Some(&key),
            &json!({"amount": 1_000, "reference": "seed", "reason": "welcome"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let earned = body(r).await;
    let r = app
        .post_json(
            &format!("/api/v1/users/{user}/points/holds"),
            Some(&key),
            &json!({"order_id": "amqp-order", "amount": 400}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // The same message twice: one effect. It names the shop's request.
    let message = payment("amqp-pay", "payment.succeeded", "amqp-order").to_string();
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-request-id".into(),
        lapin::types::AMQPValue::LongString("shop-pay-7".into()),
    );
    for _ in 0..2 {
        broker
            .send_with(&broker.payments(), message.as_bytes(), headers.clone())
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let p = body(app.get("/api/v1/me/points", Some(&token)).await).await;
        if p["held"] == 0 {
            assert_eq!(p["balance"], 600, "{p}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still held: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = broker
        .events_until(|all| {
            ["points.earned", "points.spent"]
                .iter()
                .all(|k| all.iter().any(|g| g.routing_key == *k))
        })
        .await;
    let earned_events: Vec<_> = got
        .iter()
        .filter(|g| g.routing_key == "points.earned")
        .collect();
    assert_eq!(earned_events.len(), 1, "{got:?}");
    let e = earned_events[0].json();
    assert_eq!(e["id"], earned["id"], "the event id is the entry id");
    assert_eq!(e["data"]["amount"], 1_000);
    assert_eq!(e["data"]["user_id"], user.as_str());
    let spent: Vec<_> = got
        .iter()
        .filter(|g| g.routing_key == "points.spent")
        .collect();
    assert_eq!(spent.len(), 1, "{got:?}");
    let s = spent[0].json();
    assert_eq!(
        (&s["data"]["amount"], &s["data"]["order_id"]),
        (&json!(400), &json!("amqp-order"))
    );
    // The spend carries the message's request; the earning, a service
    // request of its own, carries that one's (a fresh id).
    assert_eq!(
        spent[0].header("x-request-id").as_deref(),
        Some("shop-pay-7")
    );
    let earned_by = earned_events[0].header("x-request-id").unwrap();
    assert_ne!(earned_by, "shop-pay-7");
    // The ledger says the same: one spend, for the order.
    let h = body(app.get("/api/v1/me/points/history", Some(&token)).await).await;
    let kinds: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["spend", "release", "hold", "earn"]);
}
