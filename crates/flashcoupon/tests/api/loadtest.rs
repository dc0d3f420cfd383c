//! `flashcoupon loadtest` against a spawned server: a small drop whose
//! verification passes and whose reports exist and parse.

use std::time::Duration;

use flashcoupon::loadtest::{ArrivalKind, LoadtestArgs, run};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app_with};

fn args(target: String, out: std::path::PathBuf) -> LoadtestArgs {
    LoadtestArgs {
        targets: vec![target],
        scenario: None,
        users: 300,
        stock: 200,
        limit: 2,
        claims_per_user: 3,
        retry_share: 0.3,
        arrival: ArrivalKind::Burst,
        over: Duration::from_secs(1),
        rate: 1_000,
        duration: Duration::from_secs(1),
        connections: 64,
        open_in: Duration::from_millis(1_500),
        admin_email: ADMIN_EMAIL.into(),
        admin_password: ADMIN_PASSWORD.into(),
        out: Some(out),
        seed: 7,
        quiet: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_loadtest_verifies_every_promise_and_writes_its_reports() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let out = app.dir.path().join("report");
    let report = run(args(app.base.clone(), out.clone()))
        .await
        .expect("the loadtest runs");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.requests, 900);
    assert_eq!(report.answered, 900);
    assert_eq!(
        report.issued, 200,
        "300 users wanting up to 2 each sell out 200"
    );
    assert_eq!(report.outcomes.get("issued"), Some(&200));
    assert!(report.sold_out_after_ms.is_some());
    assert_eq!(report.errors, 0);

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for key in [
        "campaign_id",
        "throughput_rps",
        "latency_ms",
        "outcomes",
        "sold_out_after_ms",
        "violations",
    ] {
        assert!(json.get(key).is_some(), "report.json has {key}");
    }
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_ms"][p].as_f64().is_some(), "latency_ms.{p}");
    }
    assert_eq!(json["violations"], serde_json::json!([]));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Every promise held"));
    // Self-contained: no scripts, stylesheets or images fetched from anywhere.
    assert!(
        !html.contains("<script") && !html.contains("<link") && !html.contains("src="),
        "no external assets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_loadtest_spreads_users_over_several_targets() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let mut a = args(app.base.clone(), app.dir.path().join("multi"));
    // The same server twice: requests alternate between the two URLs.
    a.targets = vec![app.base.clone(), format!("{}/", app.base)];
    a.arrival = ArrivalKind::Spread;
    a.over = Duration::from_millis(300);
    let report = run(a).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.targets.len(), 2);
}
