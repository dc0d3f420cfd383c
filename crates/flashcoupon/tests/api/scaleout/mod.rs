//! Scale-out mode under failure: several instances sharing one Redis and one
//! PostgreSQL, stormed while an instance is killed, Redis restarts empty or
//! PostgreSQL stops; and a Redis Cluster. Every test checks the promises
//! against the record. These always run against real servers (the shared
//! ones, or private ones a test can kill), whatever FLASHCOUPON_TEST_MODE says.

mod servers;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcoupon::settings::Settings;
use futures::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use self::servers::{PgServer, RedisServer, create_cluster};
use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET, RecordRow, TestApp, admin_token, body, fresh_postgres,
    pg_record, redis_url, spawn_instance, start_binary,
};
use crate::notifications::{next_json, next_of, ws_connect};

const LIMIT: usize = 3;

/// Settings for instances sharing `postgres` and `redis` under one prefix.
fn shared_settings(postgres: &str, redis: &str, prefix: &str) -> Settings {
    let mut s = Settings::for_data_dir(std::env::temp_dir());
    s.postgres_url = Some(postgres.to_owned());
    s.redis_url = Some(redis.to_owned());
    s.redis_prefix = prefix.to_owned();
    s.jwt_secret = Some(JWT_SECRET.into());
    s.admin_email = Some(ADMIN_EMAIL.into());
    s.admin_password = Some(ADMIN_PASSWORD.into());
    s.claim_rate_per_user = 0;
    s.reconcile_after_ms = 1_500;
    // Several writers per instance: the storms also cover their interleaving.
    s.commit_writers = Some(3);
    s
}

/// A hung request fails the test instead of hanging it.
fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn prefix() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

async fn instances(settings: &Settings, n: usize) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(spawn_instance(settings, tempfile::tempdir().unwrap()).await);
    }
    apps
}

/// A PostgreSQL database of its own on a private server.
async fn private_database(pg: &PgServer) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    sqlx::query("CREATE DATABASE flashcoupon")
        .execute(&mut conn)
        .await
        .unwrap();
    format!("postgres://postgres@127.0.0.1:{}/flashcoupon", pg.port)
}

#[derive(Debug, Clone)]
struct Issued {
    user: String,
    key: Option<String>,
    coupon: String,
}

