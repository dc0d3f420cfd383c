//! Promises 3 and 5 across a crash: the real binary is stormed, killed with
//! SIGKILL mid-storm and restarted on the same data dir. Every coupon that
//! was answered 201 must still be there, the rebuilt gate must agree with the
//! record, and the drop must then finish exactly.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::Semaphore;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, admin_token, body, metric_at, start_binary};

const STOCK: usize = 1_000;
const LIMIT: usize = 3;

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Start the real binary on a free port and read the URL it prints.
    fn start(dir: &Path) -> Server {
        let (child, base) = start_binary(
            Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir)
                .env("FLASHCOUPON_ADMIN_EMAIL", ADMIN_EMAIL)
                .env("FLASHCOUPON_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("FLASHCOUPON_CLAIM_RATE_PER_USER", "0")
                // The write-ahead log starts over every few batches, as it
                // does every ~2 s of a long storm (store/sqlite/log.rs), so
                // the kill can land around a restart.
                .env("FLASHCOUPON_SQLITE_LOG_RESTART_FRAMES", "64")
                .env("RUST_LOG", "warn"),
        );
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
struct Issued {
    user: String,
    key: Option<String>,
    coupon: String,
}

async fn post(client: &reqwest::Client, url: String, token: &str, b: Value) -> reqwest::Response {
    client
        .post(url)
        .bearer_auth(token)
        .json(&b)
        .send()
        .await
        .expect("request")
}

/// Every user claims up to the limit, one claim after another, half of them
/// with keys. Stops a user at its first transport error (the server died) and
/// calls `on_issued` after each 201.
async fn storm(
    client: &reqwest::Client,
    base: &str,
    campaign: &str,
    users: &[(String, String)],
    round: &str,
    issued: Arc<Mutex<Vec<Issued>>>,
    on_issued: impl Fn(usize) + Send + Sync + 'static,
) {
    let permits = Arc::new(Semaphore::new(256));
    let on_issued = Arc::new(on_issued);
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
        let url = format!("{base}/api/v1/campaigns/{campaign}/issue");
        let round = round.to_owned();
        tasks.push(tokio::spawn(async move {
            let _p = permits.acquire().await.unwrap();
            for c in 0..LIMIT {
                let key = (n % 2 == 0).then(|| format!("{round}-{n}-{c}"));
                let mut req = client.post(&url).bearer_auth(&token);
                if let Some(k) = &key {
                    req = req.header("Idempotency-Key", k);
                }
                let Ok(r) = req.send().await else { return };
                match r.status() {
                    StatusCode::CREATED => {
                        let Ok(text) = r.text().await else { return };
                        let coupon: Value = serde_json::from_str(&text).unwrap();
                        issued.lock().unwrap().push(Issued {
                            user: user.clone(),
                            key,
                            coupon: coupon["id"].as_str().unwrap().to_owned(),
                        });
                        on_issued(count.fetch_add(1, Ordering::SeqCst) + 1);
                    }
                    StatusCode::CONFLICT => return,
                    // 503 is allowed while dying; anything else is a bug.
                    StatusCode::SERVICE_UNAVAILABLE => return,
                    other => panic!("unexpected {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Claim one coupon at a time (each for another of `users`) until the
/// server has started its write-ahead log over (the crash tests' servers
/// do past 64 frames; the set-up wrote more): the storm then writes over
/// the old log's frames. The coupons claimed meanwhile.
async fn log_started_over(
    client: &reqwest::Client,
    base: &str,
    campaign: &str,
    users: &[(String, String)],
) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut claimed = Vec::new();
    for (_, token) in users.iter().cycle() {
        if metric_at(client, base, "flashcoupon_sqlite_log_restarts_total").await >= 1.0 {
            return claimed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write-ahead log never started over"
        );
        let r = post(
            client,
            format!("{base}/api/v1/campaigns/{campaign}/issue"),
            token,
            json!({}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        claimed.push(body(r).await["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    unreachable!("users cycle for ever")
}

/// Log in the admin, create `count` shoppers per prefix and one open campaign:
/// (shoppers as (user_id, token), campaign id).
async fn set_up_drop(
    client: &reqwest::Client,
    base: &str,
    batches: &[(&str, usize)],
) -> (Vec<(String, String)>, String) {
    let admin = admin_token(client, base).await;
    let mut users = Vec::new();
    for (prefix, count) in batches {
        let r = post(
            client,
            format!("{base}/api/v1/admin/users/bulk"),
            &admin,
            json!({"count": count, "email_prefix": prefix, "password": "password-123"}),
        )
        .await;
        users.extend(body(r).await["users"].as_array().unwrap().iter().map(|u| {
            (
                u["user_id"].as_str().unwrap().to_owned(),
                u["token"].as_str().unwrap().to_owned(),
            )
        }));
    }
    let c = body(
        post(client, format!("{base}/api/v1/campaigns"), &admin, json!({
            "name": "crash drop", "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": STOCK, "per_user_limit": LIMIT,
            "issue_starts_at": "2020-01-01T00:00:00Z", "issue_ends_at": "2099-01-01T00:00:00Z", "valid_days": 30
        }))
        .await,
    )
    .await;
    (users, c["id"].as_str().unwrap().to_owned())
}

async fn record(dir: &Path, campaign: &str) -> Vec<(String, String, i64, i64)> {
    let url = format!("sqlite://{}?mode=ro", dir.join("flashcoupon.db").display());
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_as(
        "SELECT id, user_id, seq, user_seq FROM coupons WHERE campaign_id = ? ORDER BY seq",
    )
    .bind(campaign)
    .fetch_all(&mut db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_mid_storm_loses_no_issued_coupon_and_the_drop_finishes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let first = Server::start(dir.path());
    let (users, campaign) =
        set_up_drop(&client, &first.base, &[("crash-a", 600), ("crash-b", 600)]).await;
    let restarted_before = log_started_over(&client, &first.base, &campaign, &users).await;

    // Storm, and SIGKILL the server once 300 coupons were answered 201.
    let issued = Arc::new(Mutex::new(Vec::new()));
    let pid = first.child.id();
    storm(
        &client,
        &first.base,
        &campaign,
        &users,
        "before",
        issued.clone(),
        move |n| {
            if n == 300 {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        },
    )
    .await;
    drop(first);
    let before: Vec<Issued> = issued.lock().unwrap().clone();
    assert!(before.len() >= 300, "the storm reached the kill point");

    // Restart on the same data dir.
    let second = Server::start(dir.path());
    let rows = record(dir.path(), &campaign).await;
    // The storm's commits wrote over the frames of the log before its
    // restart: recovery told them apart.
    for b in &restarted_before {
        assert!(
            rows.iter().any(|r| &r.0 == b),
            "a coupon of before the log's restart is gone"
        );
    }
    let in_record: HashMap<&str, &str> =
        rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    for i in &before {
        assert_eq!(
            in_record.get(i.coupon.as_str()),
            Some(&i.user.as_str()),
            "promise 3: answered 201, so it survived kill -9"
        );
    }
    assert!(rows.len() <= STOCK, "promise 1");
    let c = body(
        client
            .get(format!("{}/api/v1/campaigns/{campaign}", second.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        c["issued_count"].as_u64(),
        Some(rows.len() as u64),
        "the rebuilt gate counts what the record holds"
    );
    assert_eq!(
        c["remaining_quantity"].as_u64(),
        Some((STOCK - rows.len()) as u64),
        "promise 5: stock of lost in-flight claims is back"
    );

    // Keys answered before the crash replay the same coupon after it.
    let token_of: HashMap<&str, &str> = users
        .iter()
        .map(|(u, t)| (u.as_str(), t.as_str()))
        .collect();
    for i in before.iter().filter(|i| i.key.is_some()).take(50) {
        let r = client
            .post(format!("{}/api/v1/campaigns/{campaign}/issue", second.base))
            .bearer_auth(token_of[i.user.as_str()])
            .header("Idempotency-Key", i.key.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(
            body(r).await["id"].as_str(),
            Some(i.coupon.as_str()),
            "promise 4 across a restart"
        );
    }

    // Claims continue and the drop finishes exactly.
    let after = Arc::new(Mutex::new(Vec::new()));
    storm(
        &client,
        &second.base,
        &campaign,
        &users,
        "after",
        after.clone(),
        |_| {},
    )
    .await;
    let rows = record(dir.path(), &campaign).await;
    assert_eq!(
        rows.len(),
        STOCK,
        "sold out means the whole stock was issued"
    );
    assert!(
        rows.iter().map(|r| r.2).eq(1..=STOCK as i64),
        "seq is 1..=stock: gaps left by the crash were refilled"
    );
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *per_user.entry(r.1.as_str()).or_default() += 1;
    }
    assert!(per_user.values().all(|&n| n <= LIMIT), "promise 2");
    let in_record: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert!(
        after
            .lock()
            .unwrap()
            .iter()
            .all(|i| in_record.contains(i.coupon.as_str())),
        "promise 3 after the restart"
    );
    let c = body(
        client
            .get(format!("{}/api/v1/campaigns/{campaign}", second.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (c["remaining_quantity"].as_u64(), c["status"].as_str()),
        (Some(0), Some("sold_out"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_shutdown_drains_the_commit_queue() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = Server::start(dir.path());
    let (users, campaign) = set_up_drop(&client, &server.base, &[("term", 800)]).await;
    let issued = Arc::new(Mutex::new(Vec::new()));
    let pid = server.child.id();
    storm(
        &client,
        &server.base,
        &campaign,
        &users,
        "term",
        issued.clone(),
        move |n| {
            if n == 200 {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        },
    )
    .await;
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    let rows = record(dir.path(), &campaign).await;
    let in_record: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for i in issued.lock().unwrap().iter() {
        assert!(
            in_record.contains(i.coupon.as_str()),
            "every 201 before the shutdown is durable"
        );
    }
}

/// Promise 9 across a crash: the real binary takes a storm of point spends
/// (gathered by the points group commit), is killed with SIGKILL mid-storm
/// and restarted. Every spend answered 201 is in the record, exactly once,
/// and the ledger still adds up (entries, account, lots).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_mid_points_storm_loses_no_answered_spend_and_the_ledger_adds_up() {
    const USERS: usize = 40;
    const SPENDS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = reqwest::Client::new();
    let admin = admin_token(&client, &server.base).await;
    let r = post(
        &client,
        format!("{}/api/v1/admin/users/bulk", server.base),
        &admin,
        json!({"count": USERS, "email_prefix": "pts", "password": "password-123"}),
    )
    .await;
    let users: Vec<String> = body(r).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .collect();
    for user in &users {
        let r = post(
            &client,
            format!("{}/api/v1/users/{user}/points/earn", server.base),
            &admin,
            json!({"amount": 1_000_000, "reference": "seed", "reason": "crash test"}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // Each user spends one point after another; SIGKILL once 600 are in.
    let answered = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let pid = server.child.id();
    let mut tasks = Vec::new();
    for user in users.clone() {
        let (client, base, admin) = (client.clone(), server.base.clone(), admin.clone());
        let (answered, count) = (answered.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..SPENDS {
                let reference = format!("s-{n}");
                let sent = client
                    .post(format!("{base}/api/v1/users/{user}/points/spend"))
                    .bearer_auth(&admin)
                    .json(&json!({"amount": 1, "reference": reference, "reason": "storm"}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        answered.lock().unwrap().push((user.clone(), reference));
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == 600 {
                            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                        }
                    }
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => return, // the server died
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let _ = server.child.wait();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 600 && answered.len() < USERS * SPENDS,
        "killed mid-storm: {} answered",
        answered.len()
    );
    // Restarted on the same data dir: every answered spend is there, once.
    drop(server);
    let server = Server::start(dir.path());
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("flashcoupon.db").display()
    );
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    let spends: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id, reference FROM point_entries WHERE kind = 'spend'")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let stored: HashSet<(String, String)> = spends.iter().cloned().collect();
    assert_eq!(stored.len(), spends.len(), "no spend twice");
    for a in &answered {
        assert!(stored.contains(a), "an answered spend was lost: {a:?}");
    }
    // The ledger adds up for every user: entries, account and lots.
    let bad: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT a.user_id, a.balance, \
         (SELECT SUM(amount) FROM point_entries e WHERE e.user_id = a.user_id), \
         (SELECT SUM(remaining) FROM point_lots l WHERE l.user_id = a.user_id) \
         FROM point_accounts a",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .into_iter()
    .filter(|(_, b, sum, lots): &(String, i64, i64, i64)| b != sum || b != lots)
    .collect();
    assert!(bad.is_empty(), "{bad:?}");
    // And the restarted server goes on from there: the same reference again
    // answers the first entry.
    let (user, reference) = answered[0].clone();
    let admin = admin_token(&client, &server.base).await;
    let r = post(
        &client,
        format!("{}/api/v1/users/{user}/points/spend", server.base),
        &admin,
        json!({"amount": 1, "reference": reference, "reason": "storm"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Promises 3, 5 and 8 for time sales across a crash: orders that take a
/// unit, reserve a coupon and hold points in one step are stormed (some
/// buyers cancel at once), the binary is killed with SIGKILL mid-storm and
/// restarted. Every order answered 201 is there; nothing is half-held (no
/// coupon or points held for an order the record lacks, none released for
/// one still pending); the rebuilt gate agrees with the record and the sale
/// then sells out exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_mid_order_storm_leaves_nothing_half_held() {
    const BUYERS: usize = 160;
    const UNITS: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = reqwest::Client::new();
    let admin = admin_token(&client, &server.base).await;
    let base = server.base.clone();
    let r = post(
        &client,
        format!("{base}/api/v1/admin/users/bulk"),
        &admin,
        json!({"count": BUYERS + 40, "email_prefix": "ord", "password": "password-123"}),
    )
    .await;
    let users: Vec<(String, String)> = body(r).await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user_id"].as_str().unwrap().to_owned(),
                u["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (buyers, late) = users.split_at(BUYERS);
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let campaign = body(
        post(
            &client,
            format!("{base}/api/v1/campaigns"),
            &admin,
            json!({"name": "crash coupons", "discount": {"type": "fixed", "amount": 1000},
                   "total_quantity": BUYERS, "per_user_limit": 1,
                   "issue_starts_at": rfc(now - time::Duration::minutes(1)),
                   "issue_ends_at": rfc(now + time::Duration::hours(1)), "valid_days": 30}),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sale = body(
        post(
            &client,
            format!("{base}/api/v1/sales"),
            &admin,
            json!({"name": "crash sale", "product": {"sku": "C-1", "name": "Crash", "list_price": 20000},
                   "sale_price": 10000, "total_quantity": UNITS, "per_user_limit": 1,
                   "starts_at": rfc(now - time::Duration::minutes(1)),
                   "ends_at": rfc(now + time::Duration::hours(1)), "payment_ttl_secs": 3600}),
        )
        .await,
    )
    .await["id"]
    .as_str()
    .unwrap()
    .to_owned();
    let mut coupons = HashMap::new();
    for (user, token) in buyers {
        let r = post(
            &client,
            format!("{base}/api/v1/campaigns/{campaign}/issue"),
            token,
            json!({}),
        )
        .await;
        coupons.insert(
            user.clone(),
            body(r).await["id"].as_str().unwrap().to_owned(),
        );
        let r = post(
            &client,
            format!("{base}/api/v1/users/{user}/points/earn"),
            &admin,
            json!({"amount": 500, "reference": "seed", "reason": "crash test"}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // Every buyer orders with their coupon and 300 points; every third
    // cancels at once. SIGKILL once 60 orders are answered.
    let answered = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let pid = server.child.id();
    let mut tasks = Vec::new();
    for (i, (user, token)) in buyers.iter().enumerate() {
        let (client, base, token, sale) =
            (client.clone(), base.clone(), token.clone(), sale.clone());
        let coupon = coupons[user].clone();
        let (answered, count) = (answered.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let sent = client
                .post(format!("{base}/api/v1/sales/{sale}/orders"))
                .bearer_auth(&token)
                .json(&json!({"coupon_id": coupon, "points": 300}))
                .send()
                .await;
            let Ok(r) = sent else { return };
            if r.status() != StatusCode::CREATED {
                return;
            }
            let Ok(o) = r.json::<Value>().await else {
                return;
            };
            let id = o["id"].as_str().unwrap().to_owned();
            answered.lock().unwrap().push(id.clone());
            if count.fetch_add(1, Ordering::SeqCst) + 1 == 60 {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            if i % 3 == 0 {
                let _ = client
                    .post(format!("{base}/api/v1/orders/{id}/cancel"))
                    .bearer_auth(&token)
                    .send()
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let _ = server.child.wait();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 60,
        "killed mid-storm: {} answered",
        answered.len()
    );
    drop(server);
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("flashcoupon.db").display()
    );
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    let orders: Vec<(String, String, Option<String>, i64, i64)> =
        sqlx::query_as("SELECT id, status, coupon_id, points_used, seq FROM orders")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let by_id: HashMap<&str, &(String, String, Option<String>, i64, i64)> =
        orders.iter().map(|o| (o.0.as_str(), o)).collect();
    for id in &answered {
        assert!(
            by_id.contains_key(id.as_str()),
            "an answered order was lost: {id}"
        );
    }
    // Nothing half-held: each coupon hold and points hold belongs to an
    // order in the record, and is live exactly while its order is pending.
    let coupon_holds: Vec<(String, String)> =
        sqlx::query_as("SELECT order_id, state FROM coupon_holds")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let point_holds: Vec<(String, String)> =
        sqlx::query_as("SELECT order_id, state FROM point_holds")
            .fetch_all(&mut db)
            .await
            .unwrap();
    for (kind, holds) in [("coupon", &coupon_holds), ("points", &point_holds)] {
        assert_eq!(holds.len(), orders.len(), "one {kind} hold per order");
        for (order, state) in holds {
            let o = by_id
                .get(order.as_str())
                .unwrap_or_else(|| panic!("{kind} held for a lost order {order}"));
            let expected = match o.1.as_str() {
                "pending_payment" => "held",
                "cancelled" => "released",
                other => panic!("unexpected order status {other}"),
            };
            assert_eq!(state, expected, "{kind} hold of {order} ({})", o.1);
        }
    }
    let reserved: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM coupons WHERE status = 'reserved'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let pending = orders.iter().filter(|o| o.1 == "pending_payment").count();
    assert_eq!(
        reserved as usize, pending,
        "a reserved coupon for each pending order, no other"
    );
    // The rebuilt gate agrees with the record, and the sale sells out exactly.
    let s: Value = client
        .get(format!("{base}/api/v1/sales/{sale}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        s["remaining_quantity"].as_u64().unwrap() as usize,
        UNITS - pending
    );
    for (_, token) in buyers.iter().chain(late) {
        let _ = post(
            &client,
            format!("{base}/api/v1/sales/{sale}/orders"),
            token,
            json!({}),
        )
        .await;
    }
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT seq FROM orders WHERE status IN ('pending_payment', 'paid') ORDER BY seq",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        held,
        (1..=UNITS as i64).collect::<Vec<_>>(),
        "seqs 1..=stock, each once"
    );
}

/// `flashcoupon admin repage` on the data dir of a server killed with
/// SIGKILL: refused while the server runs; then every coupon answered 201
/// is in the rewritten file (the log the kill left is checked in first),
/// and the server starts on it and goes on issuing from the next seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repage_after_a_kill_9_keeps_every_issued_coupon() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path());
    let (users, campaign) = set_up_drop(&client, &server.base, &[("repage", 300)]).await;
    let issued = Arc::new(Mutex::new(Vec::new()));
    let (first, later) = users.split_at(200);
    storm(
        &client,
        &server.base,
        &campaign,
        first,
        "before",
        issued.clone(),
        |_| (),
    )
    .await;
    let repage = |size: &str| {
        Command::new(env!("CARGO_BIN_EXE_flashcoupon"))
            .args(["admin", "repage", "--page-size", size, "--data-dir"])
            .arg(dir.path())
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let refused = repage("4096");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && why.contains("Stop it first"),
        "{why}"
    );

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let done = repage("4096");
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success() && said.contains("from 1024- to 4096-byte pages"),
        "{said}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.path().join("flashcoupon.db").display()
    );
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    let (pages,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(pages, 4096);
    drop(db);
    let before = issued.lock().unwrap().len();
    assert!(before > 0);
    let check = |rows: &[(String, String, i64, i64)]| {
        let in_record: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        for i in issued.lock().unwrap().iter() {
            assert!(in_record.contains(i.coupon.as_str()), "a 201 lost: {i:?}");
        }
        let seqs: Vec<i64> = rows.iter().map(|r| r.2).collect();
        assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>());
    };
    check(&record(dir.path(), &campaign).await);

    let server = Server::start(dir.path());
    storm(
        &client,
        &server.base,
        &campaign,
        later,
        "after",
        issued.clone(),
        |_| (),
    )
    .await;
    let after = issued.lock().unwrap().len();
    assert!(after > before, "the drop goes on after the rewrite");
    drop(server);
    let rows = record(dir.path(), &campaign).await;
    assert_eq!(rows.len(), after);
    check(&rows);
}
