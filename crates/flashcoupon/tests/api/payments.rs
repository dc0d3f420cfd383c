//! Payment events over HTTP (`POST /api/v1/payment-events`): an order's
//! reservations confirmed or released, its spends refunded, exactly once
//! per `event_id` (promise 10), a late payment reported (promise 8).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, spawn_app};
use crate::reservations::{holders, path, wallet_status};
use crate::service_keys::{delete_key, service_key};

pub const EVENTS: &str = "/api/v1/payment-events";

pub fn payment(event_id: &str, kind: &str, order_id: &str) -> Value {
    json!({"event_id": event_id, "type": kind, "order_id": order_id,
           "occurred_at": "2026-12-02T10:00:00Z"})
}

/// `holder`'s coupon reserved for `order` (42,000, 5,000 off) for `ttl` s.
pub async fn reserve(app: &TestApp, holder: &(String, String), order: &str, ttl: u64) {
    let (token, coupon) = holder;
    let r = app
        .post_json(
            &path(coupon, "reserve"),
            Some(token),
            &json!({"order_id": order, "order_amount": 42_000, "ttl_secs": ttl}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn status_of(app: &TestApp, holder: &(String, String)) -> String {
    wallet_status(app, &holder.0, &holder.1).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_payment_confirms_the_reservation_once_and_a_repeat_answers_the_first_record() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "payments").await;
    let holder = holders(&app, 1).await.remove(0);
    reserve(&app, &holder, "order-1", 600).await;
    let paid = payment("pay-1", "payment.succeeded", "order-1");
    let r = app.post_json(EVENTS, Some(&key), &paid).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let first = body(r).await;
    assert_eq!(first["outcome"], "confirmed 1 reservation(s)");
    assert_eq!(
        (first["source"].as_str(), first["type"].as_str()),
        (Some("http"), Some("payment.succeeded"))
    );
    assert_eq!(status_of(&app, &holder).await, "used");
    // The same event again (three times): the first record, nothing new.
    for _ in 0..3 {
        let r = app.post_json(EVENTS, Some(&key), &paid).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, first);
    }
    // The same id for another event is refused.
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-1", "payment.failed", "order-1"),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "event_id_conflict").await;
    // A refund gives the coupon back; its repeat does not cancel a later use.
    let refund = payment("refund-1", "order.refunded", "order-1");
    let r = app.post_json(EVENTS, Some(&key), &refund).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(body(r).await["outcome"], "cancelled 1 coupon use(s)");
    assert_eq!(status_of(&app, &holder).await, "available");
    let (token, coupon) = &holder;
    let r = app
        .post_json(
            &path(coupon, "use"),
            Some(token),
            &json!({"order_id": "order-1", "order_amount": 42_000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.post_json(EVENTS, Some(&key), &refund).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(status_of(&app, &holder).await, "used");
}

#[tokio::test]
async fn a_failed_or_cancelled_order_releases_its_reservation() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "payments").await;
    let held = holders(&app, 2).await;
    for (i, (holder, kind)) in held
        .iter()
        .zip(["payment.failed", "order.cancelled"])
        .enumerate()
    {
        let order = format!("order-{i}");
        reserve(&app, holder, &order, 600).await;
        let r = app
            .post_json(
                EVENTS,
                Some(&key),
                &payment(&format!("e-{i}"), kind, &order),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(body(r).await["outcome"], "released 1 reservation(s)");
        assert_eq!(status_of(&app, holder).await, "available");
        // A payment after the release confirms nothing.
        let r = app
            .post_json(
                EVENTS,
                Some(&key),
                &payment(&format!("late-{i}"), "payment.succeeded", &order),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(
            body(r).await["outcome"],
            "1 reservation(s) had been released: published payment.after_expiry"
        );
        assert_eq!(status_of(&app, holder).await, "available");
    }
}

#[tokio::test]
async fn a_payment_after_the_reservation_expired_confirms_nothing_and_is_reported() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "payments").await;
    let holder = holders(&app, 1).await.remove(0);
    reserve(&app, &holder, "order-late", 1).await;
    app.clock.advance(Duration::from_secs(2));
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-late", "payment.succeeded", "order-late"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        body(r).await["outcome"],
        "1 reservation(s) had expired: published payment.after_expiry"
    );
    // Not used: released by the expiry (at once, or at its next round).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = status_of(&app, &holder).await;
        assert_ne!(s, "used");
        if s == "available" || tokio::time::Instant::now() > deadline {
            assert_eq!(s, "available");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_payment_events_are_refused_and_record_nothing() {
    let app = spawn_app().await;
    let (key_id, key) = service_key(&app, "payments").await;
    let holder = holders(&app, 1).await.remove(0);
    reserve(&app, &holder, "order-1", 600).await;
    let good = payment("e-1", "payment.succeeded", "order-1");
    let mut bad = Vec::new();
    for (field, value) in [
        ("event_id", json!("")),
        ("event_id", json!("x".repeat(129))),
        ("event_id", json!("tab\there")),
        ("event_id", json!(7)),
        ("type", json!("payment.maybe")),
        ("type", json!(null)),
        ("order_id", json!("")),
        ("order_id", json!("o\u{0}")),
        ("occurred_at", json!("yesterday")),
        ("occurred_at", json!("2026-13-40T00:00:00Z")),
    ] {
        let mut b = good.clone();
        b[field] = value;
        bad.push(b);
    }
    let mut extra = good.clone();
    extra["amount"] = json!(42_000);
    bad.push(extra);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("occurred_at");
    bad.push(missing);
    for b in &bad {
        let r = app.post_json(EVENTS, Some(&key), b).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
    // An unknown order: 404 naming it.
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("e-1", "payment.succeeded", "no-such-order"),
        )
        .await;
    let message = assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(message.contains("no-such-order"), "{message}");
    // Only the shop: a shopper is forbidden, nobody is unauthorized.
    let r = app.post_json(EVENTS, Some(&holder.0), &good).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.post_json(EVENTS, None, &good).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // A deleted key: 401 at once.
    let (_, other) = service_key(&app, "old payments").await;
    delete_key(&app, &key_id).await;
    let r = app.post_json(EVENTS, Some(&key), &good).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Nothing above changed anything: the coupon is still held, and the
    // event id `e-1` is new (202, not the 200 of a repeat).
    assert_eq!(status_of(&app, &holder).await, "reserved");
    let r = app.post_json(EVENTS, Some(&other), &good).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status_of(&app, &holder).await, "used");
}

/// Promise 10 under concurrency: one event sent many times at once takes
/// effect once; a success and a failure for the same order racing end it
/// one way, the one whose record says it acted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_at_once_many_times_takes_effect_once() {
    const N: usize = 12;
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "payments").await;
    let held = holders(&app, N).await;
    for (i, holder) in held.iter().enumerate() {
        reserve(&app, holder, &format!("order-{i}"), 600).await;
    }
    let mut tasks = Vec::new();
    for i in 0..N {
        for attempt in 0..8 {
            let (client, url, key) = (app.client.clone(), app.url(EVENTS), key.clone());
            // Half the orders get only repeats of one success; the other
            // half a success and a failure racing, each repeated.
            let (event_id, kind) = if i % 2 == 0 || attempt % 2 == 0 {
                (format!("ok-{i}"), "payment.succeeded")
            } else {
                (format!("ko-{i}"), "payment.failed")
            };
            let event = payment(&event_id, kind, &format!("order-{i}"));
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&event)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                (i, kind, status, r.json::<Value>().await.unwrap())
            }));
        }
    }
    let mut firsts = vec![Vec::new(); N];
    for t in tasks {
        let (i, kind, status, b) = t.await.unwrap();
        match status {
            StatusCode::ACCEPTED => {
                firsts[i].push((kind, b["outcome"].as_str().unwrap().to_owned()))
            }
            StatusCode::OK => {}
            other => panic!("unexpected {other}: {b}"),
        }
    }
    for (i, holder) in held.iter().enumerate() {
        let status = status_of(&app, holder).await;
        let acted: Vec<_> = firsts[i]
            .iter()
            .filter(|(_, outcome)| {
                outcome.starts_with("confirmed") || outcome.starts_with("released")
            })
            .collect();
        // One first answer per event id, one of them acted.
        let ids = if i % 2 == 0 { 1 } else { 2 };
        assert_eq!(firsts[i].len(), ids, "order {i}: {:?}", firsts[i]);
        assert_eq!(acted.len(), 1, "order {i}: {:?}", firsts[i]);
        let expected = if acted[0].0 == "payment.succeeded" {
            "used"
        } else {
            "available"
        };
        assert_eq!(status, expected, "order {i}: {:?}", firsts[i]);
    }
}

/// Events for one order may come in any order (the consumer takes several
/// at once; senders reorder): a refund that comes before its payment
/// releases the hold, and the payment then confirms nothing and is reported.
#[tokio::test]
async fn a_refund_before_its_payment_releases_the_hold_and_the_payment_is_reported() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "payments").await;
    let holder = holders(&app, 1).await.remove(0);
    reserve(&app, &holder, "order-1", 600).await;
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("refund", "order.refunded", "order-1"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(body(r).await["outcome"], "released 1 reservation(s)");
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay", "payment.succeeded", "order-1"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        body(r).await["outcome"],
        "1 reservation(s) had been released: published payment.after_expiry"
    );
    assert_eq!(status_of(&app, &holder).await, "available");
}
