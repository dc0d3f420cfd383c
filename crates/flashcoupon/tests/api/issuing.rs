//! The hot path: every answer of `POST /api/v1/campaigns/{id}/issue`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, body, rfc3339, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_claim_returns_a_durable_coupon_with_every_field() {
    let app = spawn_app().await;
    let (user_id, token) = app.signup("kim@example.com").await;
    let c = app.create_campaign(json!({})).await;
    let id = c["id"].as_str().unwrap();
    let r = app.issue(id, &token, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let coupon = body(r).await;
    for field in [
        "id",
        "campaign_id",
        "user_id",
        "seq",
        "status",
        "issued_at",
        "valid_from",
        "valid_until",
        "discount",
        "min_order_amount",
        "used_at",
        "order_id",
    ] {
        assert!(coupon.get(field).is_some(), "coupon has {field}: {coupon}");
    }
    assert_eq!(
        (coupon["campaign_id"].as_str(), coupon["user_id"].as_str()),
        (Some(id), Some(user_id.as_str()))
    );
    assert_eq!(
        (coupon["seq"].as_i64(), coupon["status"].as_str()),
        (Some(1), Some("available"))
    );
    assert_eq!(coupon["discount"], c["discount"]);
    let row = app
        .record_coupon(coupon["id"].as_str().unwrap())
        .await
        .expect("the answered coupon is in the record");
    assert_eq!(row.seq, 1);
    let c = body(app.get(&format!("/api/v1/campaigns/{id}"), None).await).await;
    assert_eq!(
        (c["issued_count"].as_i64(), c["remaining_quantity"].as_i64()),
        (Some(1), Some(99))
    );
}

#[tokio::test]
async fn the_last_coupon_goes_and_then_it_is_sold_out() {
    let app = spawn_app().await;
    let users = app.bulk_users("so", 3).await;
    let id = app.create_campaign(json!({"total_quantity": 2})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers =
        futures::future::join_all(users[..2].iter().map(|(_, t)| app.issue(&id, t, None))).await;
    let mut seqs = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::CREATED);
        seqs.push(body(r).await["seq"].as_i64().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2]);
    assert_error(
        app.issue(&id, &users[2].1, None).await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
    assert_eq!(
        body(app.get(&format!("/api/v1/campaigns/{id}"), None).await).await["status"],
        "sold_out"
    );
}

#[tokio::test]
async fn a_user_at_the_limit_is_409_limit_reached() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"per_user_limit": 2})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = body(app.issue(&id, &token, None).await).await;
    let b = body(app.issue(&id, &token, None).await).await;
    assert_eq!((a["seq"].as_i64(), b["seq"].as_i64()), (Some(1), Some(2)));
    assert_error(
        app.issue(&id, &token, None).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
}

#[tokio::test]
async fn before_the_start_it_is_not_open_and_after_the_end_it_has_ended() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let now = app.clock.now();
    let id = app
        .create_campaign(json!({"issue_starts_at": rfc3339(now.plus_millis(60_000)), "issue_ends_at": rfc3339(now.plus_millis(120_000))}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        app.issue(&id, &token, None).await,
        StatusCode::CONFLICT,
        "not_open",
    )
    .await;
    app.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(
        app.issue(&id, &token, None).await.status(),
        StatusCode::CREATED
    );
    app.clock.advance(std::time::Duration::from_secs(60));
    let (_, other) = app.signup("lee@example.com").await;
    assert_error(
        app.issue(&id, &other, None).await,
        StatusCode::CONFLICT,
        "ended",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_campaign_is_404_and_no_token_is_401() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    assert_error(
        app.issue("01a1fe22-1a36-715e-84bd-1bd860ad76ee", &token, None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.issue("nope", &token, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let id = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/campaigns/{id}/issue")))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_coupon_and_never_a_second() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"per_user_limit": 3})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = body(app.issue(&id, &token, Some("order-42")).await).await;
    let again = app.issue(&id, &token, Some("order-42")).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(body(again).await["id"], first["id"]);
    let other = body(app.issue(&id, &token, Some("order-43")).await).await;
    assert_ne!(other["id"], first["id"]);
    let mine = body(
        app.get(&format!("/api/v1/campaigns/{id}/me"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(
        (mine["issued"].as_i64(), mine["limit"].as_i64()),
        (Some(2), Some(3))
    );
    // A replay still answers after the window closed.
    app.clock.advance(std::time::Duration::from_secs(7_200));
    assert_eq!(
        body(app.issue(&id, &token, Some("order-42")).await).await["id"],
        first["id"]
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_share_one_coupon() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 0).await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"per_user_limit": 5})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers =
        futures::future::join_all((0..20).map(|_| app.issue(&id, &token, Some("same")))).await;
    let mut ids = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(body(r).await["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one coupon for one key");
    let mine = body(
        app.get(&format!("/api/v1/campaigns/{id}/me"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(mine["issued"], 1);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_400() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let long = "k".repeat(129);
    for key in ["", long.as_str(), "tab\there"] {
        let r = app.issue(&id, &token, Some(key)).await;
        assert!(
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_input")
                .await
                .contains("Idempotency-Key")
        );
    }
    assert_eq!(
        body(app.get(&format!("/api/v1/campaigns/{id}"), None).await).await["issued_count"],
        0
    );
}

#[tokio::test]
async fn claiming_too_fast_is_429_with_retry_after() {
    let app = spawn_app_with(|s| s.claim_rate_per_user = 1).await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"per_user_limit": 10})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut limited = 0;
    for _ in 0..4 {
        let r = app.issue(&id, &token, None).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
            limited += 1;
        }
    }
    assert!(
        limited >= 1,
        "a burst of 2 at 1/s lets at most 3 of 4 through"
    );
    let mine = body(
        app.get(&format!("/api/v1/campaigns/{id}/me"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(mine["issued"].as_i64(), Some(4 - limited));
}
