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
    // Each once: the two coupons issued (by the group commit), the sell-out
    // (they were the whole stock), the spend,
    // its cancellation, the expiry and the late payment.
    let kinds = [
        ("coupon.issued", 2),
        ("campaign.sold_out", 1),
        ("coupon.used", 1),
        ("coupon.use_cancelled", 1),
        ("coupon.reservation_expired", 1),
        ("payment.after_expiry", 1),
    ];
    let got = broker
        .events_until(|all| {
            kinds
                .iter()
                .all(|(k, n)| all.iter().filter(|g| g.routing_key == *k).count() >= *n)
        })
        .await;
    for (kind, n) in kinds {
        let of_kind: Vec<_> = got.iter().filter(|g| g.routing_key == kind).collect();
        assert_eq!(of_kind.len(), n, "{kind}: {got:?}");
        for g in of_kind {
            let event = g.json();
            assert_eq!(event["type"], kind);
            assert_eq!(
                g.message_id.as_deref(),
                event["id"].as_str(),
                "the message id is the event id"
            );
            assert!(
                event["at"].as_str().is_some() && event["data"].is_object(),
                "{event}"
            );
        }
    }
    // Whose and which campaign's, for the consumers of the exchange.
    let issued: Vec<_> = got
        .iter()
        .filter(|g| g.routing_key == "coupon.issued")
        .map(|g| g.json())
        .collect();
    for (token_and_coupon, event) in held.iter().zip(&issued) {
        let mine = issued
            .iter()
            .find(|e| e["data"]["coupon_id"] == token_and_coupon.1.as_str())
            .expect("an issued event per coupon");
        assert_eq!(
            mine["id"], mine["data"]["coupon_id"],
            "a coupon.issued's id is its coupon's"
        );
        assert!(event["data"]["user_id"].is_string() && event["data"]["campaign_id"].is_string());
        assert!(mine["data"]["seq"].as_u64().is_some());
    }
    let used = got
        .iter()
        .find(|g| g.routing_key == "coupon.used")
        .unwrap()
        .json();
    assert_eq!(used["data"]["coupon_id"], held[0].1.as_str());
    assert!(used["data"]["user_id"].is_string());
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

/// More coupons than one lease takes (1,000), issued by concurrent claims:
/// the relay leases the next batches while earlier ones wait for their
/// confirms. Every event comes out once, the count published says so, and
/// the outbox empties (what the broker confirmed is deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_several_batches_goes_out_once_each_and_the_outbox_empties() {
    use futures::StreamExt;
    const COUPONS: usize = 1_500;
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| {
        broker.configure(s);
        s.claim_rate_per_user = 0;
    })
    .await;
    let campaign = app
        .create_campaign(json!({"total_quantity": COUPONS}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let users = app.bulk_users("backlog", COUPONS).await;
    let issued: Vec<String> = futures::stream::iter(users)
        .map(|(_, token)| {
            let (app, campaign) = (&app, &campaign);
            async move {
                let r = app.issue(campaign, &token, None).await;
                assert_eq!(r.status(), StatusCode::CREATED);
                crate::helpers::body(r).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    // Everything out (the coupons' events and the sell-out at least, and
    // the campaign's opening where the scheduler announced it) and deleted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while super::metric(&app, "flashcoupon_outbox_published_total").await < (COUPONS + 1) as f64
        || super::metric(&app, "flashcoupon_outbox_backlog").await > 0.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox did not empty"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = broker
        .events_until(|all| {
            all.iter()
                .filter(|g| g.routing_key == "coupon.issued")
                .count()
                >= COUPONS
        })
        .await;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for g in got.iter().filter(|g| g.routing_key == "coupon.issued") {
        *seen
            .entry(g.json()["data"]["coupon_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), COUPONS, "every coupon's event came out");
    assert!(issued.iter().all(|c| seen.get(c) == Some(&1)), "each once");
    let ids: std::collections::HashSet<&str> =
        got.iter().filter_map(|g| g.message_id.as_deref()).collect();
    assert_eq!(ids.len(), got.len(), "no event came out twice");
    assert_eq!(
        super::metric(&app, "flashcoupon_outbox_published_total").await,
        got.len() as f64,
        "the broker confirmed exactly what came out"
    );
    broker.delete().await;
}
