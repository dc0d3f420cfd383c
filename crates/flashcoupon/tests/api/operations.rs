//! Health, readiness, metrics, the OpenAPI document and its docs page.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{body, spawn_app};

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readiness_is_503_once_storage_is_gone() {
    let app = spawn_app().await;
    app.state.store.close().await;
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(r).await["error"]["code"], "unavailable");
}

#[tokio::test]
async fn metrics_describe_issue_outcomes_latency_commits_and_stock() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"total_quantity": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.issue(&id, &token, None).await;
    let (_, other) = app.signup("lee@example.com").await;
    app.issue(&id, &other, None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    for name in [
        "flashcoupon_issue_outcomes_total",
        "flashcoupon_issue_latency_seconds",
        "flashcoupon_group_commit_batch_size",
        "flashcoupon_group_commit_seconds",
        "flashcoupon_campaign_stock_remaining",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has help text"
        );
    }
    assert!(
        text.contains(r#"flashcoupon_issue_outcomes_total{result="issued"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"flashcoupon_issue_outcomes_total{result="sold_out"} 1"#));
    assert!(text.contains(&format!(
        r#"flashcoupon_campaign_stock_remaining{{campaign_id="{id}"}} 0"#
    )));
    assert!(text.contains("flashcoupon_group_commit_batch_size_count 1"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_docs_page_works_offline() {
    let app = spawn_app().await;
    let doc = body(app.get("/openapi.json", None).await).await;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/signup",
        "/api/v1/auth/login",
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}",
        "/api/v1/campaigns/{id}/issue",
        "/api/v1/campaigns/{id}/me",
        "/api/v1/me/coupons",
        "/api/v1/users/{user_id}/coupons",
        "/api/v1/coupons/{id}/use",
        "/api/v1/coupons/{id}/cancel-use",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    // The answers every route of its kind can give are listed too.
    let codes = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has responses"))
            .keys()
            .cloned()
            .collect()
    };
    let issue = codes("/api/v1/campaigns/{id}/issue", "post");
    for code in ["201", "401", "404", "409", "429", "503"] {
        assert!(
            issue.contains(&code.to_owned()),
            "issue answers {code}: {issue:?}"
        );
    }
    let signup = codes("/api/v1/auth/signup", "post");
    for code in ["400", "413", "415", "429", "503"] {
        assert!(
            signup.contains(&code.to_owned()),
            "signup answers {code}: {signup:?}"
        );
    }
    assert!(
        codes("/api/v1/campaigns", "get").contains(&"400".to_owned()),
        "a bad query is 400"
    );
    assert!(
        !codes("/healthz", "get").contains(&"503".to_owned()),
        "health is not storage"
    );
    let page = app.get("/api/docs/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the Swagger UI page is served");
    // Its assets come from the binary, not a CDN.
    let asset = app.get("/api/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(!html.contains("unpkg.com") && !html.contains("cdn."));
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/nothing-here", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r).await["error"]["code"], "not_found");
}

/// RED per route: each answer counted by method, route template and
/// status, and timed; unknown paths under one label; the build named.
#[tokio::test]
async fn every_route_is_counted_and_timed_by_its_template_and_status() {
    let app = spawn_app().await;
    let (_, token) = app.signup("red@example.com").await;
    let campaign = app.create_campaign(serde_json::json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.issue(&campaign, &token, None).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.issue(&campaign, &token, None).await.status(),
        StatusCode::CONFLICT
    );
    for n in 0..3 {
        let r = app.get(&format!("/no/such/path/{n}"), None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let route = "/api/v1/campaigns/{id}/issue";
    assert_eq!(
        value(&format!(
            "flashcoupon_http_requests_total{{method=\"POST\",route=\"{route}\",status=\"201\"}}"
        )),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&format!(
            "flashcoupon_http_requests_total{{method=\"POST\",route=\"{route}\",status=\"409\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "flashcoupon_http_request_duration_seconds_count{{method=\"POST\",route=\"{route}\"}}"
        )),
        2.0
    );
    assert_eq!(
        value("flashcoupon_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
        3.0,
        "unknown paths share one label"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    assert!(text.contains("flashcoupon_build_info{version=\""), "{text}");
    assert!(
        text.contains("\nflashcoupon_password_hashes_abandoned_total "),
        "the hashing budget's skipped hashes are exported"
    );
    assert!(
        text.contains("\nflashcoupon_sqlite_log_restarts_total "),
        "the write-ahead log's restarts are exported"
    );
}