/// Every user claims up to the limit across `targets` (user n starts at
/// target n), half of them with an Idempotency-Key. A claim answered 503 or
/// lost in transport is retried with the same key on the next target, up to
/// 40 times, 100 ms apart; a 409 ends the user's turn. `on_issued` sees the
/// running count of 201s.
async fn storm(
    client: &reqwest::Client,
    targets: &[String],
    campaign: &str,
    users: &[(String, String)],
    round: &str,
    on_issued: impl Fn(usize) + Send + Sync + 'static,
) -> Vec<Issued> {
    let permits = Arc::new(Semaphore::new(256));
    let on_issued = Arc::new(on_issued);
    let issued = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, (user, token)) in users.iter().cloned().enumerate() {
        let (client, permits, issued, on_issued, count) = (
            client.clone(),
            permits.clone(),
            issued.clone(),
            on_issued.clone(),
            count.clone(),
        );
        let targets = targets.to_vec();
        let (campaign, round) = (campaign.to_owned(), round.to_owned());
        tasks.push(tokio::spawn(async move {
            let _p = permits.acquire().await.unwrap();
            let mut target = n;
            for c in 0..LIMIT {
                let key = (n % 2 == 0).then(|| format!("{round}-{n}-{c}"));
                for _attempt in 0..40 {
                    let base = &targets[target % targets.len()];
                    let url = format!("{base}/api/v1/campaigns/{campaign}/issue");
                    let mut req = client.post(&url).bearer_auth(&token);
                    if let Some(k) = &key {
                        req = req.header("Idempotency-Key", k);
                    }
                    let status = match req.send().await {
                        Ok(r) if r.status() == StatusCode::CREATED => {
                            let Ok(text) = r.text().await else {
                                target += 1;
                                continue;
                            };
                            let coupon: Value = serde_json::from_str(&text).unwrap();
                            issued.lock().unwrap().push(Issued {
                                user: user.clone(),
                                key: key.clone(),
                                coupon: coupon["id"].as_str().unwrap().to_owned(),
                            });
                            on_issued(count.fetch_add(1, Ordering::SeqCst) + 1);
                            break;
                        }
                        Ok(r) => r.status(),
                        Err(_) => StatusCode::BAD_GATEWAY,
                    };
                    match status {
                        StatusCode::CONFLICT => return,
                        // The instance, Redis or PostgreSQL is down: retry
                        // the same key elsewhere a little later.
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => {
                            target += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        other => panic!("unexpected {other}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    issued.lock().unwrap().clone()
}

/// Start a storm on its own task and return once `first` coupons are out,
/// with the task to await for the rest.
async fn storm_in_background(
    client: &reqwest::Client,
    targets: &[String],
    campaign: &str,
    users: Vec<(String, String)>,
    round: &str,
    first: usize,
) -> tokio::task::JoinHandle<Vec<Issued>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let (client, targets) = (client.clone(), targets.to_vec());
    let (campaign, round) = (campaign.to_owned(), round.to_owned());
    let task = tokio::spawn(async move {
        storm(&client, &targets, &campaign, &users, &round, move |n| {
            if n >= first
                && let Some(tx) = tx.lock().unwrap().take()
            {
                let _ = tx.send(());
            }
        })
        .await
    });
    rx.await.expect("the storm reached its mark");
    task
}

async fn bulk_users(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    prefix: &str,
    count: usize,
) -> Vec<(String, String)> {
    let r = client
        .post(format!("{base}/api/v1/admin/users/bulk"))
        .bearer_auth(admin)
        .json(&json!({"count": count, "email_prefix": prefix, "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    body(r).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user_id"].as_str().unwrap().to_owned(),
                u["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn create_campaign(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    stock: usize,
) -> String {
    let r = client
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(admin)
        .json(&json!({
            "name": "scale-out drop", "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": stock, "per_user_limit": LIMIT,
            "issue_starts_at": "2020-01-01T00:00:00Z", "issue_ends_at": "2099-01-01T00:00:00Z", "valid_days": 30
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    body(r).await["id"].as_str().unwrap().to_owned()
}

async fn campaign_view(client: &reqwest::Client, base: &str, id: &str) -> Value {
    body(
        client
            .get(format!("{base}/api/v1/campaigns/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn record(postgres: &str, campaign: &str) -> Vec<RecordRow> {
    pg_record(postgres, "campaign_id", campaign).await
}

/// Promises 1, 2, 3, 4 and 6 against the record: at most `stock` coupons with
/// seq exactly 1..=n, nobody above the limit, every 201 in the record for its
/// user, one coupon per Idempotency-Key.
fn check_promises(rows: &[RecordRow], issued: &[Issued], stock: usize) {
    assert!(
        rows.len() <= stock,
        "promise 1: {} issued of {stock}",
        rows.len()
    );
    assert!(
        rows.iter().map(|r| r.seq).eq(1..=rows.len() as i64),
        "promise 6: seq is 1..=n without gaps or repeats"
    );
    let mut slots: HashMap<&str, HashSet<i64>> = HashMap::new();
    for r in rows {
        assert!(
            slots.entry(&r.user_id).or_default().insert(r.user_seq),
            "a user slot twice"
        );
    }
    assert!(
        slots.values().all(|s| s.len() <= LIMIT),
        "promise 2: nobody above the limit"
    );
    let in_record: HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.user_id.as_str()))
        .collect();
    let mut by_key: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    for i in issued {
        assert_eq!(
            in_record.get(i.coupon.as_str()),
            Some(&i.user.as_str()),
            "promise 3: a 201 coupon is in the record, for its user"
        );
        if let Some(k) = &i.key {
            by_key.entry((&i.user, k)).or_default().insert(&i.coupon);
        }
    }
    assert!(
        by_key.values().all(|c| c.len() == 1),
        "promise 4: one key, one coupon"
    );
}

/// After recovery the drop must still finish exactly (promise 5: no stock
/// leaked): claims from fresh users take whatever the reconciler gave back
/// until the campaign is sold out with exactly `stock` coupons.
async fn finish_the_drop(
    client: &reqwest::Client,
    targets: &[String],
    admin: &str,
    campaign: &str,
    stock: usize,
) -> Vec<Issued> {
    let mut issued = Vec::new();
    for round in 0..30 {
        let view = campaign_view(client, &targets[0], campaign).await;
        if view["issued_count"].as_u64() == Some(stock as u64) {
            assert_eq!(view["remaining_quantity"], 0);
            return issued;
        }
        if view["remaining_quantity"].as_u64().unwrap_or(0) > 0 {
            let users = bulk_users(client, &targets[0], admin, &format!("late{round}"), 200).await;
            issued.extend(
                storm(
                    client,
                    targets,
                    campaign,
                    &users,
                    &format!("late{round}"),
                    |_| {},
                )
                .await,
            );
        } else {
            // Stock still held by claims in flight: the reconciler settles them.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    panic!("the drop did not finish: stock leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_one_truth_under_a_storm() {
    const STOCK: usize = 1_000;
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 3).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let mut users = Vec::new();
    for (i, base) in targets.iter().enumerate() {
        users.extend(bulk_users(&client, base, &admin, &format!("three{i}"), 1_000).await);
    }
    let campaign = create_campaign(&client, &targets[1], &admin, STOCK).await;

    let issued = storm(&client, &targets, &campaign, &users, "three", |_| {}).await;

    let rows = record(&postgres, &campaign).await;
    check_promises(&rows, &issued, STOCK);
    assert_eq!(rows.len(), STOCK, "3,000 users × 3 claims sell out 1,000");
    assert_eq!(
        issued.len(),
        STOCK,
        "every coupon was answered 201 to someone"
    );
    for base in &targets {
        let view = campaign_view(&client, base, &campaign).await;
        assert_eq!(
            (view["issued_count"].as_u64(), view["status"].as_str()),
            (Some(STOCK as u64), Some("sold_out")),
            "every instance sees the same gate"
        );
    }
}

#[tokio::test]
async fn a_socket_on_one_instance_hears_claims_and_the_sell_out_made_on_another() {
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    // Publish only once both instances' relays are subscribed.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("{}:events", settings.redis_prefix);
    for _ in 0..100 {
        let (_, listeners): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        if listeners >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = apps[1].create_campaign(json!({"total_quantity": 2})).await;
    let id = c["id"].as_str().unwrap();
    let (_, alice) = apps[1].signup("listener@example.com").await;
    let (_, bob) = apps[1].signup("closer@example.com").await;
    let r = apps[1]
        .client
        .put(apps[1].url(&format!("/api/v1/campaigns/{id}/subscription")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Alice listens on instance A and claims on instance B.
    let mut ws = ws_connect(&apps[0].base, &alice).await;
    let r = apps[1].issue(id, &alice, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let coupon = body(r).await;
    let heard = next_of(&mut ws, "coupon.issued").await;
    assert_eq!(heard["data"]["coupon_id"], coupon["id"]);

    // Bob takes the last one on B. Both instances notice the sell-out; the
    // subscriber hears it once.
    assert_eq!(
        apps[1].issue(id, &bob, None).await.status(),
        StatusCode::CREATED
    );
    let sold_out = next_of(&mut ws, "campaign.sold_out").await;
    assert_eq!(sold_out["campaign_id"], id);
    for app in &apps {
        app.state
            .notifier
            .tick(app.clock.now(), true)
            .await
            .unwrap();
    }
    let inbox = body(apps[0].get("/api/v1/me/notifications", Some(&alice)).await).await;
    let sold_outs = inbox["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "campaign.sold_out")
        .count();
    assert_eq!(sold_outs, 1, "{inbox}");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"ping"}"#.into(),
    ))
    .await
    .unwrap();
    let mut after = next_json(&mut ws).await;
    // `campaign.opened` may still be on its way from the scheduler; a second sell-out may not.
    while after["type"] == "campaign.opened" {
        after = next_json(&mut ws).await;
    }
    assert_eq!(after["type"], "pong", "no second sell-out: {after}");
}

/// The real binary as one scale-out instance.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(postgres: &str, redis: &str, prefix: &str) -> Self {
        let (child, base) = start_binary(
            Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .env("FLASHCOUPON_POSTGRES_URL", postgres)
                .env("FLASHCOUPON_REDIS_URL", redis)
                .env("FLASHCOUPON_REDIS_PREFIX", prefix)
                .env("FLASHCOUPON_JWT_SECRET", JWT_SECRET)
                .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
                .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("FLASHCOUPON_CLAIM_RATE_PER_USER", "0")
                .env("FLASHCOUPON_RECONCILE_AFTER_MS", "1500")
                .env("RUST_LOG", "error"),
        );
        Instance { child, base }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_of_one_instance_mid_storm_loses_and_leaks_nothing() {
    const STOCK: usize = 1_000;
    let postgres = fresh_postgres().await;
    let prefix = prefix();
    let mut doomed = Instance::start(&postgres, &redis_url(), &prefix);
    let others = [
        Instance::start(&postgres, &redis_url(), &prefix),
        Instance::start(&postgres, &redis_url(), &prefix),
    ];
    let targets: Vec<String> = std::iter::once(doomed.base.clone())
        .chain(others.iter().map(|i| i.base.clone()))
        .collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[1]).await;
    let users = bulk_users(&client, &targets[1], &admin, "kill", 3_000).await;
    let campaign = create_campaign(&client, &targets[1], &admin, STOCK).await;

    // SIGKILL the first instance once 300 coupons are out; its users' claims
    // fail over (same key) to the survivors.
    let pid = doomed.child.id();
    let killed = Arc::new(AtomicUsize::new(0));
    let flag = killed.clone();
    let issued = storm(&client, &targets, &campaign, &users, "kill", move |n| {
        if n >= 300 && flag.swap(1, Ordering::SeqCst) == 0 {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    })
    .await;
    assert_eq!(
        killed.load(Ordering::SeqCst),
        1,
        "the instance was killed mid-storm"
    );
    let _ = doomed.child.wait();

    let survivors: Vec<String> = targets[1..].to_vec();
    let late = finish_the_drop(&client, &survivors, &admin, &campaign, STOCK).await;
    let rows = record(&postgres, &campaign).await;
    let all: Vec<Issued> = issued.into_iter().chain(late).collect();
    check_promises(&rows, &all, STOCK);
    assert_eq!(rows.len(), STOCK, "sold out exactly: nothing leaked");
    let mut reconciled = 0.0;
    for base in &survivors {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        reconciled += text
            .lines()
            .find_map(|l| l.strip_prefix("flashcoupon_gate_reconciled_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    assert!(
        reconciled > 0.0,
        "the dead instance's claims in flight were reconciled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarting_empty_mid_storm_is_rebuilt_from_the_record() {
    const STOCK: usize = 600;
    let mut redis = RedisServer::start();
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis.url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "redis", 1_500).await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;

    let storm_task = storm_in_background(&client, &targets, &campaign, users, "redis", 200).await;
    redis.kill();
    // Fail closed while Redis is gone: no claim succeeds, /readyz says so.
    let (_, token) = apps[0].signup("while-down@example.com").await;
    let r = apps[0].issue(&campaign, &token, None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        apps[0].get("/readyz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart();
    let issued = storm_task.await.unwrap();

    let late = finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await;
    assert_eq!(apps[0].get("/readyz", None).await.status(), StatusCode::OK);
    let rows = record(&postgres, &campaign).await;
    let all: Vec<Issued> = issued.into_iter().chain(late).collect();
    check_promises(&rows, &all, STOCK);
    assert_eq!(rows.len(), STOCK);
    let rebuilds = apps
        .iter()
        .map(|a| a.state.metrics.gate_rebuilds.get())
        .sum::<u64>();
    assert!(
        rebuilds >= 2,
        "created once, rebuilt after the restart ({rebuilds})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopping_mid_storm_fails_closed_and_recovers() {
    const STOCK: usize = 600;
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let postgres = private_database(&pg).await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "pg", 1_500).await;
    let (_, token) = apps[0].signup("while-down@example.com").await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;
    // A second drop, to probe while the storm may already have sold out the first.
    let probe = create_campaign(&client, &targets[0], &admin, 10).await;

    let storm_task = storm_in_background(&client, &targets, &campaign, users, "pg", 200).await;
    eprintln!("stopping PostgreSQL mid-storm");
    let pg = Arc::new(pg);
    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.stop()
    })
    .await
    .unwrap();
    let r = apps[0].issue(&probe, &token, Some("probe")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "fails closed");
    assert_eq!(
        apps[0].get("/readyz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("starting PostgreSQL again");
    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.restart()
    })
    .await
    .unwrap();
    let issued = storm_task.await.unwrap();
    eprintln!("storm over; finishing the drop");

    let late = finish_the_drop(&client, &targets, &admin, &campaign, STOCK).await;
    assert_eq!(apps[0].get("/readyz", None).await.status(), StatusCode::OK);
    let rows = record(&postgres, &campaign).await;
    let all: Vec<Issued> = issued.into_iter().chain(late).collect();
    check_promises(&rows, &all, STOCK);
    assert_eq!(rows.len(), STOCK);

    // The probe's claim was answered 503: it is not in the record, its stock
    // came back (at once, or via the reconciler if its outcome was unknown),
    // and retrying its key now issues exactly one coupon.
    assert!(record(&postgres, &probe).await.is_empty());
    let mut back = false;
    for _ in 0..40 {
        let view = campaign_view(&client, &targets[1], &probe).await;
        if view["remaining_quantity"] == 10 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "the probe's stock returned to the pool");
    let r = apps[1].issue(&probe, &token, Some("probe")).await;
    let r_status = r.status();
    let r = body(r).await;
    assert_eq!(r_status, StatusCode::CREATED, "{r}");
    let again = apps[0].issue(&probe, &token, Some("probe")).await;
    assert_eq!(body(again).await["id"], r["id"]);
    assert_eq!(record(&postgres, &probe).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_cluster_keeps_every_promise() {
    const STOCK: usize = 500;
    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
    create_cluster(&nodes);
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &urls.join(","), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[0], &admin, "cluster", 1_000).await;
    // Several campaigns, so their hash tags land on different masters.
    let mut campaigns = Vec::new();
    for _ in 0..3 {
        campaigns.push(create_campaign(&client, &targets[1], &admin, STOCK).await);
    }
    for campaign in &campaigns {
        let issued = storm(&client, &targets, campaign, &users, campaign, |_| {}).await;
        let rows = record(&postgres, campaign).await;
        check_promises(&rows, &issued, STOCK);
        assert_eq!(rows.len(), STOCK);
        assert_eq!(issued.len(), STOCK);
    }
}

#[tokio::test]
async fn postgres_refuses_what_a_broken_gate_would_admit() {
    use sqlx::Connection;
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let app = &instances(&settings, 1).await[0];
    let c = app
        .create_campaign(json!({"total_quantity": 2, "per_user_limit": 1}))
        .await;
    let campaign = c["id"].as_str().unwrap();
    let (user, _) = app.signup("victim@example.com").await;
    let (other, _) = app.signup("other@example.com").await;
    let mut db = sqlx::PgConnection::connect(app.postgres.as_deref().unwrap())
        .await
        .unwrap();
    let insert = |id: &str, user: &str, seq: i64, user_seq: i64| {
        format!(
            "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) \
             VALUES ('{id}', '{campaign}', '{user}', {seq}, {user_seq}, 1, 1, 2)"
        )
    };
    sqlx::query(&insert("a", &user, 2, 1))
        .execute(&mut db)
        .await
        .expect("a valid coupon");
    for (what, sql) in [
        ("seq above the stock", insert("b", &other, 3, 1)),
        ("a repeated seq", insert("c", &other, 2, 1)),
        ("user_seq above the limit", insert("d", &other, 1, 2)),
        ("a user slot twice", insert("e", &user, 1, 1)),
    ] {
        assert!(
            sqlx::query(&sql).execute(&mut db).await.is_err(),
            "PostgreSQL accepted {what}"
        );
    }
    assert!(
        sqlx::query(&format!(
            "UPDATE campaigns SET total_quantity = 1 WHERE id = '{campaign}'"
        ))
        .execute(&mut db)
        .await
        .is_err(),
        "stock below an issued seq"
    );
}

#[tokio::test]
async fn a_claim_the_reconciler_wrote_off_can_never_land_later() {
    use flashcoupon::domain::ids::{CampaignId, CouponId, UserId};
    use flashcoupon::domain::timestamp::Timestamp;
    use flashcoupon::store::NewCouponRow;
    use sqlx::Connection;
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let app = &instances(&settings, 1).await[0];
    let campaign: CampaignId = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (user, _) = app.signup("late@example.com").await;
    let mut db = sqlx::PgConnection::connect(app.postgres.as_deref().unwrap())
        .await
        .unwrap();
    let (epoch,): (i64,) = sqlx::query_as("SELECT gate_epoch FROM campaigns WHERE id = $1")
        .bind(campaign.to_string())
        .fetch_one(&mut db)
        .await
        .unwrap();
    // An instance admitted this claim, then stalled before its commit; the
    // reconciler judged it lost and gave its stock back.
    let id = CouponId::generate();
    let landed = app
        .state
        .store
        .resolve_stale(campaign, &[(1, id)])
        .await
        .unwrap();
    assert!(landed.is_empty());
    // The stalled writer wakes up and commits its batch.
    let row = NewCouponRow {
        id,
        campaign_id: campaign,
        user_id: user.parse::<UserId>().unwrap(),
        seq: 1,
        user_seq: 1,
        idempotency_key: None,
        issued_at: Timestamp(1),
        valid_from: Timestamp(1),
        valid_until: Timestamp(2),
        gate_epoch: epoch as u64,
    };
    let mut writer = app.state.store.writer().await.unwrap();
    let written = writer.insert(&[&row]).await.unwrap();
    assert!(written.is_empty(), "the written-off claim is skipped");
    assert!(app.record_coupon(&id.to_string()).await.is_none());
}

#[tokio::test]
async fn a_gate_out_of_step_with_the_record_is_refused_and_rebuilt() {
    use sqlx::Connection;
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let app = &instances(&settings, 1).await[0];
    let c = app
        .create_campaign(json!({"total_quantity": 5, "per_user_limit": 1}))
        .await;
    let campaign = c["id"].as_str().unwrap();
    // Seq 1 lands in the record behind the gate's back (as if Redis came back
    // from an old snapshot that predates it).
    let (ghost, _) = app.signup("ghost@example.com").await;
    let mut db = sqlx::PgConnection::connect(app.postgres.as_deref().unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, issued_at, valid_from, valid_until) \
         VALUES ($3, $1, $2, 1, 1, 1, 1, 2)",
    )
    .bind(campaign)
    .bind(&ghost)
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&mut db)
    .await
    .unwrap();
    let rebuilds = app.state.metrics.gate_rebuilds.get();
    let (_, token) = app.signup("shopper@example.com").await;
    // The gate offers seq 1 again: the record refuses it, the answer is 503,
    // never 201, and the gate is dropped to be rebuilt from the record.
    let r = app.issue(campaign, &token, Some("k")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = app.issue(campaign, &token, Some("k")).await;
    let status = r.status();
    let coupon = body(r).await;
    assert_eq!(status, StatusCode::CREATED, "healed by a rebuild: {coupon}");
    assert_eq!(coupon["seq"], 2);
    assert!(app.state.metrics.gate_rebuilds.get() > rebuilds);
    let view = body(
        app.get(&format!("/api/v1/campaigns/{campaign}"), None)
            .await,
    )
    .await;
    assert_eq!(
        (
            view["issued_count"].as_u64(),
            view["remaining_quantity"].as_u64()
        ),
        (Some(2), Some(3))
    );
}
