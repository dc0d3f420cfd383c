//! Campaigns: admins create and patch, anyone reads.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, body, rfc3339, spawn_app};

#[tokio::test]
async fn a_created_campaign_echoes_its_terms_with_live_numbers() {
    let app = spawn_app().await;
    let c = app
        .create_campaign(json!({"total_quantity": 1000, "per_user_limit": 3}))
        .await;
    assert!(c["id"].as_str().is_some());
    assert_eq!(c["name"], "Black Friday 5,000 off");
    assert_eq!(c["discount"], json!({"type": "fixed", "amount": 5000}));
    assert_eq!(
        (
            c["min_order_amount"].as_i64(),
            c["total_quantity"].as_i64(),
            c["per_user_limit"].as_i64()
        ),
        (Some(30000), Some(1000), Some(3))
    );
    assert_eq!(
        (c["issued_count"].as_i64(), c["remaining_quantity"].as_i64()),
        (Some(0), Some(1000))
    );
    assert_eq!(
        (c["status"].as_str(), c["valid_days"].as_i64()),
        (Some("open"), Some(30))
    );
}

#[tokio::test]
async fn min_order_and_per_user_limit_have_defaults() {
    let app = spawn_app().await;
    let c = app
        .create_campaign(json!({"min_order_amount": null, "per_user_limit": null}))
        .await;
    assert_eq!(
        (c["min_order_amount"].as_i64(), c["per_user_limit"].as_i64()),
        (Some(0), Some(1))
    );
}

#[tokio::test]
async fn percent_discounts_and_fixed_validity_windows_are_accepted() {
    let app = spawn_app().await;
    let until = rfc3339(app.clock.now().plus_millis(30 * 86_400_000));
    let c = app
        .create_campaign(json!({"discount": {"type": "percent", "percent": 10, "max_amount": 3000}, "valid_days": null, "valid_until": until}))
        .await;
    assert_eq!(
        c["discount"],
        json!({"type": "percent", "percent": 10, "max_amount": 3000})
    );
    assert_eq!(c["valid_until"].as_str(), Some(until.as_str()));
    assert!(c.get("valid_days").is_none());
}

