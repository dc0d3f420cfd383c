//! Points (API.md "Points", promises 8 and 9): earn, spend, refund, holds
//! and adjust through the API, the ledger's FIFO lots and expiry with a
//! moved clock (also with two instances), storms on one user, and the
//! record refusing a negative balance written behind the code's back.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, body, spawn_app, spawn_instance};
use crate::payments::{EVENTS, payment, reserve};
use crate::reservations::{holders, wallet_status};
use crate::service_keys::service_key;

const DAY: Duration = Duration::from_secs(86_400);

fn at(user: &str, what: &str) -> String {
    format!("/api/v1/users/{user}/points/{what}")
}

async fn earn(
    app: &TestApp,
    key: &str,
    user: &str,
    amount: i64,
    reference: &str,
    days: u32,
) -> Value {
    let r = app
        .post_json(
            &at(user, "earn"),
            Some(key),
            &json!({"amount": amount, "reference": reference, "reason": "a purchase", "valid_days": days}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    body(r).await
}

async fn spend(
    app: &TestApp,
    key: &str,
    user: &str,
    amount: i64,
    reference: &str,
) -> reqwest::Response {
    app.post_json(
        &at(user, "spend"),
        Some(key),
        &json!({"amount": amount, "reference": reference, "reason": "checkout"}),
    )
    .await
}

async fn points(app: &TestApp, token: &str) -> Value {
    let r = app.get("/api/v1/me/points", Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await
}

/// Every entry of the caller's ledger, oldest first, through every page.
async fn ledger(app: &TestApp, token: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = "/api/v1/me/points/history?limit=7".to_owned();
    loop {
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = body(r).await;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/me/points/history?limit=7&before={next}"),
            None => break,
        }
    }
    entries.reverse();
    entries
}

/// The ledger adds up: each entry starts where the one before ended, and
/// the balance is the sum of every amount.
async fn assert_adds_up(app: &TestApp, token: &str) -> Vec<Value> {
    let entries = ledger(app, token).await;
    let mut balance = 0;
    for e in &entries {
        balance += e["amount"].as_i64().unwrap();
        assert_eq!(e["balance_after"].as_i64().unwrap(), balance, "{e}");
        assert!(balance >= 0);
    }
    assert_eq!(points(app, token).await["balance"], balance);
    entries
}

fn kinds(entries: &[Value]) -> Vec<(String, i64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Two expiry rounds on each instance, run now rather than waited for (the
/// background loops run the same round every 500 ms).
async fn more_rounds(apps: &[&TestApp]) {
    for _ in 0..2 {
        for app in apps {
            flashcoupon::points::expire_due(&app.state).await.unwrap();
        }
    }
}

/// Poll (bounded) until the caller's balance reads `want`.
async fn balance_becomes(app: &TestApp, token: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let b = points(app, token).await["balance"].as_i64().unwrap();
        if b == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "balance stayed {b}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn earn_and_spend_are_entries_of_a_ledger_and_a_reference_answers_once() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("points@example.com").await;
    let first = earn(&app, &key, &user, 5_000, "order-1-earn", 365).await;
    assert_eq!(
        (&first["kind"], &first["amount"], &first["balance_after"]),
        (&json!("earn"), &json!(5_000), &json!(5_000))
    );
    // The same earn again: 200 with the first entry; other fields: 409.
    let again = app
        .post_json(
            &at(&user, "earn"),
            Some(&key),
            &json!({"amount": 5_000, "reference": "order-1-earn", "reason": "a purchase", "valid_days": 365}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(body(again).await["id"], first["id"]);
    let other = app
        .post_json(
            &at(&user, "earn"),
            Some(&key),
            &json!({"amount": 9_000, "reference": "order-1-earn", "reason": "a purchase"}),
        )
        .await;
    assert_error(other, StatusCode::CONFLICT, "reference_conflict").await;

    let r = spend(&app, &key, &user, 1_200, "order-2-spend").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let spent = body(r).await;
    assert_eq!(
        (&spent["amount"], &spent["balance_after"]),
        (&json!(-1_200), &json!(3_800))
    );
    // Over the balance: 409, nothing written.
    let r = spend(&app, &key, &user, 3_801, "order-3-spend").await;
    assert_error(r, StatusCode::CONFLICT, "insufficient_points").await;
    let p = points(&app, &token).await;
    assert_eq!((&p["balance"], &p["held"]), (&json!(3_800), &json!(0)));
    assert_eq!(p["expiring"].as_array().unwrap().len(), 1);
    assert_eq!(p["expiring"][0]["amount"], 3_800);
    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(
        kinds(&entries),
        [("earn".into(), 5_000), ("spend".into(), -1_200)]
    );

    // The shopper hears about the points (the inbox is written behind the
    // answer: poll, bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get("/api/v1/me/notifications", Some(&token)).await;
        let heard = body(r).await.to_string();
        if heard.contains("points.earned") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{heard}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An admin reads the same through the shop's door, and adjusts with a reason.
    let r = app.get(&at(&user, "history"), Some(&app.admin)).await;
    assert_eq!(body(r).await["entries"].as_array().unwrap().len(), 2);
    let r = app
        .post_json(
            &format!("/api/v1/admin/users/{user}/points/adjust"),
            Some(&app.admin),
            &json!({"amount": -800, "reason": "goodwill clawback", "reference": "adj-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["balance_after"], 3_000);
    let r = app
        .get(
            "/api/v1/admin/users/lookup?email=points@example.com",
            Some(&app.admin),
        )
        .await;
    assert_eq!(body(r).await["id"], user.as_str());
}

#[tokio::test]
async fn bad_amounts_references_users_and_callers_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("bad-points@example.com").await;
    earn(&app, &key, &user, 100, "seed", 30).await;
    let long = "r".repeat(129);
    for (body_, field) in [
        (
            json!({"amount": 0, "reference": "a", "reason": "x"}),
            "amount",
        ),
        (
            json!({"amount": -5, "reference": "a", "reason": "x"}),
            "amount",
        ),
        (
            json!({"amount": 1.5, "reference": "a", "reason": "x"}),
            "amount",
        ),
        (
            json!({"amount": 1_000_000_000_001_i64, "reference": "a", "reason": "x"}),
            "amount",
        ),
        (
            json!({"amount": 10, "reference": long, "reason": "x"}),
            "reference",
        ),
        (
            json!({"amount": 10, "reference": "", "reason": "x"}),
            "reference",
        ),
        (
            json!({"amount": 10, "reference": "a", "reason": ""}),
            "reason",
        ),
        (
            json!({"amount": 10, "reference": "a", "reason": "x", "valid_days": 0}),
            "valid_days",
        ),
        (json!({"amount": 10, "reason": "x"}), "reference"),
    ] {
        let r = app.post_json(&at(&user, "earn"), Some(&key), &body_).await;
        let message = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(message.contains(field), "{message} should name {field}");
    }
    let zero = json!({"amount": 0, "reason": "x", "reference": "adj"});
    let r = app
        .post_json(
            &format!("/api/v1/admin/users/{user}/points/adjust"),
            Some(&app.admin),
            &zero,
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    // Unknown users, a shopper or nobody calling, a refund of no spend.
    let ok = json!({"amount": 10, "reference": "b", "reason": "x"});
    let nobody = uuid::Uuid::now_v7();
    let r = app
        .post_json(&at(&nobody.to_string(), "earn"), Some(&key), &ok)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post_json(&at("not-a-uuid", "spend"), Some(&key), &ok)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.post_json(&at(&user, "earn"), Some(&token), &ok).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.post_json(&at(&user, "earn"), None, &ok).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refund = json!({"spend_reference": "never", "reference": "rf", "reason": "x"});
    let r = app
        .post_json(&at(&user, "refund"), Some(&key), &refund)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    // An earn's reference is not a spend to refund either.
    let refund = json!({"spend_reference": "seed", "reference": "rf", "reason": "x"});
    let r = app
        .post_json(&at(&user, "refund"), Some(&key), &refund)
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let hold = json!({"order_id": "o", "amount": 101});
    let r = app.post_json(&at(&user, "holds"), Some(&key), &hold).await;
    assert_error(r, StatusCode::CONFLICT, "insufficient_points").await;
    let r = app
        .post_json(
            &at(&user, "holds/nothing-held/confirm"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(
        kinds(&entries),
        [("earn".into(), 100)],
        "nothing else was written"
    );
    assert_eq!(points(&app, &token).await["held"], 0);
}

/// Three lots with different expiries: spends take the earliest first; an
/// expiry writes one `expire` per lot for what is left of it, once, with
/// two instances looking; a refund gives back to the lots spent from, with
/// their old expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lots_are_spent_earliest_first_expire_once_and_refunds_restore_them() {
    let app = spawn_app().await;
    let other = spawn_instance(&app.same_storage(), tempfile::tempdir().unwrap()).await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("lots@example.com").await;
    earn(&app, &key, &user, 100, "a-10d", 10).await;
    earn(&app, &key, &user, 200, "b-100d", 100).await;
    earn(&app, &key, &user, 50, "c-5d", 5).await;
    // 120 = all of C (5 days) and 70 of A (10 days); B untouched.
    assert_eq!(
        spend(&app, &key, &user, 120, "s1").await.status(),
        StatusCode::CREATED
    );
    let p = points(&app, &token).await;
    let left: Vec<i64> = p["expiring"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(left, [30, 200], "A has 30 left, B all of its 200");

    // Day 11: A's 30 expire, on whichever instance gets there first, once.
    app.clock.advance(11 * DAY);
    other.clock.advance(11 * DAY);
    balance_becomes(&app, &token, 200).await;
    // Another two rounds on both instances change nothing.
    more_rounds(&[&app, &other]).await;
    let entries = assert_adds_up(&app, &token).await;
    let expired: Vec<i64> = kinds(&entries)
        .into_iter()
        .filter(|(k, _)| k == "expire")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(expired, [-30], "one expire, for what was left of A");

    // A refund of s1 gives 50 back to C and 70 to A, both already past
    // their time: they expire again at the next round, and B is untouched.
    let refund = json!({"spend_reference": "s1", "reference": "rf-1", "reason": "returned"});
    let r = app
        .post_json(&at(&user, "refund"), Some(&key), &refund)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["amount"], 120);
    let r = app
        .post_json(
            &at(&user, "refund"),
            Some(&key),
            &json!({"spend_reference": "s1", "reference": "rf-2", "reason": "again"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "already_refunded").await;
    balance_becomes(&app, &token, 200).await;
    let entries = assert_adds_up(&app, &token).await;
    let mut expired: Vec<i64> = kinds(&entries)
        .into_iter()
        .filter(|(k, _)| k == "expire")
        .map(|(_, a)| a)
        .collect();
    expired.sort();
    assert_eq!(
        expired,
        [-70, -50, -30],
        "A and C expired what came back to them"
    );
    assert_eq!(points(&app, &token).await["expiring"][0]["amount"], 200);

    // Day 101: B expires, once.
    app.clock.advance(90 * DAY);
    other.clock.advance(90 * DAY);
    balance_becomes(&app, &token, 0).await;
    more_rounds(&[&app, &other]).await;
    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(
        kinds(&entries)
            .iter()
            .filter(|(k, _)| k == "expire")
            .count(),
        4
    );
}

#[tokio::test]
async fn a_refund_gives_back_to_the_lots_spent_from_with_their_expiry() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("refund@example.com").await;
    let a = earn(&app, &key, &user, 100, "a", 10).await;
    let b = earn(&app, &key, &user, 100, "b", 100).await;
    assert_eq!(
        spend(&app, &key, &user, 150, "s").await.status(),
        StatusCode::CREATED
    );
    let p = points(&app, &token).await;
    assert_eq!(
        p["expiring"],
        json!([{"amount": 50, "expires_at": b["expires_at"]}])
    );
    let refund = json!({"spend_reference": "s", "reference": "r", "reason": "returned"});
    let r = app
        .post_json(&at(&user, "refund"), Some(&key), &refund)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let p = points(&app, &token).await;
    assert_eq!(
        p["expiring"],
        json!([{"amount": 100, "expires_at": a["expires_at"]}, {"amount": 100, "expires_at": b["expires_at"]}])
    );
    // The same refund again: the first entry.
    let r = app
        .post_json(&at(&user, "refund"), Some(&key), &refund)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_adds_up(&app, &token).await;
}

/// Holds for orders, ended by payment events (promise 8): a payment spends
/// them, a failure gives them back, a refund gives the spend back, and a
/// payment after the hold ran out confirms nothing and is reported.
#[tokio::test]
async fn holds_end_once_by_payment_events_and_a_late_payment_is_reported() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("holds@example.com").await;
    earn(&app, &key, &user, 1_000, "seed", 365).await;
    let hold = |order: &str, amount: i64, ttl: u32| json!({"order_id": order, "amount": amount, "ttl_secs": ttl});
    let r = app
        .post_json(&at(&user, "holds"), Some(&key), &hold("o-paid", 300, 600))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first = body(r).await;
    assert_eq!(
        (&first["kind"], &first["amount"]),
        (&json!("hold"), &json!(-300))
    );
    // The same order again: the first hold; another amount: 409.
    let r = app
        .post_json(&at(&user, "holds"), Some(&key), &hold("o-paid", 300, 600))
        .await;
    assert_eq!(
        (r.status(), body(r).await["id"].clone()),
        (StatusCode::OK, first["id"].clone())
    );
    let r = app
        .post_json(&at(&user, "holds"), Some(&key), &hold("o-paid", 200, 600))
        .await;
    assert_error(r, StatusCode::CONFLICT, "reference_conflict").await;
    let p = points(&app, &token).await;
    assert_eq!((&p["balance"], &p["held"]), (&json!(700), &json!(300)));

    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-1", "payment.succeeded", "o-paid"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(body(r).await["outcome"], "confirmed 1 points hold(s)");
    let p = points(&app, &token).await;
    assert_eq!((&p["balance"], &p["held"]), (&json!(700), &json!(0)));
    // Confirmed: a release is refused, the same event again does nothing.
    let r = app
        .post_json(&at(&user, "holds/o-paid/release"), Some(&key), &json!({}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_held").await;
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-1", "payment.succeeded", "o-paid"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A refund of the order gives the spend back.
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("refund-1", "order.refunded", "o-paid"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(points(&app, &token).await["balance"], 1_000);

    // A failed payment gives the hold back.
    app.post_json(&at(&user, "holds"), Some(&key), &hold("o-failed", 400, 600))
        .await;
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("fail-1", "payment.failed", "o-failed"),
        )
        .await;
    assert_eq!(body(r).await["outcome"], "released 1 points hold(s)");
    assert_eq!(points(&app, &token).await["balance"], 1_000);

    // Confirmed by the shop over HTTP: spent, and the owner hears it.
    app.post_json(&at(&user, "holds"), Some(&key), &hold("o-http", 100, 600))
        .await;
    let r = app
        .post_json(&at(&user, "holds/o-http/confirm"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let kinds_written: Vec<String> = body(r).await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds_written, ["release", "spend"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inbox = body(
            app.get("/api/v1/me/notifications?limit=100", Some(&token))
                .await,
        )
        .await;
        let told = inbox["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "points.spent" && n["data"]["order_id"] == "o-http");
        if told {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{inbox}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Refund it, to keep the balance below as it was.
    app.post_json(
        EVENTS,
        Some(&key),
        &payment("refund-http", "order.refunded", "o-http"),
    )
    .await;
    assert_eq!(points(&app, &token).await["balance"], 1_000);

    // A hold that runs out comes back by itself; the payment after it
    // confirms nothing and is reported for a refund.
    app.post_json(&at(&user, "holds"), Some(&key), &hold("o-late", 250, 1))
        .await;
    assert_eq!(points(&app, &token).await["held"], 250);
    app.clock.advance(Duration::from_secs(2));
    let r = app
        .post_json(&at(&user, "holds/o-late/confirm"), Some(&key), &json!({}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "hold_expired").await;
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-late", "payment.succeeded", "o-late"),
        )
        .await;
    assert_eq!(
        body(r).await["outcome"],
        "a points hold of 250 had expired: published payment.after_expiry"
    );
    balance_becomes(&app, &token, 1_000).await;
    assert_eq!(points(&app, &token).await["held"], 0);

    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(
        kinds(&entries),
        [
            ("earn".into(), 1_000),
            ("hold".into(), -300),
            ("release".into(), 300),
            ("spend".into(), -300),
            ("refund".into(), 300),
            ("hold".into(), -400),
            ("release".into(), 400),
            ("hold".into(), -100),
            ("release".into(), 100),
            ("spend".into(), -100),
            ("refund".into(), 100),
            ("hold".into(), -250),
            ("release".into(), 250),
        ]
    );
}

/// Many concurrent spends and holds on one user whose balance covers only
/// some: exactly the covered ones succeed, no read ever sees a negative
/// balance, and the entries add up to the balance at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_spends_and_holds_on_one_user_takes_exactly_what_the_balance_covers() {
    const EACH: i64 = 70;
    const TRIES: usize = 60;
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("storm@example.com").await;
    // Three lots, so takes cross lot boundaries.
    earn(&app, &key, &user, 500, "l1", 30).await;
    earn(&app, &key, &user, 500, "l2", 60).await;
    earn(&app, &key, &user, 400, "l3", 90).await;
    let covered = 1_400 / EACH; // 20 of 60
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (client, url, token, stop) = (
            app.client.clone(),
            app.url("/api/v1/me/points"),
            token.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let p: Value = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(p["balance"].as_i64().unwrap() >= 0, "{p}");
                assert!(p["held"].as_i64().unwrap() >= 0, "{p}");
                reads += 1;
            }
            reads
        })
    };
    let mut tasks = Vec::new();
    for i in 0..TRIES {
        let (client, key) = (app.client.clone(), key.clone());
        let (url, b) = if i % 2 == 0 {
            (
                app.url(&at(&user, "spend")),
                json!({"amount": EACH, "reference": format!("s-{i}"), "reason": "storm"}),
            )
        } else {
            (
                app.url(&at(&user, "holds")),
                json!({"amount": EACH, "order_id": format!("o-{i}")}),
            )
        };
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&b)
                .send()
                .await
                .unwrap();
            (i, r.status())
        }));
    }
    let (mut spent, mut held) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (i, StatusCode::CREATED) if i % 2 == 0 => spent += 1,
            (_, StatusCode::CREATED) => held += 1,
            (_, StatusCode::CONFLICT) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);
    assert_eq!(spent + held, covered, "exactly the covered ones succeeded");
    let p = points(&app, &token).await;
    assert_eq!(
        (&p["balance"], &p["held"]),
        (&json!(0), &json!(held * EACH))
    );
    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(entries.len(), 3 + covered as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_reference_from_many_concurrent_requests_is_one_entry() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("same-ref@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (client, url, key) = (app.client.clone(), app.url(&at(&user, "earn")), key.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"amount": 300, "reference": "once", "reason": "signup bonus"}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let b: Value = r.json().await.unwrap();
            (status, b["id"].as_str().unwrap().to_owned())
        }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert!(
            matches!(status, StatusCode::CREATED | StatusCode::OK),
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(id);
    }
    assert_eq!((created, ids.len()), (1, 1), "one entry, answered to all");
    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(kinds(&entries), [("earn".into(), 300)]);
}

/// Promise 9 in the record itself: writes behind the code's back that
/// would make a balance negative, or break the chain, are refused.
#[tokio::test]
async fn the_record_refuses_a_negative_balance_written_behind_the_codes_back() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("behind@example.com").await;
    let e = earn(&app, &key, &user, 100, "seed", 30).await;
    let id = e["id"].as_str().unwrap();
    let refused = [
        // The account below zero.
        format!("UPDATE point_accounts SET balance = -1 WHERE user_id = '{user}'"),
        // An entry that ends below zero.
        format!(
            "INSERT INTO point_entries (id, user_id, seq, prev_seq, prev_balance, kind, amount, \
             balance_after, created_at) VALUES ('{}', '{user}', 2, 1, 100, 'spend', -150, -50, 0)",
            uuid::Uuid::now_v7()
        ),
        // An entry that does not start where the last one ended.
        format!(
            "INSERT INTO point_entries (id, user_id, seq, prev_seq, prev_balance, kind, amount, \
             balance_after, created_at) VALUES ('{}', '{user}', 2, 1, 900, 'spend', -150, 750, 0)",
            uuid::Uuid::now_v7()
        ),
        // A later entry that names no entry before it (a NULL must not
        // slip past the chain's check and its foreign key).
        format!(
            "INSERT INTO point_entries (id, user_id, seq, prev_seq, prev_balance, kind, amount, \
             balance_after, created_at) VALUES ('{}', '{user}', 2, NULL, 900, 'spend', -150, 750, 0)",
            uuid::Uuid::now_v7()
        ),
        // A second entry in the same place of the chain.
        format!(
            "INSERT INTO point_entries (id, user_id, seq, prev_seq, prev_balance, kind, amount, \
             balance_after, created_at) VALUES ('{}', '{user}', 1, NULL, 0, 'earn', 900, 900, 0)",
            uuid::Uuid::now_v7()
        ),
        // Entries are immutable.
        format!("UPDATE point_entries SET amount = 1000, balance_after = 1000 WHERE id = '{id}'"),
        format!("DELETE FROM point_entries WHERE id = '{id}'"),
        // The account pointing at a balance no entry ended with.
        format!("UPDATE point_accounts SET balance = 5000 WHERE user_id = '{user}'"),
    ];
    for sql in refused {
        assert!(
            app.try_execute(&sql).await.is_err(),
            "the record took: {sql}"
        );
    }
    let entries = assert_adds_up(&app, &token).await;
    assert_eq!(kinds(&entries), [("earn".into(), 100)]);
}

/// An order that holds a coupon and points: a payment after the points
/// hold ran out (but before the coupon's did) confirms the coupon and
/// reports the points for a refund; a repeated hold request for an order
/// whose hold has ended says so.
#[tokio::test]
async fn a_payment_confirming_the_coupon_still_reports_the_points_hold_that_ran_out() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let holder = holders(&app, 1).await.remove(0);
    let user = wallet_status(&app, &holder.0, &holder.1).await["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    earn(&app, &key, &user, 1_000, "seed", 365).await;
    reserve(&app, &holder, "mixed", 600).await;
    let hold = json!({"order_id": "mixed", "amount": 200, "ttl_secs": 1});
    let r = app.post_json(&at(&user, "holds"), Some(&key), &hold).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.clock.advance(Duration::from_secs(2));
    let r = app
        .post_json(
            EVENTS,
            Some(&key),
            &payment("pay-mixed", "payment.succeeded", "mixed"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let outcome = body(r).await["outcome"].as_str().unwrap().to_owned();
    assert!(
        outcome.contains("confirmed 1 reservation")
            && outcome.contains("points hold of 200 had expired"),
        "{outcome}"
    );
    assert_eq!(
        wallet_status(&app, &holder.0, &holder.1).await["status"],
        "used"
    );
    balance_becomes(&app, &holder.0, 1_000).await;
    // The same hold again: it ran out, and nothing is held.
    let r = app.post_json(&at(&user, "holds"), Some(&key), &hold).await;
    assert_error(r, StatusCode::CONFLICT, "hold_expired").await;
    assert_eq!(points(&app, &holder.0).await["held"], 0);
}

/// The inbox's `points.expiring_soon` warnings for the caller, by amount.
async fn warnings(app: &TestApp, token: &str) -> Vec<i64> {
    let r = app
        .get("/api/v1/me/notifications?limit=100", Some(token))
        .await;
    let mut amounts: Vec<i64> = body(r).await["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "points.expiring_soon")
        .map(|n| n["data"]["amount"].as_i64().unwrap())
        .collect();
    amounts.sort_unstable();
    amounts
}

/// Poll (bounded) until the caller's warnings read `want`, then check two
/// more expiry rounds add none (each lot is warned of once).
async fn warned(app: &TestApp, token: &str, want: &[i64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while warnings(app, token).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "warnings {:?}, expected {want:?}",
            warnings(app, token).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    more_rounds(&[app]).await;
    assert_eq!(warnings(app, token).await, want, "each lot warned of once");
}

#[tokio::test]
async fn owners_hear_of_points_expiring_within_seven_days_once_per_lot() {
    let app = spawn_app().await;
    let (_, key) = service_key(&app, "shop").await;
    let (user, token) = app.signup("expiring@example.com").await;
    earn(&app, &key, &user, 100, "soon", 10).await;
    earn(&app, &key, &user, 200, "later", 30).await;
    // Spent down to 60 of the first lot: the warning says what is left.
    assert_eq!(
        spend(&app, &key, &user, 40, "s").await.status(),
        StatusCode::CREATED
    );
    more_rounds(&[&app]).await;
    assert_eq!(
        warnings(&app, &token).await,
        [0; 0],
        "nothing within 7 days yet"
    );
    // Day 4: the first lot is six days from its end.
    app.clock.advance(4 * DAY);
    warned(&app, &token, &[60]).await;
    // Day 24: the second lot is six days from its end.
    app.clock.advance(20 * DAY);
    warned(&app, &token, &[60, 200]).await;
}
