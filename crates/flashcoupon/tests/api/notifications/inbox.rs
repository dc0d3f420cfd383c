//! Subscriptions stepped through with the test clock, the inbox, and the
//! expiry reminder (exactly once, across a restart).

use super::*;

#[tokio::test]
async fn subscribers_hear_opening_soon_then_opened_at_the_right_moments() {
    // The background scheduler is slowed down: the test runs each pass itself.
    let app = spawn_app_with(|s| s.scheduler_tick_ms = 3_600_000).await;
    let now = app.clock.now();
    let opens = now.plus_millis(3_600_000);
    let c = app
        .create_campaign(json!({
            "issue_starts_at": rfc3339(opens),
            "issue_ends_at": rfc3339(opens.plus_millis(3_600_000)),
        }))
        .await;
    let id = c["id"].as_str().unwrap();
    let (_, fan) = app.signup("fan@example.com").await;
    let (_, other) = app.signup("other@example.com").await;
    subscribe(&app, id, &fan).await;
    let mut ws = ws_connect(&app.base, &fan).await;
    let notifier = app.state.notifier.clone();

    // 11 minutes before opening: nothing yet (the lead is 10 minutes).
    app.clock.advance(Duration::from_secs(49 * 60));
    notifier.tick(app.clock.now(), false).await.unwrap();
    assert!(
        inbox(&app, &fan, "").await["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // 9 minutes before: opening soon, once however many passes run.
    app.clock.advance(Duration::from_secs(2 * 60));
    notifier.tick(app.clock.now(), false).await.unwrap();
    notifier.tick(app.clock.now(), false).await.unwrap();
    let soon = next_json(&mut ws).await;
    assert_eq!(soon["type"], "campaign.opening_soon");
    assert_eq!(soon["campaign_id"], id);

    // Opening time: opened, once.
    app.clock.advance(Duration::from_secs(9 * 60 + 1));
    notifier.tick(app.clock.now(), false).await.unwrap();
    notifier.tick(app.clock.now(), false).await.unwrap();
    let opened = next_json(&mut ws).await;
    assert_eq!(opened["type"], "campaign.opened", "{opened}");

    let b = inbox(&app, &fan, "").await;
    let kinds: Vec<&str> = b["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["campaign.opened", "campaign.opening_soon"],
        "newest first, once each"
    );
    assert!(
        inbox(&app, &other, "").await["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Unsubscribing works and is idempotent.
    for _ in 0..2 {
        let r = app
            .client
            .delete(app.url(&format!("/api/v1/campaigns/{id}/subscription")))
            .bearer_auth(&fan)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let r = app
        .get(&format!("/api/v1/campaigns/{id}/subscription"), Some(&fan))
        .await;
    assert_eq!(body(r).await["subscribed"], false);
    // An unknown campaign is 404.
    let r = app
        .client
        .put(app.url(&format!(
            "/api/v1/campaigns/{}/subscription",
            uuid::Uuid::now_v7()
        )))
        .bearer_auth(&fan)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_inbox_pages_counts_unread_and_marks_read() {
    let app = spawn_app().await;
    let c = app.create_campaign(json!({"per_user_limit": 3})).await;
    let id = c["id"].as_str().unwrap();
    let (_, user) = app.signup("reader@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            app.issue(id, &user, None).await.status(),
            StatusCode::CREATED
        );
    }
    // The fourth is refused: 3 issued + 1 failed = 4 notifications.
    assert_eq!(
        app.issue(id, &user, None).await.status(),
        StatusCode::CONFLICT
    );
    let all = inbox_until(&app, &user, |b| {
        b["notifications"].as_array().unwrap().len() == 4
    })
    .await;
    assert_eq!(all["unread_count"], 4);
    assert_eq!(
        of_type(&all, "coupon.claim_failed")[0]["data"]["reason"],
        "limit_reached"
    );

    let page = inbox(&app, &user, "?limit=3").await;
    assert_eq!(page["notifications"].as_array().unwrap().len(), 3);
    let next = page["next"].as_str().unwrap();
    let rest = inbox(&app, &user, &format!("?limit=3&before={next}")).await;
    assert_eq!(rest["notifications"].as_array().unwrap().len(), 1);
    assert!(rest.get("next").is_none());

    let first = page["notifications"][0]["id"].as_str().unwrap();
    let r = app
        .post_json(
            "/api/v1/me/notifications/read",
            Some(&user),
            &json!({"ids": [first]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = body(r).await;
    assert_eq!(
        (b["marked"].as_u64(), b["unread_count"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(
        inbox(&app, &user, "?unread=true").await["notifications"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let b = body(
        app.post_json(
            "/api/v1/me/notifications/read",
            Some(&user),
            &json!({"all": true}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (b["marked"].as_u64(), b["unread_count"].as_u64()),
        (Some(3), Some(0))
    );

    // Bad input: 400, nothing changes.
    for bad in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": ["x"]}),
        json!({"all": false}),
        json!({"ids": [first], "all": true}),
    ] {
        let r = app
            .post_json("/api/v1/me/notifications/read", Some(&user), &bad)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_error(
        app.get("/api/v1/me/notifications?limit=0", Some(&user))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    )
    .await;
    assert_error(
        app.get("/api/v1/me/notifications?before=x", Some(&user))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    )
    .await;
    assert_error(
        app.get("/api/v1/me/notifications", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn the_expiry_reminder_is_sent_once_and_only_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = flashcoupon::settings::Settings::for_data_dir(dir.path());
    if crate::helpers::scale_out() {
        crate::helpers::use_scale_out(&mut settings).await;
    }
    settings.admin_email = Some(crate::helpers::ADMIN_EMAIL.into());
    settings.admin_password = Some(crate::helpers::ADMIN_PASSWORD.into());
    settings.scheduler_tick_ms = 3_600_000;
    let data_dir = dir.path().to_owned();
    let mut app = crate::helpers::spawn_instance(&settings, dir).await;
    let c = app.create_campaign(json!({"valid_days": 10})).await;
    let id = c["id"].as_str().unwrap();
    let (_, user) = app.signup("keeper@example.com").await;
    let (_, spender) = app.signup("spender@example.com").await;
    let coupon = body(app.issue(id, &user, None).await).await;
    let spent = body(app.issue(id, &spender, None).await).await;
    let r = app
        .post_json(
            &format!("/api/v1/coupons/{}/use", spent["id"].as_str().unwrap()),
            Some(&spender),
            &json!({"order_id": "o-1", "order_amount": 50000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut ws = ws_connect(&app.base, &user).await;

    // Four days on, the coupon expires within 7 days: one reminder.
    app.clock.advance(Duration::from_secs(4 * 86_400));
    app.state
        .notifier
        .tick(app.clock.now(), true)
        .await
        .unwrap();
    app.state
        .notifier
        .tick(app.clock.now(), true)
        .await
        .unwrap();
    let reminder = next_of(&mut ws, "coupon.expiring_soon").await;
    assert_eq!(reminder["data"]["coupon_id"], coupon["id"]);

    let before_restart =
        inbox_until(&app, &user, |b| !of_type(b, "coupon.issued").is_empty()).await;
    assert_eq!(
        of_type(&before_restart, "coupon.expiring_soon").len(),
        1,
        "{before_restart}"
    );
    drop(ws);

    // Restart over the same record, at the same time: the new process runs
    // its own passes and sends nothing twice.
    app.stop().await;
    let mut again = settings.clone();
    again.data_dir = data_dir;
    let second = crate::helpers::spawn_instance(&again, tempfile::tempdir().unwrap()).await;
    second.clock.advance(Duration::from_secs(4 * 86_400));
    let mut ws = ws_connect(&second.base, &user).await;
    second
        .state
        .notifier
        .tick(second.clock.now(), true)
        .await
        .unwrap();
    second
        .state
        .notifier
        .tick(second.clock.now(), true)
        .await
        .unwrap();

    let b = inbox(&second, &user, "").await;
    assert_eq!(of_type(&b, "coupon.expiring_soon").len(), 1, "{b}");
    let spender_inbox =
        inbox_until(&second, &spender, |b| !of_type(b, "coupon.used").is_empty()).await;
    assert!(
        of_type(&spender_inbox, "coupon.expiring_soon").is_empty(),
        "a used coupon is not reminded: {spender_inbox}"
    );
    // The socket on the restarted process hears no second reminder: it is
    // sent only by the process whose insert created the row.
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let next = next_json(&mut ws).await;
    assert_eq!(next["type"], "pong", "nothing else came first: {next}");
}

#[tokio::test]
async fn toggling_a_subscription_in_a_loop_is_rate_limited_per_user() {
    let app = spawn_app_with(|s| s.write_rate_per_user = 1).await;
    let c = app.create_campaign(json!({})).await;
    let path = format!(
        "/api/v1/campaigns/{}/subscription",
        c["id"].as_str().unwrap()
    );
    let (_, noisy) = app.signup("noisy@example.com").await;
    let (_, quiet) = app.signup("quiet@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = app
            .client
            .put(app.url(&path))
            .bearer_auth(&noisy)
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Another shopper is not held up by the noisy one.
    let r = app
        .client
        .put(app.url(&path))
        .bearer_auth(&quiet)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}
