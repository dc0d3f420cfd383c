//! `flashcoupon loadtest` against a spawned server: a small drop and a
//! small time sale whose verification passes and whose reports exist and
//! parse.

use std::time::Duration;

use flashcoupon::loadtest::{
    ArrivalKind, Finished, LoadtestArgs, Report, SaleArgs, SaleReport, Scenario, run,
};

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
        sale: SaleArgs::default(),
    }
}

async fn drop_report(args: LoadtestArgs) -> Report {
    match run(args).await.expect("the loadtest runs") {
        Finished::Drop(r) => *r,
        Finished::TimeSale(_) => panic!("a drop was asked for"),
    }
}

async fn sale_report(args: LoadtestArgs) -> SaleReport {
    match run(args).await.expect("the loadtest runs") {
        Finished::TimeSale(r) => *r,
        Finished::Drop(_) => panic!("a time sale was asked for"),
    }
}

/// Every file a report writes, checked the same way for both scenarios.
fn assert_report_files(out: &std::path::Path, keys: &[&str]) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for key in keys {
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
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_loadtest_verifies_every_promise_and_writes_its_reports() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let out = app.dir.path().join("report");
    let report = drop_report(args(app.base.clone(), out.clone())).await;
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

    assert_report_files(
        &out,
        &[
            "campaign_id",
            "throughput_rps",
            "latency_ms",
            "outcomes",
            "sold_out_after_ms",
            "violations",
        ],
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
    let report = drop_report(a).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.targets.len(), 2);
}

/// 300 buyers for 20 units, a third never pay within 1 s: their units come
/// back and buyers who found none take them on a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_time_sale_resells_unpaid_units_and_verifies_every_promise() {
    let app = spawn_app_with(|s| s.test_payments = true).await;
    let out = app.dir.path().join("sale-report");
    let mut a = args(app.base.clone(), out.clone());
    a.scenario = Some(Scenario::TimeSale);
    a.stock = 20;
    a.limit = 1;
    a.arrival = ArrivalKind::Spread;
    a.over = Duration::from_millis(200);
    a.sale = SaleArgs {
        never_pay_share: 0.35,
        payment_ttl: Duration::from_secs(1),
        retries: 3,
        retry_after: None,
        points_share: 0.2,
        coupon_share: 0.2,
        poll_every: Duration::from_millis(50),
    };
    let report = sale_report(a).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    for c in &report.criteria {
        if !c.name.starts_with("p99") {
            assert!(c.pass, "{}: {}", c.name, c.detail);
        }
    }
    for n in 1..=6 {
        let promise = format!("{n}. ");
        assert!(
            report.criteria.iter().any(|c| c.name.starts_with(&promise)),
            "promise {n} is a criterion"
        );
    }
    assert_eq!(report.errors, 0);
    let t = &report.tally;
    assert!(t.expired > 0, "unpaid orders ran out: {t:?}");
    assert!(t.resold > 0, "returned units were bought again: {t:?}");
    assert!(t.paid > 0 && t.paid <= 20, "{t:?}");
    assert_eq!(
        t.pending, 0,
        "every unpaid order ran out before the read-back"
    );
    assert_eq!(t.held + t.remaining, 20);
    assert!(t.points_buyers > 0 && t.coupon_buyers > 0, "{t:?}");
    assert!(report.outcomes.get("sold_out").is_some_and(|&n| n > 0));
    assert!(t.polls > 10, "the stock was read throughout: {t:?}");
    let summary = report.summary();
    println!("{summary}");
    assert!(summary.contains("p99 of orders:"));

    let json = assert_report_files(
        &out,
        &[
            "sale_id",
            "latency_ms",
            "pay_latency_ms",
            "outcomes",
            "tally",
            "timeline",
            "criteria",
        ],
    );
    assert!(
        json["timeline"]["remaining"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    for chart in ["latency", "outcome_mix", "stock", "order_p99", "outcomes"] {
        assert!(out.join(format!("{chart}.svg")).exists(), "{chart}.svg");
    }
}

#[tokio::test]
async fn a_time_sale_against_a_server_without_test_payments_stops_at_set_up_and_says_why() {
    let app = spawn_app_with(|_| {}).await;
    let mut a = args(app.base.clone(), app.dir.path().join("never"));
    a.scenario = Some(Scenario::TimeSale);
    a.users = 3;
    let err = run(a).await.expect_err("no test payments");
    let msg = format!("{err:#}");
    assert!(msg.contains("--test-payments"), "{msg}");
    assert!(!app.dir.path().join("never").exists());
}
