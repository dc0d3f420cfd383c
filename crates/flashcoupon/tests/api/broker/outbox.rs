//! Every outbound event, from the outbox to the topic exchange.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::TestBroker;
use crate::helpers::spawn_app_with;
use crate::payments::{EVENTS, payment, reserve};
use crate::reservations::{holders, path};
use crate::service_keys::service_key;

#[tokio::test]
async fn every_event_reaches_the_exchange_with_its_type_as_routing_key_and_its_id() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let (_, key) = service_key(&app, "shop").await;
    let held = holders(&app, 2).await;
    // A spend, then its cancellation.
    let (token, coupon) = &held[0];
    let order = json!({"order_id": "order-1", "order_amount": 42_000});
    let r = app
        .post_json(&path(coupon, "use"), Some(token), &order)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_json(
            &path(coupon, "cancel-use"),
            Some(&key),
            &json!({"order_id": "order-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A hold that runs out, and a payment for it that comes too late.
    reserve(&app, &held[1], "order-2", 1).await;
    app.clock.advance(Duration::from_secs(2));
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("late", "payment.succeeded", "order-2"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let kinds = [
        "coupon.used",
        "coupon.use_cancelled",
        "coupon.reservation_expired",
        "payment.after_expiry",
    ];
    let got = broker
        .events_until(|all| {
            kinds
                .iter()
                .all(|k| all.iter().any(|g| g.routing_key == *k))
        })
        .await;
    for kind in kinds {
        let of_kind: Vec<_> = got.iter().filter(|g| g.routing_key == kind).collect();
        assert_eq!(of_kind.len(), 1, "{kind}: {got:?}");
        let event = of_kind[0].json();
        assert_eq!(event["type"], kind);
        assert_eq!(
            of_kind[0].message_id.as_deref(),
            event["id"].as_str(),
            "the message id is the event id"
        );
        assert!(
            event["at"].as_str().is_some() && event["data"].is_object(),
            "{event}"
        );
    }
    let late = got
        .iter()
        .find(|g| g.routing_key == "payment.after_expiry")
        .unwrap()
        .json();
    assert_eq!(late["data"]["order_id"], "order-2");
    assert_eq!(late["data"]["event_id"], "late");
    assert_eq!(late["data"]["coupon_ids"], json!([held[1].1]));
    broker.delete().await;
}