#[tokio::test]
async fn a_future_campaign_is_upcoming_until_the_clock_reaches_it() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let c = app
        .create_campaign(json!({"issue_starts_at": rfc3339(now.plus_millis(600_000)), "issue_ends_at": rfc3339(now.plus_millis(1_200_000))}))
        .await;
    assert_eq!(c["status"], "upcoming");
    app.clock.advance(std::time::Duration::from_secs(601));
    let c = body(
        app.get(
            &format!("/api/v1/campaigns/{}", c["id"].as_str().unwrap()),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(c["status"], "open");
    app.clock.advance(std::time::Duration::from_secs(600));
    let c = body(
        app.get(
            &format!("/api/v1/campaigns/{}", c["id"].as_str().unwrap()),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(c["status"], "ended");
}

#[tokio::test]
async fn campaigns_are_listed_newest_first_and_paged_without_a_token() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_campaign(json!({"name": format!("drop {i}")}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.reverse();
    let page = body(app.get("/api/v1/campaigns?limit=3", None).await).await;
    let first: Vec<&str> = page["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, ids[..3]);
    let next = page["next"].as_str().unwrap();
    let page = body(
        app.get(&format!("/api/v1/campaigns?limit=3&before={next}"), None)
            .await,
    )
    .await;
    let second: Vec<&str> = page["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(second, ids[3..]);
    assert!(page.get("next").is_none());
    let r = app.get("/api/v1/campaigns?limit=0", None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
}

#[tokio::test]
async fn an_unknown_or_malformed_campaign_id_is_404() {
    let app = spawn_app().await;
    for id in ["01a1fe22-1a36-715e-84bd-1bd860ad76ee", "not-an-id", "%20"] {
        assert_error(
            app.get(&format!("/api/v1/campaigns/{id}"), None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn pausing_and_resuming_stops_and_restarts_issuing() {
    let app = spawn_app().await;
    let (_, user) = app.signup("kim@example.com").await;
    let id = app.create_campaign(json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .patch_json(
            &format!("/api/v1/campaigns/{id}"),
            Some(&app.admin),
            &json!({"paused": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["status"], "paused");
    assert_error(
        app.issue(&id, &user, None).await,
        StatusCode::CONFLICT,
        "paused",
    )
    .await;
    let r = app
        .patch_json(
            &format!("/api/v1/campaigns/{id}"),
            Some(&app.admin),
            &json!({"paused": false}),
        )
        .await;
    assert_eq!(body(r).await["status"], "open");
    assert_eq!(
        app.issue(&id, &user, None).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn extending_the_end_reopens_an_ended_campaign() {
    let app = spawn_app().await;
    let (_, user) = app.signup("kim@example.com").await;
    let c = app.create_campaign(json!({})).await;
    let id = c["id"].as_str().unwrap();
    app.clock.advance(std::time::Duration::from_secs(3_601));
    assert_error(
        app.issue(id, &user, None).await,
        StatusCode::CONFLICT,
        "ended",
    )
    .await;
    let later = rfc3339(app.clock.now().plus_millis(3_600_000));
    let r = app
        .patch_json(
            &format!("/api/v1/campaigns/{id}"),
            Some(&app.admin),
            &json!({"issue_ends_at": later}),
        )
        .await;
    assert_eq!(
        body(r).await["issue_ends_at"].as_str(),
        Some(later.as_str())
    );
    assert_eq!(
        app.issue(id, &user, None).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn stock_can_grow_and_shrink_but_never_below_what_was_issued() {
    let app = spawn_app().await;
    let users = app.bulk_users("stock", 4).await;
    let id = app.create_campaign(json!({"total_quantity": 2})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (_, t) in &users[..2] {
        assert_eq!(app.issue(&id, t, None).await.status(), StatusCode::CREATED);
    }
    assert_error(
        app.issue(&id, &users[2].1, None).await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
    let r = app
        .patch_json(
            &format!("/api/v1/campaigns/{id}"),
            Some(&app.admin),
            &json!({"total_quantity": 1}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "quantity_below_issued").await;
    let r = app
        .patch_json(
            &format!("/api/v1/campaigns/{id}"),
            Some(&app.admin),
            &json!({"total_quantity": 3}),
        )
        .await;
    let c = body(r).await;
    assert_eq!(
        (
            c["total_quantity"].as_i64(),
            c["remaining_quantity"].as_i64(),
            c["status"].as_str()
        ),
        (Some(3), Some(1), Some("open"))
    );
    let coupon = body(app.issue(&id, &users[2].1, None).await).await;
    assert_eq!(coupon["seq"], 3);
    // Shrinking to exactly the issued count is allowed, and sells out.
    let r = app
        .patch_json(
            &format!("/api/v1/campaigns/{id}"),
            Some(&app.admin),
            &json!({"total_quantity": 3}),
        )
        .await;
    assert_eq!(body(r).await["status"], "sold_out");
    assert_error(
        app.issue(&id, &users[3].1, None).await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
}

#[tokio::test]
async fn patches_are_admin_only_and_checked() {
    let app = spawn_app().await;
    let (_, user) = app.signup("kim@example.com").await;
    let c = app.create_campaign(json!({})).await;
    let path = format!("/api/v1/campaigns/{}", c["id"].as_str().unwrap());
    assert_error(
        app.patch_json(&path, Some(&user), &json!({"paused": true}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.patch_json(&path, None, &json!({"paused": true})).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    for bad in [
        json!({}),
        json!({"paused": "yes"}),
        json!({"total_quantity": 0}),
        json!({"pause": true}),
        json!({"issue_ends_at": c["issue_starts_at"]}),
    ] {
        let r = app.patch_json(&path, Some(&app.admin), &bad).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
    let r = app
        .patch_json(
            "/api/v1/campaigns/01a1fe22-1a36-715e-84bd-1bd860ad76ee",
            Some(&app.admin),
            &json!({"paused": true}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    // Nothing changed.
    let after = body(app.get(&path, None).await).await;
    assert_eq!(
        (after["paused"].as_bool(), after["total_quantity"].as_i64()),
        (Some(false), Some(100))
    );
}
