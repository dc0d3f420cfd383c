//! The admin's summaries (API.md "Statistics") against what a drop actually
//! did: the claims' answers this test saw, the uses it made, the wallet;
//! across a restart; and the bad input around them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Poll `path` until `done` holds (the claim counts reach the record about
/// every second; summaries are cached for a second or two).
pub(crate) async fn poll(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let r = app.get(path, Some(&app.admin)).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        last = body(r).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there; last: {last:#}");
}

#[tokio::test]
async fn a_campaign_summary_is_what_the_drop_did_and_survives_a_restart() {
    let mut app = spawn_app().await;
    let c = app.create_campaign(json!({"total_quantity": 6})).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let users = app.bulk_users("summary", 9).await;

    // Eight shoppers at once for six coupons: six 201s, two sold out.
    let answers = futures::future::join_all(
        users[..8]
            .iter()
            .map(|(_, token)| app.issue(&id, token, Some("first"))),
    )
    .await;
    let mut coupons = Vec::new();
    let mut winners = Vec::new();
    let mut sold_out = 0;
    for (r, (user, token)) in answers.into_iter().zip(&users) {
        match r.status() {
            StatusCode::CREATED => {
                coupons.push(body(r).await);
                winners.push((user.clone(), token.clone()));
            }
            StatusCode::CONFLICT => {
                assert_eq!(body(r).await["error"]["code"], "sold_out");
                sold_out += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((coupons.len(), sold_out), (6, 2));
    // The same key again is a replay; another key is over the limit.
    let (winner, token) = &winners[0];
    assert_eq!(
        app.issue(&id, token, Some("first")).await.status(),
        StatusCode::CREATED
    );
    let r = app.issue(&id, token, Some("second")).await;
    assert_eq!(body(r).await["error"]["code"], "limit_reached");
    // Paused: the ninth shopper is refused as such.
    let path = format!("/api/v1/campaigns/{id}");
    let r = app
        .patch_json(&path, Some(&app.admin), &json!({"paused": true}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.issue(&id, &users[8].1, None).await;
    assert_eq!(body(r).await["error"]["code"], "paused");

    // Two uses, by their holders.
    let mut discount_total = 0;
    for (coupon, amount) in coupons.iter().take(2).zip([42_000, 61_000]) {
        let holder = &winners
            .iter()
            .find(|(u, _)| u == coupon["user_id"].as_str().unwrap())
            .unwrap()
            .1;
        let r = app
            .post_json(
                &format!("/api/v1/coupons/{}/use", coupon["id"].as_str().unwrap()),
                Some(holder),
                &json!({"order_id": format!("S-{amount}"), "order_amount": amount}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        discount_total += body(r).await["discount_amount"].as_i64().unwrap();
    }

    let summary = format!("/api/v1/admin/campaigns/{id}/summary");
    let s = poll(&app, &summary, |s| {
        s["claims"]["paused"] == 1 && s["used"] == 2
    })
    .await;
    let expected_claims = json!({
        "issued": 6, "replayed": 1, "sold_out": 2, "limit_reached": 1,
        "not_open": 0, "ended": 0, "paused": 1, "rate_limited": 0, "unavailable": 0
    });
    assert_eq!(s["claims"], expected_claims, "{s:#}");
    assert_eq!(
        (
            &s["issued"],
            &s["available"],
            &s["reserved"],
            &s["used"],
            &s["expired"]
        ),
        (&json!(6), &json!(4), &json!(0), &json!(2), &json!(0))
    );
    assert!((s["use_rate"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-9);
    assert_eq!(s["discount_total"], discount_total);
    assert_eq!(s["order_amount_total"], 42_000 + 61_000);
    assert_eq!(s["total_quantity"], 6);
    // The first issue is the lowest seq's (store/stats.rs); compared as text it
    // would be wrong, since RFC 3339 drops trailing zeros ("54.79Z" is
    // earlier than "54.791Z" but sorts after it).
    let first = coupons
        .iter()
        .min_by_key(|c| c["seq"].as_u64().unwrap())
        .map(|c| c["issued_at"].as_str().unwrap());
    assert_eq!(s["first_issued_at"].as_str(), first);
    assert!(s["sold_out_at"].is_string(), "the sixth coupon sold it out");
    let sum = |k: &str| -> u64 {
        s[k].as_array()
            .unwrap()
            .iter()
            .map(|p| p["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("issued_per_minute"), 6);
    assert_eq!(sum("used_per_day"), 2);
    let today = rfc3339(app.clock.now())[..10].to_owned();
    assert_eq!(s["used_per_day"][0]["date"], today.as_str());

    // The winner's summary is their wallet.
    let wallet = body(app.get("/api/v1/me/coupons", Some(token)).await).await;
    let user_path = format!("/api/v1/admin/users/{winner}/summary");
    let u = body(app.get(&user_path, Some(&app.admin)).await).await;
    for status in ["available", "reserved", "used", "expired"] {
        let in_wallet = wallet["coupons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == status)
            .count();
        assert_eq!(u["coupons"][status], in_wallet, "{status}: {u:#}");
    }
    assert_eq!(u["user_id"], winner.as_str());
    assert_eq!(u["role"], "user");
    assert_eq!(u["points"], json!({"balance": 0, "held": 0}));
    assert_eq!(u["orders"]["paid"], 0);

    // Everything at a glance.
    let o = poll(&app, "/api/v1/admin/overview", |o| {
        o["claims"]["paused"] == 1
    })
    .await;
    let row = o["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!((&row["issued"], &row["remaining"]), (&json!(6), &json!(0)));
    assert_eq!(row["status"], "paused");
    assert_eq!(row["claims"], expected_claims);
    assert_eq!(o["claims"], expected_claims);

    // A restart keeps every count (the last ones are written on the way out).
    let again = app.same_storage();
    app.stop().await;
    let app = spawn_instance(&again, tempfile::tempdir().unwrap()).await;
    let r = app.get(&summary, Some(&app.admin)).await;
    let after = body(r).await;
    assert_eq!(after["claims"], expected_claims);
    assert_eq!(after["used"], 2);

    // Later, the four unused coupons ran out (valid 30 days).
    app.clock.advance(Duration::from_secs(31 * 86_400));
    let s = poll(&app, &summary, |s| s["expired"] == 4).await;
    assert_eq!((&s["available"], &s["used"]), (&json!(0), &json!(2)));
}

#[tokio::test]
async fn summaries_refuse_bad_input_and_non_admins() {
    let app = spawn_app().await;
    let c = app.create_campaign(json!({})).await;
    let id = c["id"].as_str().unwrap();
    let (user, token) = app.bulk_users("nosy", 1).await.remove(0);
    let summary = format!("/api/v1/admin/campaigns/{id}/summary");
    for path in [
        summary.clone(),
        format!("/api/v1/admin/users/{user}/summary"),
        "/api/v1/admin/overview".to_owned(),
    ] {
        assert_error(
            app.get(&path, Some(&token)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_error(
            app.get(&path, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/admin/campaigns/{unknown}/summary"),
        format!("/api/v1/admin/users/{unknown}/summary"),
        format!("/api/v1/admin/sales/{unknown}/summary"),
    ] {
        assert_error(
            app.get(&path, Some(&app.admin)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let now = app.clock.now();
    let at = |days: i64| rfc3339(now.plus_millis(days * 86_400_000)).replace('+', "%2B");
    for bad in [
        format!("from={}&to={}", at(1), at(0)),
        format!("from={}&to={}", at(0), at(0)),
        format!("from={}&to={}", at(0), at(32)),
        "from=yesterday".to_owned(),
        "days=3".to_owned(),
    ] {
        assert_error(
            app.get(&format!("{summary}?{bad}"), Some(&app.admin)).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
    }
    // A window of exactly 31 days is fine; so is a campaign without claims.
    let r = app
        .get(
            &format!("{summary}?from={}&to={}", at(-1), at(30)),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let s = body(r).await;
    assert_eq!((&s["issued"], &s["use_rate"]), (&json!(0), &json!(0.0)));
    assert!(s["first_issued_at"].is_null() && s["sold_out_at"].is_null());
    assert_eq!(s["issued_per_minute"], json!([]));
}

#[tokio::test]
async fn coupons_run_out_one_by_one_in_the_summary_and_the_curve_has_their_minutes() {
    let app = spawn_app().await;
    let c = app
        .create_campaign(json!({"total_quantity": 3, "valid_days": 1}))
        .await;
    let id = c["id"].as_str().unwrap();
    let users = app.bulk_users("runout", 2).await;
    assert_eq!(
        app.issue(id, &users[0].1, None).await.status(),
        StatusCode::CREATED
    );
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(
        app.issue(id, &users[1].1, None).await.status(),
        StatusCode::CREATED
    );
    let summary = format!("/api/v1/admin/campaigns/{id}/summary");
    let s = poll(&app, &summary, |s| s["claims"]["issued"] == 2).await;
    let minutes: Vec<u64> = s["issued_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .collect();
    assert_eq!(minutes, vec![1, 1], "two minutes, five apart: {s:#}");
    // A day and two minutes after the first: it ran out, the second not yet.
    app.clock.advance(Duration::from_secs(86_400 - 300 + 120));
    let s = poll(&app, &summary, |s| s["expired"] == 1).await;
    assert_eq!((&s["available"], &s["issued"]), (&json!(1), &json!(2)));
    // Ten minutes later, both.
    app.clock.advance(Duration::from_secs(600));
    let s = poll(&app, &summary, |s| s["expired"] == 2).await;
    assert_eq!(s["available"], 0);
}
