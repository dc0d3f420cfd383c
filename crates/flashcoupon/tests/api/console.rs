//! What the web UI needs beyond API.md: the admin dashboard's statistics and
//! winners (JSON and CSV), the checkout preview, the multiplexed live stream,
//! and the embedded pages themselves. (A little over 400 lines: one test per
//! console feature, kept together.)

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Sse, TestApp, assert_error, body, spawn_app};

async fn claim_status(app: &TestApp, campaign: &str, token: &str) -> StatusCode {
    app.issue(campaign, token, None).await.status()
}

#[tokio::test]
async fn the_dashboard_counts_each_outcome_per_second_with_latency() {
    let app = spawn_app().await;
    let c = app.create_campaign(json!({"total_quantity": 3})).await;
    let id = c["id"].as_str().unwrap();
    let users = app.bulk_users("dash", 5).await;
    let statuses = [
        claim_status(&app, id, &users[0].1).await,
        claim_status(&app, id, &users[1].1).await,
        // The first user again: limit reached.
        claim_status(&app, id, &users[0].1).await,
        claim_status(&app, id, &users[2].1).await,
        // No stock left.
        claim_status(&app, id, &users[3].1).await,
        claim_status(&app, id, &users[4].1).await,
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [201, 201, 409, 201, 409, 409]);
    // An unknown campaign is a 404 and gets no dashboard entry.
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        claim_status(&app, &unknown, &users[0].1).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.state.claim_stats.tracked(), 1, "only the real campaign");

    let r = app
        .get(
            &format!("/api/v1/admin/campaigns/{id}/stats?seconds=120"),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let d = body(r).await;
    assert_eq!(d["scope"], "instance");
    assert_eq!(d["campaign"]["issued_count"], 3);
    assert_eq!(d["campaign"]["remaining_quantity"], 0);
    assert_eq!(d["campaign"]["status"], "sold_out");
    let totals = &d["claims"]["totals"];
    assert_eq!(
        (
            &totals["issued"],
            &totals["sold_out"],
            &totals["limit_reached"],
            &totals["errors"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(0))
    );
    let per_second = &d["claims"]["per_second"];
    let sum = |k: &str| -> u64 {
        per_second[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(per_second["issued"].as_array().unwrap().len(), 120);
    assert_eq!(
        (sum("issued"), sum("sold_out"), sum("limit_reached")),
        (3, 2, 1)
    );
    let latency = &d["claims"]["latency"];
    assert_eq!(latency["count"], 6);
    assert!(latency["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(latency["p99_ms"].as_f64().unwrap() >= latency["p50_ms"].as_f64().unwrap());

    // Admins only; bad windows and unknown campaigns are clear errors.
    let path = format!("/api/v1/admin/campaigns/{id}/stats");
    assert_error(
        app.get(&path, Some(&users[0].1)).await,
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
    for bad in ["seconds=0", "seconds=601", "seconds=x", "nope=1"] {
        let msg = assert_error(
            app.get(&format!("{path}?{bad}"), Some(&app.admin)).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        assert!(!msg.is_empty());
    }
    assert_error(
        app.get(
            &format!("/api/v1/admin/campaigns/{}/stats", uuid::Uuid::now_v7()),
            Some(&app.admin),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn winners_come_in_seq_order_paged_and_as_csv() {
    let app = spawn_app().await;
    let c = app.create_campaign(json!({"total_quantity": 5})).await;
    let id = c["id"].as_str().unwrap();
    let users = app.bulk_users("winner", 5).await;
    let mut issued = Vec::new();
    for (user, token) in &users {
        let r = app.issue(id, token, None).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let coupon = body(r).await;
        issued.push((coupon["seq"].as_u64().unwrap(), user.clone()));
    }
    issued.sort();

    let page = |after: Option<u64>| {
        let path = match after {
            Some(a) => format!("/api/v1/admin/campaigns/{id}/winners?limit=2&after={a}"),
            None => format!("/api/v1/admin/campaigns/{id}/winners?limit=2"),
        };
        let app = &app;
        async move {
            let r = app.get(&path, Some(&app.admin)).await;
            assert_eq!(r.status(), StatusCode::OK);
            body(r).await
        }
    };
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut after = None;
    loop {
        let p = page(after).await;
        for w in p["winners"].as_array().unwrap() {
            assert!(w["email"].as_str().unwrap().starts_with("winner"), "{w}");
            assert_eq!(w["status"], "available");
            seen.push((
                w["seq"].as_u64().unwrap(),
                w["user_id"].as_str().unwrap().to_owned(),
            ));
        }
        match p["next"].as_u64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, issued, "every winner once, in seq order");

    let r = app
        .get(
            &format!("/api/v1/admin/campaigns/{id}/winners.csv"),
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
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "seq,coupon_id,user_id,email,issued_at,status,used_at,order_id"
    );
    let csv_rows: Vec<(u64, String)> = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[2].to_owned())
        })
        .collect();
    assert_eq!(csv_rows, issued);

    for bad in ["limit=0", "limit=1001", "after=-1", "after=x"] {
        assert_error(
            app.get(
                &format!("/api/v1/admin/campaigns/{id}/winners?{bad}"),
                Some(&app.admin),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
    }
    for path in [
        format!("/api/v1/admin/campaigns/{id}/winners"),
        format!("/api/v1/admin/campaigns/{id}/winners.csv"),
    ] {
        assert_error(
            app.get(&path, Some(&users[0].1)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
}

#[tokio::test]
async fn the_checkout_preview_answers_like_use_and_spends_nothing() {
    let app = spawn_app().await;
    let c = app
        .create_campaign(
            json!({"discount": {"type": "percent", "percent": 10, "max_amount": 3000}}),
        )
        .await;
    let (_, token) = app.signup("preview@example.com").await;
    let coupon = body(app.issue(c["id"].as_str().unwrap(), &token, None).await).await;
    let cid = coupon["id"].as_str().unwrap();
    let preview = |b: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.post_json(&format!("/api/v1/coupons/{cid}/preview"), Some(&token), &b)
                .await
        }
    };

    let r = preview(json!({"order_id": "O-1", "order_amount": 45_999})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body(r).await,
        json!({"discount_amount": 3000, "payable_amount": 42_999})
    );
    let r = preview(json!({"order_id": "O-1", "order_amount": 30_009})).await;
    assert_eq!(
        body(r).await,
        json!({"discount_amount": 3000, "payable_amount": 27_009})
    );
    assert_error(
        preview(json!({"order_id": "O-1", "order_amount": 29_999})).await,
        StatusCode::CONFLICT,
        "below_min_order",
    )
    .await;
    assert_error(
        preview(json!({"order_id": "", "order_amount": 40_000})).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    )
    .await;
    // Nothing was spent.
    let wallet = body(
        app.get(&format!("/api/v1/coupons/{cid}"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(wallet["status"], "available");

    // After the spend: the same order previews its recorded discount, another is refused.
    let r = app
        .post_json(
            &format!("/api/v1/coupons/{cid}/use"),
            Some(&token),
            &json!({"order_id": "O-1", "order_amount": 20_000 + 20_000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = preview(json!({"order_id": "O-1", "order_amount": 99_000})).await;
    assert_eq!(
        body(r).await,
        json!({"discount_amount": 3000, "payable_amount": 37_000})
    );
    assert_error(
        preview(json!({"order_id": "O-2", "order_amount": 40_000})).await,
        StatusCode::CONFLICT,
        "already_used",
    )
    .await;
    // Somebody else's coupon is 404.
    let (_, other) = app.signup("preview-other@example.com").await;
    assert_error(
        app.post_json(
            &format!("/api/v1/coupons/{cid}/preview"),
            Some(&other),
            &json!({"order_id": "O-9", "order_amount": 40_000}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn one_live_stream_carries_several_campaigns() {
    let app = spawn_app().await;
    let a = app.create_campaign(json!({"total_quantity": 7})).await;
    let b = app.create_campaign(json!({"total_quantity": 9})).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let r = app
        .get(&format!("/api/v1/live?campaigns={a},{b},{a}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = Sse::new(r);
    let mut totals = std::collections::HashMap::new();
    while totals.len() < 2 {
        let (_, s) = stream.next().await;
        totals.insert(
            s["campaign_id"].as_str().unwrap().to_owned(),
            s["total_quantity"].as_u64().unwrap(),
        );
    }
    assert_eq!(totals[a], 7);
    assert_eq!(totals[b], 9);

    // `at` is the server's time of sending, also for a watcher that joins
    // long after the snapshot was read: the drop page's countdown runs on it.
    app.clock.advance(Duration::from_secs(3_600));
    let before = app.clock.now().0;
    let late = app.get(&format!("/api/v1/campaigns/{a}/live"), None).await;
    let (_, first) = Sse::new(late).next().await;
    let at = first["at"].as_str().unwrap().to_owned();
    let at = flashcoupon::domain::timestamp::Timestamp::parse_rfc3339(&at).unwrap();
    assert!(at.0 >= before, "at {at:?} predates the request ({before})");

    let many: Vec<String> = (0..51).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (query, status, code) in [
        (
            "campaigns=nope".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "campaigns=".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        ("".to_owned(), StatusCode::BAD_REQUEST, "invalid_input"),
        (
            format!("campaigns={}", many.join(",")),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            format!("campaigns={a},{}", uuid::Uuid::now_v7()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        assert_error(
            app.get(&format!("/api/v1/live?{query}"), None).await,
            status,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn the_pages_are_served_from_the_binary_with_revalidation_and_a_strict_policy() {
    let app = spawn_app().await;
    for (path, marker) in [
        ("/", "/assets/shop/main.js"),
        ("/admin", "/assets/admin/main.js"),
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let html = r.text().await.unwrap();
        assert!(html.contains(marker), "{path} loads {marker}");
        // Nothing from another origin: the page works offline.
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{path}"
        );
    }
    let r = app.get("/assets/shop/main.js", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url("/assets/shop/main.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_error(
        app.get("/assets/nothing-here.js", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Escaped dots reach the handler as `..` (reqwest would fold a plain
    // `../`): nothing outside the embedded folder is served.
    for sneaky in ["/assets/%2e%2e/Cargo.toml", "/assets/..%2fsrc%2flib.rs"] {
        assert_error(
            app.get(sneaky, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}
