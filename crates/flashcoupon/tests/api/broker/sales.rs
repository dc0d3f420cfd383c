//! Time-sale orders through the real broker: a payment message pays an
//! order, and `order.created`, `order.paid` and `order.expired` are
//! published to the exchange from the outbox, each once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::TestBroker;
use crate::helpers::{body, spawn_app_with};
use crate::payments::payment;
use crate::sales::{create_sale, order};

#[tokio::test]
async fn a_payment_message_pays_an_order_and_its_events_are_published() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let sale = create_sale(&app, json!({"per_user_limit": 2, "payment_ttl_secs": 30})).await;
    let sale = sale["id"].as_str().unwrap();
    let (_, token) = app.signup("sale-broker@example.com").await;
    let r = order(&app, sale, &token, None).await;
    let paid_request = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let paid = body(r).await["id"].as_str().unwrap().to_owned();
    let unpaid = body(order(&app, sale, &token, None).await).await;
    let unpaid = unpaid["id"].as_str().unwrap().to_owned();
    // The same message twice: one effect.
    let message = payment("sale-pay", "payment.succeeded", &paid);
    broker.send_json(&message).await;
    broker.send_json(&message).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let o = body(
            app.get(&format!("/api/v1/orders/{paid}"), Some(&token))
                .await,
        )
        .await;
        if o["status"] == "paid" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not paid: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.clock.advance(Duration::from_secs(31));
    flashcoupon::selling::orders::expire_due(&app.state)
        .await
        .unwrap();
    let r = app
        .get(&format!("/api/v1/orders/{unpaid}"), Some(&token))
        .await;
    assert_eq!(
        (r.status(), body(r).await["status"].clone()),
        (StatusCode::OK, json!("expired"))
    );
    let got = broker
        .events_until(|all| {
            ["order.created", "order.paid", "order.expired"]
                .iter()
                .all(|k| all.iter().any(|g| g.routing_key == *k))
        })
        .await;
    // The relay publishes at least once: the clock moved 31 s past its
    // lease, so a row published but not yet deleted may go out again, with
    // the same id (a consumer deduplicates on it). Count distinct events.
    let of = |kind: &str| -> Vec<serde_json::Value> {
        let mut seen = std::collections::HashSet::new();
        got.iter()
            .filter(|g| g.routing_key == kind)
            .map(|g| g.json())
            .filter(|e| seen.insert(e["id"].to_string()))
            .collect()
    };
    let created = of("order.created");
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(
        created
            .iter()
            .any(|e| e["id"] == paid.as_str() && e["data"]["order_id"] == paid.as_str())
    );
    let paid_events = of("order.paid");
    assert_eq!(paid_events.len(), 1, "one payment, however often it came");
    assert_eq!(paid_events[0]["data"]["status"], "paid");
    let expired = of("order.expired");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["order_id"], unpaid.as_str());
    // The order's creation, written by the group commit, names the request
    // that placed it; the expiry, which nobody asked for, names none.
    let message = |kind: &str, order: &str| {
        got.iter()
            .find(|g| g.routing_key == kind && g.json()["data"]["order_id"] == order)
            .unwrap()
    };
    assert_eq!(
        message("order.created", &paid).header("x-request-id"),
        Some(paid_request)
    );
    assert_eq!(
        message("order.expired", &unpaid).header("x-request-id"),
        None
    );
}
