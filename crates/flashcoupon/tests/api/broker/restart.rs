//! The broker stopped and started again mid-stream: the consumer and the
//! relay reconnect by themselves; nothing is lost (payment events wait in
//! their durable queue, outbound events in the outbox) and nothing takes
//! effect twice.

use std::collections::{HashMap, HashSet};

use reqwest::StatusCode;
use serde_json::json;

use super::server::RabbitServer;
use super::{APPLIED, TestBroker, metric, metric_reaches};
use crate::helpers::spawn_app_with;
use crate::payments::{payment, reserve};
use crate::reservations::{holders, path};

const PAID: usize = 60;
const SPENT: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_and_doubles_nothing() {
    let server = RabbitServer::start();
    let mut broker = TestBroker::at(&server.url()).await;
    let app = spawn_app_with(|s| {
        broker.configure(s);
        s.write_rate_per_user = 0;
    })
    .await;
    let held = holders(&app, PAID + SPENT).await;
    for (i, holder) in held.iter().take(PAID).enumerate() {
        reserve(&app, holder, &format!("order-{i}"), 3_600).await;
    }
    let pay = |i: usize| {
        payment(
            &format!("pay-{i}"),
            "payment.succeeded",
            &format!("order-{i}"),
        )
    };
    // Half the payments, then the broker goes down under the consumer.
    for i in 0..PAID / 2 {
        broker.send_json(&pay(i)).await;
    }
    metric_reaches(&app, APPLIED, 5.0).await;
    server.stop_app();
    // Meanwhile shoppers spend coupons: their coupon.used wait in the outbox.
    for (i, (token, coupon)) in held.iter().skip(PAID).enumerate() {
        let order = json!({"order_id": format!("spend-{i}"), "order_amount": 42_000});
        let r = app
            .post_json(&path(coupon, "use"), Some(token), &order)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    server.start_app();
    broker.reopen().await;
    // The other half, and the first half again (a sender retrying after the
    // outage): the repeats change nothing.
    for i in PAID / 2..PAID {
        broker.send_json(&pay(i)).await;
    }
    for i in 0..PAID / 2 {
        broker.send_json(&pay(i)).await;
    }
    metric_reaches(&app, APPLIED, PAID as f64).await;
    let coupons: HashSet<String> = held.iter().map(|h| h.1.clone()).collect();
    let got = broker
        .events_until(|all| {
            let seen: HashSet<String> = all
                .iter()
                .filter(|g| g.routing_key == "coupon.used")
                .filter_map(|g| g.json()["data"]["coupon_id"].as_str().map(str::to_owned))
                .collect();
            coupons.iter().all(|c| seen.contains(c))
        })
        .await;
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for g in got.iter().filter(|g| g.routing_key == "coupon.used") {
        let e = g.json();
        ids.entry(e["data"]["coupon_id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(e["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), PAID + SPENT, "every coupon.used came out");
    assert!(
        ids.values().all(|i| i.len() == 1),
        "one event per effect: {ids:?}"
    );
    // Every payment took effect once: the repeats were counted as such.
    assert_eq!(metric(&app, APPLIED).await, PAID as f64);
    broker.delete().await;
}
