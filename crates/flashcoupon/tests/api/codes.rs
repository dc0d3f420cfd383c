//! Codes (API.md "Codes"): unique codes made by a background job, exported
//! as CSV and redeemed once each; shared codes claimed first come first
//! served; guessing limited; both modes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{TestApp, assert_error, body, metric_at, spawn_app, spawn_app_with};

/// A campaign issued by unique codes.
async fn codes_campaign(app: &TestApp, total: i64, limit: i64) -> String {
    app.create_campaign(
        json!({"issuance": "codes", "total_quantity": total, "per_user_limit": limit}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn start_job(app: &TestApp, campaign: &str, b: Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/campaigns/{campaign}/codes"),
        Some(&app.admin),
        &b,
    )
    .await
}

/// Poll a job until it is no longer running (bounded: a job that never
/// ends fails the test).
async fn finished_job(app: &TestApp, job: &str) -> Value {
    for _ in 0..1_200 {
        let r = app
            .get(&format!("/api/v1/admin/jobs/{job}"), Some(&app.admin))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let j = body(r).await;
        if j["status"] != "running" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} still running after a minute");
}

/// Make `count` codes and wait for them.
async fn make_codes(app: &TestApp, campaign: &str, count: i64, pattern: Option<&str>) -> Value {
    let mut b = json!({"count": count});
    if let Some(p) = pattern {
        b["pattern"] = json!(p);
    }
    let r = start_job(app, campaign, b).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let accepted = body(r).await;
    assert_eq!(accepted["job"]["status"], "running");
    assert_eq!(accepted["job"]["total"], count);
    finished_job(app, accepted["job"]["id"].as_str().unwrap()).await
}

/// The export, as (code, state, user) per line, after checking its header.
async fn export(app: &TestApp, campaign: &str) -> Vec<(String, String, String)> {
    let r = app
        .get(
            &format!("/api/v1/admin/campaigns/{campaign}/codes.csv"),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("code,state,coupon_id,user_id,redeemed_at")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 5, "{l}");
            (f[0].to_owned(), f[1].to_owned(), f[3].to_owned())
        })
        .collect()
}

