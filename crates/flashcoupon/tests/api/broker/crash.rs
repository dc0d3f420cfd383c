//! Promise 10 across a crash: the real binary dies (SIGABRT, as abrupt as
//! `kill -9`) right after committing a payment event and before
//! acknowledging it. Restarted, it gets the message again and takes it as
//! a repeat: every event took effect exactly once, every outbound event is
//! out. Embedded mode (the binary over one data dir).

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::time::Duration;

use flashcoupon::settings::Settings;
use sqlx::Connection;

use super::{TestBroker, amqp_url};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, metric_at, spawn_instance, start_binary};
use crate::payments::{payment, reserve};
use crate::reservations::holders;

const ORDERS: usize = 120;
/// The binary dies after this many commits (each of a batch of events),
/// before their acks.
const ABORT_AT: usize = 1;
const SIGABRT: i32 = 6;

fn start(dir: &std::path::Path, broker: &TestBroker, abort_at: Option<usize>) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashcoupon"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("FLASHCOUPON_AMQP_URL", amqp_url())
        .env("FLASHCOUPON_AMQP_NAMESPACE", &broker.namespace)
        .env("RUST_LOG", "warn");
    if let Some(n) = abort_at {
        cmd.env("FLASHCOUPON_TEST_ABORT_BEFORE_ACK", n.to_string());
    }
    start_binary(&mut cmd)
}

async fn count(db: &mut sqlx::SqliteConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_ack_redelivers_the_event_and_it_takes_effect_once() {
    let broker = TestBroker::new().await;
    // The orders, made in-process over the data dir the binary will use.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let mut settings = Settings::for_data_dir(&path);
    settings.admin_email = Some(ADMIN_EMAIL.into());
    settings.admin_password = Some(ADMIN_PASSWORD.into());
    settings.write_rate_per_user = 0;
    let mut app = spawn_instance(&settings, dir).await;
    let held = holders(&app, ORDERS).await;
    for (i, holder) in held.iter().enumerate() {
        reserve(&app, holder, &format!("order-{i}"), 3_600).await;
    }
    app.stop().await;
    for i in 0..ORDERS {
        broker
            .send_json(&payment(
                &format!("pay-{i}"),
                "payment.succeeded",
                &format!("order-{i}"),
            ))
            .await;
    }

    let (mut child, _) = start(&path, &broker, Some(ABORT_AT));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let died = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the binary did not reach its crash point"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        died.signal(),
        Some(SIGABRT),
        "it died at the crash point: {died:?}"
    );

    let url = format!("sqlite://{}?mode=ro", path.join("flashcoupon.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let before = count(&mut db, "SELECT COUNT(*) FROM inbound_events").await;
    assert!(
        before >= ABORT_AT as i64,
        "{before} events committed before the crash"
    );

    // Restarted: it finishes the queue, taking the unacknowledged ones again.
    let (mut child, base) = start(&path, &broker, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(&mut db, "SELECT COUNT(*) FROM inbound_events").await < ORDERS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted binary did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The event committed just before the crash came back, and was a repeat.
    let client = reqwest::Client::new();
    let repeats = loop {
        let repeats = metric_at(&client, &base, super::REPEATS).await;
        if repeats >= 1.0 || tokio::time::Instant::now() > deadline {
            break repeats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(repeats >= 1.0, "no redelivered event was taken as a repeat");
    // Exactly once in effect: every hold confirmed once, every coupon used.
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM coupon_holds WHERE state = 'confirmed'"
        )
        .await,
        ORDERS as i64
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM coupons WHERE status = 'used'"
        )
        .await,
        ORDERS as i64
    );
    // Every coupon.used went out, one event id per coupon (a relay may
    // publish an id twice across a crash: at least once, deduplicable).
    let coupons: std::collections::HashSet<String> = held.iter().map(|h| h.1.clone()).collect();
    let got = broker
        .events_until(|all| {
            let seen: std::collections::HashSet<String> = all
                .iter()
                .filter(|g| g.routing_key == "coupon.used")
                .map(|g| {
                    g.json()["data"]["coupon_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            coupons.iter().all(|c| seen.contains(c))
        })
        .await;
    let mut ids_by_coupon: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for g in got.iter().filter(|g| g.routing_key == "coupon.used") {
        let e = g.json();
        ids_by_coupon
            .entry(e["data"]["coupon_id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(e["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ids_by_coupon.len(),
        ORDERS,
        "every coupon.used was published"
    );
    assert!(
        ids_by_coupon.values().all(|ids| ids.len() == 1),
        "one event per effect"
    );
    let _ = child.kill();
    let _ = child.wait();
    broker.delete().await;
}
