//! Promises 1, 2, 4 and 6 under a storm: thousands of users claiming at once,
//! many more claims than stock, some repeating an Idempotency-Key; checked
//! against the record itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::helpers::{body, spawn_app_with};

const USERS: usize = 2_400;
const STOCK: i64 = 1_000;
const LIMIT: usize = 3;

#[derive(Debug)]
struct Answer {
    user: String,
    key: Option<String>,
    status: StatusCode,
    coupon: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_issues_exactly_the_stock_in_seq_order_within_limits() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let mut users = app.bulk_users("storm-a", USERS / 2).await;
    users.extend(app.bulk_users("storm-b", USERS / 2).await);
    let id = app
        .create_campaign(json!({"total_quantity": STOCK, "per_user_limit": LIMIT}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every user fires 1..=5 claims at once; every third user reuses one key
    // for two of them, so the gate sees replays racing their first request.
    let permits = Arc::new(Semaphore::new(512));
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for (n, (user, token)) in users.iter().enumerate() {
        let claims = 1 + n % 5;
        for c in 0..claims {
            let key = match (n % 3, c) {
                (0, 0 | 1) => Some(format!("retry-{n}")),
                (1, _) => Some(format!("k-{n}-{c}")),
                _ => None,
            };
            let (app, permits, id, user, token) = (
                app.clone(),
                permits.clone(),
                id.clone(),
                user.clone(),
                token.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let _p = permits.acquire().await.unwrap();
                let r = app.issue(&id, &token, key.as_deref()).await;
                let status = r.status();
                let coupon = if status == StatusCode::CREATED {
                    Some(body(r).await["id"].as_str().unwrap().to_owned())
                } else {
                    None
                };
                Answer {
                    user,
                    key,
                    status,
                    coupon,
                }
            }));
        }
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }

    // Only expected answers.
    for a in &answers {
        assert!(
            matches!(a.status, StatusCode::CREATED | StatusCode::CONFLICT),
            "unexpected {} for {a:?}",
            a.status
        );
    }

    // The record: exactly the stock, seq exactly 1..=STOCK, nobody above the limit.
    let rows: Vec<(String, String, i64, i64)> = app
        .record(&id)
        .await
        .into_iter()
        .map(|r| (r.id, r.user_id, r.seq, r.user_seq))
        .collect();
    assert_eq!(
        rows.len() as i64,
        STOCK,
        "promise 1: exactly the stock is issued"
    );
    assert!(
        rows.iter().map(|r| r.2).eq(1..=STOCK),
        "promise 6: seq is 1..=stock, no gaps, no repeats"
    );
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *per_user.entry(r.1.as_str()).or_default() += 1;
    }
    assert!(
        per_user.values().all(|&n| n <= LIMIT),
        "promise 2: nobody above the limit"
    );

    // Every 201 is in the record, for the user it was answered to.
    let in_record: HashMap<&str, &str> =
        rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    let mut answered = HashSet::new();
    for a in answers.iter().filter(|a| a.status == StatusCode::CREATED) {
        let coupon = a.coupon.as_deref().unwrap();
        assert_eq!(
            in_record.get(coupon),
            Some(&a.user.as_str()),
            "promise 3: a 201 coupon is in the record"
        );
        answered.insert(coupon);
    }
    assert_eq!(
        answered.len() as i64,
        STOCK,
        "every issued coupon was answered to someone"
    );

    // Replayed keys returned the same coupon.
    let mut by_key: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    for a in &answers {
        if let (Some(key), Some(coupon)) = (&a.key, &a.coupon) {
            by_key
                .entry((a.user.as_str(), key.as_str()))
                .or_default()
                .insert(coupon.as_str());
        }
    }
    assert!(
        by_key.values().all(|coupons| coupons.len() == 1),
        "promise 4: one key, one coupon"
    );
    let replays = answers
        .iter()
        .filter(|a| a.key.as_deref().is_some_and(|k| k.starts_with("retry-")))
        .count();
    assert!(replays > 0);

    // The gate agrees with the record.
    let c = body(app.get(&format!("/api/v1/campaigns/{id}"), None).await).await;
    assert_eq!(
        (
            c["issued_count"].as_i64(),
            c["remaining_quantity"].as_i64(),
            c["status"].as_str()
        ),
        (Some(STOCK), Some(0), Some("sold_out"))
    );

    // The admin dashboard counted every answer exactly once, under the storm:
    // issued + replayed = the 201s, sold out + limit reached = the 409s.
    let d = body(
        app.get(
            &format!("/api/v1/admin/campaigns/{id}/stats?seconds=600"),
            Some(&app.admin),
        )
        .await,
    )
    .await;
    let totals = &d["claims"]["totals"];
    let count = |k: &str| totals[k].as_u64().unwrap();
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count() as u64;
    assert_eq!(count("issued"), STOCK as u64, "{totals}");
    assert_eq!(count("issued") + count("replayed"), created, "{totals}");
    assert_eq!(
        count("sold_out") + count("limit_reached"),
        answers.len() as u64 - created,
        "{totals}"
    );
    assert_eq!(
        d["claims"]["latency"]["count"].as_u64(),
        Some(answers.len() as u64)
    );

    // Each coupon is its owner's `coupon.issued` inbox entry, exactly once
    // (the coupon is the entry: nothing is written for it besides the row).
    let mut issued_entries = HashSet::new();
    for owner in rows.iter().map(|r| r.1.clone()).collect::<HashSet<_>>() {
        let inbox = app
            .state
            .store
            .inbox(owner.parse().unwrap(), false, 200, None)
            .await
            .unwrap();
        for n in inbox.iter().filter(|n| n.kind == "coupon.issued") {
            assert!(
                issued_entries.insert((n.id.to_string(), owner.clone())),
                "one entry per coupon"
            );
        }
    }
    let coupons: HashSet<(String, String)> =
        rows.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    assert_eq!(issued_entries, coupons);
}
