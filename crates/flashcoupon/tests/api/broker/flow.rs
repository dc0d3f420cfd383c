//! Payment events in, over the real broker.

use reqwest::StatusCode;
use serde_json::json;

use super::{APPLIED, DEAD, REPEATS, TestBroker, metric, metric_reaches};
use crate::helpers::{body, spawn_app_with};
use crate::payments::{EVENTS, payment, reserve};
use crate::reservations::{holders, wallet_status};
use crate::service_keys::service_key;

#[tokio::test]
async fn a_payment_message_delivered_three_times_confirms_the_reservation_once() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let (_, key) = service_key(&app, "payments").await;
    let held = holders(&app, 2).await;
    reserve(&app, &held[0], "order-paid", 600).await;
    reserve(&app, &held[1], "order-failed", 600).await;
    let paid = payment("pay-1", "payment.succeeded", "order-paid");
    for _ in 0..3 {
        broker.send_json(&paid).await;
    }
    broker
        .send_json(&payment("fail-1", "payment.failed", "order-failed"))
        .await;
    metric_reaches(&app, APPLIED, 2.0).await;
    metric_reaches(&app, REPEATS, 2.0).await;
    // Four messages: two took effect, two were repeats.
    assert_eq!(metric(&app, APPLIED).await, 2.0);
    let status = |i: usize| {
        let (token, coupon) = held[i].clone();
        let app = &app;
        async move { wallet_status(app, &token, &coupon).await["status"].clone() }
    };
    assert_eq!(status(0).await, "used");
    assert_eq!(status(1).await, "available");
    // The record kept the event once, as it came: the same id over HTTP is
    // a repeat answering the broker's first record.
    let r = app.post_json(EVENTS, Some(&key), &paid).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = body(r).await;
    assert_eq!(first["source"], "amqp");
    assert_eq!(first["outcome"], "confirmed 1 reservation(s)");
    // One coupon.used went out for the coupon, however often it came.
    let coupon = held[0].1.clone();
    let used = broker
        .events_until(|all| all.iter().any(|g| g.routing_key == "coupon.used"))
        .await;
    let mine: Vec<_> = used
        .iter()
        .filter(|g| g.routing_key == "coupon.used" && g.json()["data"]["coupon_id"] == coupon)
        .collect();
    assert_eq!(mine.len(), 1, "{used:?}");
    broker.delete().await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_queue_with_the_reason_and_never_block() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let holder = holders(&app, 1).await.remove(0);
    reserve(&app, &holder, "order-1", 600).await;
    broker.send(b"{not json").await;
    broker.send(&vec![b'x'; 5_000]).await;
    broker
        .send_json(
            &json!({"event_id": "e", "type": "payment.maybe", "order_id": "order-1",
                           "occurred_at": "2026-12-02T10:00:00Z"}),
        )
        .await;
    broker
        .send_json(&payment("e-unknown", "payment.succeeded", "no-such-order"))
        .await;
    // Behind the four, a good one still takes effect.
    broker
        .send_json(&payment("e-good", "payment.succeeded", "order-1"))
        .await;
    metric_reaches(&app, APPLIED, 1.0).await;
    assert_eq!(
        wallet_status(&app, &holder.0, &holder.1).await["status"],
        "used"
    );
    let dead = broker.dead_letters(4).await;
    assert_eq!(dead.len(), 4, "{dead:?}");
    metric_reaches(&app, DEAD, 4.0).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| d.header("x-flashcoupon-reason").unwrap())
        .collect();
    for (i, says) in [
        "is not a payment event",
        "bytes; at most 4096",
        "unknown variant `payment.maybe`",
        "no reservation or spend is known for order \"no-such-order\"",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            reasons.iter().any(|r| r.contains(says)),
            "no dead letter says {says:?} ({i}): {reasons:?}"
        );
    }
    // Each keeps its body as it came, and names its queue.
    assert!(dead.iter().any(|d| d.body == b"{not json"));
    assert!(
        dead.iter()
            .all(|d| d.header("x-flashcoupon-queue") == Some(broker.payments()))
    );
    broker.delete().await;
}

/// Many events at once go through the consumer in batches (one commit for
/// a batch, each checked row by row): successes, failures and refunds for
/// different orders, repeats among them, and shop confirms over HTTP racing
/// some of them. Every order ends as its events say, each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_mixed_events_ends_every_order_as_its_events_say() {
    const N: usize = 12;
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| {
        broker.configure(s);
        s.write_rate_per_user = 0;
    })
    .await;
    let (_, key) = service_key(&app, "payments").await;
    let held = holders(&app, 3 * N).await;
    for (i, holder) in held.iter().enumerate() {
        let order = format!("order-{i}");
        if i < 2 * N {
            reserve(&app, holder, &order, 600).await;
        } else {
            let r = app
                .post_json(
                    &crate::reservations::path(&holder.1, "use"),
                    Some(&holder.0),
                    &json!({"order_id": order, "order_amount": 42_000}),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
    let kind = |i: usize| match i / N {
        0 => "payment.succeeded",
        1 => "payment.failed",
        _ => "order.refunded",
    };
    let mut sends = Vec::new();
    for i in 0..3 * N {
        let event = payment(&format!("e-{i}"), kind(i), &format!("order-{i}"));
        sends.push(event.clone());
        if i % 4 == 0 {
            sends.push(event); // a repeat
        }
    }
    // The shop confirms a few of the paid orders itself at the same time.
    let racing: Vec<_> = (0..N)
        .step_by(3)
        .map(|i| {
            let (client, url, key) = (
                app.client.clone(),
                app.url(&crate::reservations::path(&held[i].1, "confirm")),
                key.clone(),
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({"order_id": format!("order-{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for event in &sends {
        broker.send_json(event).await;
    }
    for r in racing {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    let repeats = sends.len() - 3 * N;
    metric_reaches(&app, APPLIED, (3 * N) as f64).await;
    metric_reaches(&app, REPEATS, repeats as f64).await;
    assert_eq!(
        metric(&app, APPLIED).await,
        (3 * N) as f64,
        "each event once"
    );
    for (i, holder) in held.iter().enumerate() {
        let expected = match i / N {
            0 => "used",
            _ => "available",
        };
        assert_eq!(
            wallet_status(&app, &holder.0, &holder.1).await["status"],
            expected,
            "order {i} ({})",
            kind(i)
        );
    }
    broker.delete().await;
}

/// A refund empties its order (no hold, no spend left): its redelivery,
/// in a later batch, is still a repeat — not a dead letter for an unknown
/// order.
#[tokio::test]
async fn a_refund_delivered_again_after_it_took_effect_is_a_repeat() {
    let broker = TestBroker::new().await;
    let app = spawn_app_with(|s| broker.configure(s)).await;
    let (token, coupon) = holders(&app, 1).await.remove(0);
    let r = app
        .post_json(
            &crate::reservations::path(&coupon, "use"),
            Some(&token),
            &json!({"order_id": "order-1", "order_amount": 42_000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refund = payment("refund-1", "order.refunded", "order-1");
    broker.send_json(&refund).await;
    metric_reaches(&app, APPLIED, 1.0).await;
    broker.send_json(&refund).await;
    metric_reaches(&app, REPEATS, 1.0).await;
    assert_eq!(metric(&app, DEAD).await, 0.0);
    assert_eq!(
        wallet_status(&app, &token, &coupon).await["status"],
        "available"
    );
    broker.delete().await;
}
