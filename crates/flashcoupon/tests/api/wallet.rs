//! Wallets and issue status.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn the_wallet_lists_my_coupons_newest_first_and_filters_by_status() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let a = app.create_campaign(json!({"name": "a"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app
        .create_campaign(json!({"name": "b", "valid_days": 1}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca = body(app.issue(&a, &token, None).await).await;
    let cb = body(app.issue(&b, &token, None).await).await;
    let all = body(app.get("/api/v1/me/coupons", Some(&token)).await).await;
    let ids: Vec<&str> = all["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [cb["id"].as_str().unwrap(), ca["id"].as_str().unwrap()]
    );
    // Two days on, b's one-day coupon shows as expired.
    app.clock
        .advance(std::time::Duration::from_secs(2 * 86_400));
    let available = body(
        app.get("/api/v1/me/coupons?status=available", Some(&token))
            .await,
    )
    .await;
    assert_eq!(available["coupons"].as_array().unwrap().len(), 1);
    assert_eq!(available["coupons"][0]["id"], ca["id"]);
    let expired = body(
        app.get("/api/v1/me/coupons?status=expired", Some(&token))
            .await,
    )
    .await;
    assert_eq!(expired["coupons"][0]["id"], cb["id"]);
    assert_eq!(expired["coupons"][0]["status"], "expired");
    let r = app
        .get("/api/v1/me/coupons?status=lost", Some(&token))
        .await;
    assert!(
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input")
            .await
            .contains("status")
    );
}

#[tokio::test]
async fn the_wallet_pages_with_before() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"per_user_limit": 5})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..5 {
        assert_eq!(
            app.issue(&id, &token, None).await.status(),
            StatusCode::CREATED
        );
    }
    let p1 = body(app.get("/api/v1/me/coupons?limit=2", Some(&token)).await).await;
    let p2 = body(
        app.get(
            &format!(
                "/api/v1/me/coupons?limit=2&before={}",
                p1["next"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await,
    )
    .await;
    let p3 = body(
        app.get(
            &format!(
                "/api/v1/me/coupons?limit=2&before={}",
                p2["next"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await,
    )
    .await;
    let seqs: Vec<i64> = [p1, p2, p3]
        .iter()
        .flat_map(|p| {
            p["coupons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["seq"].as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seqs, [5, 4, 3, 2, 1]);
}

#[tokio::test]
async fn a_users_wallet_is_visible_to_them_and_admins_only() {
    let app = spawn_app().await;
    let (kim, kim_token) = app.signup("kim@example.com").await;
    let (_, lee_token) = app.signup("lee@example.com").await;
    let id = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let coupon = body(app.issue(&id, &kim_token, None).await).await;
    let path = format!("/api/v1/users/{kim}/coupons");
    for token in [&kim_token, &app.admin] {
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await["coupons"][0]["id"], coupon["id"]);
    }
    assert_error(
        app.get(&path, Some(&lee_token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&path, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let nobody = "/api/v1/users/01a1fe22-1a36-715e-84bd-1bd860ad76ee/coupons";
    assert_error(
        app.get(nobody, Some(&app.admin)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Single coupons: owner and admin, nobody else.
    let one = format!("/api/v1/coupons/{}", coupon["id"].as_str().unwrap());
    assert_eq!(
        app.get(&one, Some(&kim_token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(&one, Some(&app.admin)).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.get(&one, Some(&lee_token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn my_view_of_a_campaign_counts_against_the_limit() {
    let app = spawn_app().await;
    let (_, token) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({"per_user_limit": 3})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = body(
        app.get(&format!("/api/v1/campaigns/{id}/me"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(before, json!({"issued": 0, "limit": 3, "coupons": []}));
    let coupon = body(app.issue(&id, &token, None).await).await;
    let after = body(
        app.get(&format!("/api/v1/campaigns/{id}/me"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(
        (after["issued"].as_i64(), after["coupons"][0]["id"].clone()),
        (Some(1), coupon["id"].clone())
    );
    assert_error(
        app.get("/api/v1/campaigns/nope/me", Some(&token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