async fn redeem(app: &TestApp, token: &str, code: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/codes/redeem"))
        .bearer_auth(token)
        .json(&json!({"code": code}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn a_job_makes_codes_that_export_and_redeem_once_each() {
    let app = spawn_app().await;
    let campaign = codes_campaign(&app, 50, 2).await;
    let job = make_codes(&app, &campaign, 20, Some("fc-#####-#####")).await;
    assert_eq!(job["status"], "done");
    assert_eq!(job["done"], 20);
    assert_eq!(job["pattern"], "FC-#####-#####");

    let codes = export(&app, &campaign).await;
    assert_eq!(codes.len(), 20);
    let alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    for (code, state, _) in &codes {
        assert_eq!(state, "unused");
        assert_eq!(code.len(), 14, "{code}");
        assert!(code.starts_with("FC-") && &code[8..9] == "-", "{code}");
        assert!(
            code[3..8]
                .chars()
                .chain(code[9..].chars())
                .all(|c| alphabet.contains(c)),
            "{code}"
        );
    }
    assert_eq!(codes.iter().map(|c| &c.0).collect::<HashSet<_>>().len(), 20);

    let (alice, alice_token) = app.signup("code-alice@example.com").await;
    let (_, bob_token) = app.signup("code-bob@example.com").await;
    let code = codes[0].0.clone();
    // Any letter case, and spaces around it.
    let r = redeem(
        &app,
        &alice_token,
        &format!(" {} ", code.to_lowercase()),
        Some("k1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let coupon = body(r).await;
    assert_eq!(coupon["campaign_id"], campaign.as_str());
    assert_eq!(coupon["user_id"], alice.as_str());
    assert_eq!(coupon["status"], "available");

    // Once: for somebody else, and for Alice without her key.
    assert_error(
        redeem(&app, &bob_token, &code, None).await,
        StatusCode::CONFLICT,
        "code_used",
    )
    .await;
    assert_error(
        redeem(&app, &alice_token, &code, None).await,
        StatusCode::CONFLICT,
        "code_used",
    )
    .await;
    // Her retry with the same key is the same answer.
    let r = redeem(&app, &alice_token, &code, Some("k1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["id"], coupon["id"]);

    // The per-user limit holds across codes: a second code, then refused.
    let r = redeem(&app, &alice_token, &codes[1].0, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_error(
        redeem(&app, &alice_token, &codes[2].0, None).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    // A refused redemption leaves its code unused: Bob can still have it.
    let r = redeem(&app, &bob_token, &codes[2].0, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // The export tells who has which.
    let after: HashMap<String, (String, String)> = export(&app, &campaign)
        .await
        .into_iter()
        .map(|(c, s, u)| (c, (s, u)))
        .collect();
    assert_eq!(after[&code], ("redeemed".into(), alice.clone()));
    assert_eq!(after.values().filter(|(s, _)| s == "redeemed").count(), 3);
    assert_eq!(after.values().filter(|(s, _)| s == "unused").count(), 17);

    // The record: one coupon per redeemed code, carrying it.
    assert_eq!(app.record(&campaign).await.len(), 3);

    // The campaign's jobs, newest first.
    let jobs = body(
        app.get(
            &format!("/api/v1/admin/campaigns/{campaign}/jobs"),
            Some(&app.admin),
        )
        .await,
    )
    .await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0]["status"].as_str(), jobs[0]["done"].as_i64()),
        (Some("done"), Some(20))
    );
    assert_eq!(jobs[0]["id"], job["id"]);

    // Not by the button, and unknown codes are one answer.
    assert_error(
        app.issue(&campaign, &bob_token, None).await,
        StatusCode::CONFLICT,
        "not_claimable",
    )
    .await;
    assert_error(
        redeem(&app, &bob_token, "FC-22222-22222", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for bad in ["", "FC 1", "ÄÄÄÄ", &"A".repeat(65)] {
        assert_error(
            redeem(&app, &bob_token, bad, None).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
    }
}

#[tokio::test]
async fn codes_never_outnumber_the_stock_and_bad_jobs_change_nothing() {
    let app = spawn_app().await;
    let campaign = codes_campaign(&app, 10, 1).await;
    let count_error = |r| async move {
        let m = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(m.contains("count"), "{m}");
    };
    count_error(start_job(&app, &campaign, json!({"count": 11})).await).await;
    count_error(start_job(&app, &campaign, json!({"count": 0})).await).await;
    count_error(start_job(&app, &campaign, json!({"count": 10_000_001})).await).await;
    assert_eq!(make_codes(&app, &campaign, 6, None).await["status"], "done");
    count_error(start_job(&app, &campaign, json!({"count": 5})).await).await;
    // Default pattern: twelve random symbols.
    let job = make_codes(&app, &campaign, 4, None).await;
    assert_eq!(job["pattern"], "############");
    let codes = export(&app, &campaign).await;
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().any(|c| c.0.len() == 12));
    count_error(start_job(&app, &campaign, json!({"count": 1})).await).await;

    // The stock cannot shrink below the codes.
    assert_error(
        app.patch_json(
            &format!("/api/v1/campaigns/{campaign}"),
            Some(&app.admin),
            &json!({"total_quantity": 9}),
        )
        .await,
        StatusCode::CONFLICT,
        "quantity_below_issued",
    )
    .await;

    let other = codes_campaign(&app, 100, 1).await;
    for pattern in [
        "FC-####-####",
        "#########",
        "FC ##########",
        "",
        &"#".repeat(65),
    ] {
        let m = assert_error(
            start_job(&app, &other, json!({"count": 1, "pattern": pattern})).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        assert!(m.contains("pattern"), "{pattern:?}: {m}");
    }
    let claim = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        start_job(&app, &claim, json!({"count": 1})).await,
        StatusCode::CONFLICT,
        "wrong_issuance",
    )
    .await;
    let unknown = uuid::Uuid::now_v7();
    assert_error(
        start_job(&app, &unknown.to_string(), json!({"count": 1})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/admin/jobs/{unknown}"), Some(&app.admin))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (_, shopper) = app.signup("code-shopper@example.com").await;
    assert_error(
        app.post_json(
            &format!("/api/v1/campaigns/{other}/codes"),
            Some(&shopper),
            &json!({"count": 1}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Nothing of the refused jobs was written.
    assert!(export(&app, &other).await.is_empty());
    let jobs = body(
        app.get(
            &format!("/api/v1/admin/campaigns/{other}/jobs"),
            Some(&app.admin),
        )
        .await,
    )
    .await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);
    assert_error(
        app.get(
            &format!("/api/v1/admin/campaigns/{unknown}/jobs"),
            Some(&app.admin),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_users_sending_one_code_at_once_get_one_coupon() {
    let app = spawn_app_with(|s| s.code_guesses_per_address = 0).await;
    let campaign = codes_campaign(&app, 100, 1).await;
    make_codes(&app, &campaign, 3, None).await;
    let code = export(&app, &campaign).await[0].0.clone();
    let users = app.bulk_users("same-code", 50).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for (_, token) in users {
        let (app, code) = (app.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            redeem(&app, &token, &code, None).await.status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::CREATED | StatusCode::CONFLICT)),
        "{statuses:?}"
    );
    assert_eq!(app.record(&campaign).await.len(), 1);
    let redeemed: Vec<_> = export(&app, &campaign)
        .await
        .into_iter()
        .filter(|c| c.1 == "redeemed")
        .collect();
    assert_eq!(redeemed.len(), 1);
    assert_eq!(redeemed[0].0, code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_code_storm_keeps_the_claim_promises() {
    const STOCK: i64 = 100;
    const LIMIT: usize = 2;
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let campaign = app
        .create_campaign(json!({"issuance": "shared_code", "code": "storm-26",
            "total_quantity": STOCK, "per_user_limit": LIMIT}))
        .await;
    assert_eq!(campaign["code"], "STORM-26");
    assert_eq!(campaign["issuance"], "shared_code");
    let campaign = campaign["id"].as_str().unwrap().to_owned();
    let users = app.bulk_users("shared-storm", 150).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for (n, (user, token)) in users.into_iter().enumerate() {
        for c in 0..(1 + n % 3) {
            // Every fourth user sends its first two with one key: a retry.
            let key = (n % 4 == 0 && c < 2).then(|| format!("k-{n}"));
            let (app, user, token) = (app.clone(), user.clone(), token.clone());
            let code = if c % 2 == 0 { "STORM-26" } else { "storm-26" };
            tasks.push(tokio::spawn(async move {
                let r = redeem(&app, &token, code, key.as_deref()).await;
                let status = r.status();
                let coupon = if status == StatusCode::CREATED {
                    Some(body(r).await["id"].as_str().unwrap().to_owned())
                } else {
                    let b = body(r).await;
                    assert!(
                        ["sold_out", "limit_reached"]
                            .contains(&b["error"]["code"].as_str().unwrap()),
                        "{b}"
                    );
                    None
                };
                (user, status, coupon)
            }));
        }
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let rows = app.record(&campaign).await;
    assert_eq!(rows.len() as i64, STOCK, "promise 1: exactly the stock");
    assert!(
        rows.iter().map(|r| r.seq).eq(1..=STOCK),
        "promise 6: seq 1..=stock"
    );
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *per_user.entry(r.user_id.as_str()).or_default() += 1;
    }
    assert!(per_user.values().all(|&n| n <= LIMIT), "promise 2");
    let in_record: HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.user_id.as_str()))
        .collect();
    for (user, status, coupon) in &answers {
        if *status == StatusCode::CREATED {
            let coupon = coupon.as_deref().unwrap();
            assert_eq!(in_record.get(coupon), Some(&user.as_str()), "promise 3");
        }
    }
}

#[tokio::test]
async fn shared_codes_are_unique_among_live_campaigns_and_checked_by_field() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let past = |ms: i64| crate::helpers::rfc3339(now.plus_millis(ms));
    // An ended campaign's code is free again.
    app.create_campaign(json!({"issuance": "shared_code", "code": "AGAIN",
        "issue_starts_at": past(-7_200_000), "issue_ends_at": past(-3_600_000)}))
        .await;
    let live = app
        .create_campaign(json!({"issuance": "shared_code", "code": "again"}))
        .await;
    let r = app
        .post_json(
            "/api/v1/campaigns",
            Some(&app.admin),
            &app.campaign_body(json!({"issuance": "shared_code", "code": "AGAIN"})),
        )
        .await;
    let m = assert_error(r, StatusCode::CONFLICT, "code_taken").await;
    assert!(m.contains("code"), "{m}");
    // The code leads to the live campaign.
    let (_, token) = app.signup("again@example.com").await;
    let r = redeem(&app, &token, "Again", None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["campaign_id"], live["id"]);

    let field = |b: Value, field: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post_json("/api/v1/campaigns", Some(&app.admin), &app.campaign_body(b))
                .await;
            let m = assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
            assert!(m.contains(field), "{field}: {m}");
        }
    };
    field(json!({"issuance": "shared_code"}), "code").await;
    field(json!({"issuance": "shared_code", "code": "BF"}), "code").await;
    field(
        json!({"issuance": "shared_code", "code": "NO SPACES"}),
        "code",
    )
    .await;
    field(json!({"code": "CLAIMCODE"}), "code").await;
    field(json!({"issuance": "vouchers"}), "issuance").await;
    field(json!({"trigger": "birthday"}), "trigger").await;
    field(json!({"issuance": "codes", "trigger": "signup"}), "trigger").await;
    // Nothing of them was written.
    let list = body(app.get("/api/v1/campaigns", None).await).await;
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn guessing_codes_finds_nothing_and_is_cut_off() {
    let app = spawn_app().await;
    let campaign = codes_campaign(&app, 1_000, 1).await;
    make_codes(&app, &campaign, 100, None).await;
    let (_, guesser) = app.signup("guesser@example.com").await;
    let mut statuses = Vec::new();
    let started = std::time::Instant::now();
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..300 {
        // Random codes of the real shape.
        let code: String = (0..12)
            .map(|_| {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ"[(rng_state % 32) as usize] as char
            })
            .collect();
        statuses.push(redeem(&app, &guesser, &code, None).await.status());
    }
    assert!(!statuses.contains(&StatusCode::CREATED));
    // Ten misses a minute (one more back every six seconds), then refused
    // before any lookup.
    let misses = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    let refilled = (started.elapsed().as_secs() / 6) as usize;
    assert!((10..=10 + refilled).contains(&misses), "{statuses:?}");
    assert!(statuses[..10].iter().all(|s| *s == StatusCode::NOT_FOUND));
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(misses + refused, 300, "{statuses:?}");
    let r = redeem(&app, &guesser, "ANYTHING-AT-ALL", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // Even a real code waits: a guesser cannot confirm a hit.
    let real = export(&app, &campaign).await[0].0.clone();
    assert_eq!(
        redeem(&app, &guesser, &real, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Others are not held by it, and the metric shows the guessing.
    let (_, honest) = app.signup("honest@example.com").await;
    assert_eq!(
        redeem(&app, &honest, &real, None).await.status(),
        StatusCode::CREATED
    );
    let base = &app.base;
    let counted = metric_at(
        &app.client,
        base,
        "flashcoupon_code_redemptions_total{result=\"not_found\"}",
    )
    .await;
    assert_eq!(counted, misses as f64);
    let cut = metric_at(
        &app.client,
        base,
        "flashcoupon_code_redemptions_total{result=\"rate_limited\"}",
    )
    .await;
    assert_eq!(cut, (refused + 2) as f64);
    // And the admin dashboard shows the guessing.
    let stats = body(
        app.get(
            &format!("/api/v1/admin/campaigns/{campaign}/stats"),
            Some(&app.admin),
        )
        .await,
    )
    .await;
    assert_eq!(stats["code_guesses"]["failed"], misses);
    assert_eq!(stats["code_guesses"]["refused"], refused + 2);
}

async fn job_and_codes(app: &TestApp, job: &str, campaign: &str) -> (Value, i64) {
    let j = body(
        app.get(&format!("/api/v1/admin/jobs/{job}"), Some(&app.admin))
            .await,
    )
    .await;
    (j, export(app, campaign).await.len() as i64)
}

#[tokio::test]
async fn a_job_cut_off_by_a_stop_finishes_after_the_restart() {
    let mut app = spawn_app().await;
    let campaign = codes_campaign(&app, 200_000, 1).await;
    let r = start_job(&app, &campaign, json!({"count": 200_000})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = body(r).await["job"]["id"].as_str().unwrap().to_owned();
    // Stop it part-way.
    for _ in 0..2_000 {
        let j = body(
            app.get(&format!("/api/v1/admin/jobs/{job}"), Some(&app.admin))
                .await,
        )
        .await;
        if j["done"].as_i64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let settings = app.same_storage();
    app.stop().await;
    // Stopped part-way, with `done` exactly the codes written so far.
    let sql = "SELECT status, done, (SELECT COUNT(*) FROM campaign_codes) AS written FROM jobs";
    let (status, done, written): (String, i64, i64) = match &app.postgres {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap()
        }
        None => sqlx::query_as(sql)
            .fetch_one(&mut app.db().await)
            .await
            .unwrap(),
    };
    assert_eq!(status, "running");
    assert!(0 < done && done < 200_000, "{done}");
    assert_eq!(done, written);
    // The stopped instance's lease would hold the job until it runs out:
    // play that it ran out.
    app.execute("UPDATE jobs SET lease_until = 0").await;
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let app = crate::helpers::spawn_instance(&settings, dir).await;
    let j = finished_job(&app, &job).await;
    assert_eq!(j["status"], "done", "{j}");
    // `done` is exactly the codes written, none twice.
    let (j, written) = job_and_codes(&app, &job, &campaign).await;
    assert_eq!(j["done"], 200_000);
    assert_eq!(written, 200_000);
}

#[tokio::test]
async fn a_job_the_record_refuses_says_failed_and_gives_its_codes_back() {
    let app = spawn_app().await;
    let campaign = codes_campaign(&app, 10, 1).await;
    // The record refuses every code (a disk that is full, say).
    match &app.postgres {
        Some(_) => {
            app.execute(
                "CREATE FUNCTION refuse_codes() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql",
            )
            .await;
            app.execute(
                "CREATE TRIGGER refuse_codes BEFORE INSERT ON campaign_codes \
                 FOR EACH ROW EXECUTE FUNCTION refuse_codes()",
            )
            .await;
        }
        None => {
            app.execute(
                "CREATE TRIGGER refuse_codes BEFORE INSERT ON campaign_codes \
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            )
            .await;
        }
    }
    let r = start_job(&app, &campaign, json!({"count": 10})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = body(r).await["job"]["id"].as_str().unwrap().to_owned();
    let j = finished_job(&app, &job).await;
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["done"], 0);
    assert!(j["error"].as_str().unwrap().contains("disk full"), "{j}");
    assert!(export(&app, &campaign).await.is_empty());
    // Its ten codes are free to promise again.
    app.execute(match &app.postgres {
        Some(_) => "DROP TRIGGER refuse_codes ON campaign_codes",
        None => "DROP TRIGGER refuse_codes",
    })
    .await;
    assert_eq!(
        make_codes(&app, &campaign, 10, None).await["status"],
        "done"
    );
}

#[tokio::test]
async fn a_code_another_coupon_took_meanwhile_gives_its_stock_and_slot_back() {
    use flashcoupon::issuing::claim::{ClaimError, Door, claim};
    let app = spawn_app().await;
    let campaign = codes_campaign(&app, 5, 1).await;
    make_codes(&app, &campaign, 2, None).await;
    let codes = export(&app, &campaign).await;
    let (_, alice) = app.signup("took-alice@example.com").await;
    let (bob, bob_token) = app.signup("took-bob@example.com").await;
    assert_eq!(
        redeem(&app, &alice, &codes[0].0, None).await.status(),
        StatusCode::CREATED
    );
    // What a lease that ran out during a slow commit would let through: a
    // second claim with the same code. The record refuses it...
    let refused = claim(
        &app.state,
        campaign.parse().unwrap(),
        bob.parse().unwrap(),
        None,
        Door::Code(codes[0].0.clone().into()),
    )
    .await;
    assert!(
        matches!(refused, Err(ClaimError::Unavailable(_))),
        "{refused:?}"
    );
    // ...and nothing stays taken: Bob's slot (limit 1) and the seq are back.
    let r = redeem(&app, &bob_token, &codes[1].0, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r).await["seq"], 2, "seqs stay gapless");
    let view = body(
        app.get(&format!("/api/v1/campaigns/{campaign}"), None)
            .await,
    )
    .await;
    assert_eq!(view["issued_count"], 2);
    assert_eq!(view["remaining_quantity"], 3);
}

#[tokio::test]
async fn a_retry_in_flight_waits_and_a_key_cannot_redeem_two_codes() {
    let app = spawn_app().await;
    let campaign = codes_campaign(&app, 10, 2).await;
    make_codes(&app, &campaign, 3, None).await;
    let codes = export(&app, &campaign).await;
    let (alice, alice_token) = app.signup("inflight-alice@example.com").await;
    let (_, bob_token) = app.signup("inflight-bob@example.com").await;
    // Alice's first try holds the code (as if still being decided).
    let now = app.clock.now();
    let until = now.plus_millis(30_000);
    let held = app
        .state
        .store
        .lease_code(&codes[0].0, &format!("{alice}:k1"), now, until)
        .await
        .unwrap();
    assert_eq!(held, None);
    // Her retry with the same key: wait and retry, not "used".
    assert_error(
        redeem(&app, &alice_token, &codes[0].0, Some("k1")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    // Anybody else: it is being redeemed.
    assert_error(
        redeem(&app, &bob_token, &codes[0].0, None).await,
        StatusCode::CONFLICT,
        "code_used",
    )
    .await;
    app.state
        .store
        .release_code(&codes[0].0, until)
        .await
        .unwrap();

    // One key, one code: the same key on another code is refused, and that
    // code stays free for anybody.
    let r = redeem(&app, &alice_token, &codes[1].0, Some("k2")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_error(
        redeem(&app, &alice_token, &codes[2].0, Some("k2")).await,
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(
        redeem(&app, &bob_token, &codes[2].0, None).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_shared_code_cannot_be_shared_by_two_live_campaigns_nor_shadow_a_unique_code() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let at = |ms: i64| crate::helpers::rfc3339(now.plus_millis(ms));
    let ended = app
        .create_campaign(json!({"issuance": "shared_code", "code": "REOPEN",
            "issue_starts_at": at(-7_200_000), "issue_ends_at": at(-3_600_000)}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_campaign(json!({"issuance": "shared_code", "code": "REOPEN"}))
        .await;
    // Reopening the ended one would make two live campaigns with one code.
    assert_error(
        app.patch_json(
            &format!("/api/v1/campaigns/{ended}"),
            Some(&app.admin),
            &json!({"issue_ends_at": at(7_200_000)}),
        )
        .await,
        StatusCode::CONFLICT,
        "code_taken",
    )
    .await;
    let view = body(app.get(&format!("/api/v1/campaigns/{ended}"), None).await).await;
    assert_eq!(view["status"], "ended", "nothing changed");

    // A shared code spelled like an existing unique code is refused.
    let campaign = codes_campaign(&app, 10, 1).await;
    make_codes(&app, &campaign, 1, None).await;
    let unique = export(&app, &campaign).await[0].0.clone();
    let r = app
        .post_json(
            "/api/v1/campaigns",
            Some(&app.admin),
            &app.campaign_body(json!({"issuance": "shared_code", "code": unique})),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "code_taken").await;
}
