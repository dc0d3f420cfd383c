//! Several instances, one truth: a storm across three, and a socket on one
//! instance hearing claims made on another.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_one_truth_under_a_storm() {
    const STOCK: usize = 1_000;
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 3).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let mut users = Vec::new();
    for (i, base) in targets.iter().enumerate() {
        users.extend(bulk_users(&client, base, &admin, &format!("three{i}"), 1_000).await);
    }
    let campaign = create_campaign(&client, &targets[1], &admin, STOCK).await;

    let issued = storm(&client, &targets, &campaign, &users, "three", |_| {}).await;

    let rows = record(&postgres, &campaign).await;
    check_promises(&rows, &issued, STOCK);
    assert_eq!(rows.len(), STOCK, "3,000 users × 3 claims sell out 1,000");
    assert_eq!(
        issued.len(),
        STOCK,
        "every coupon was answered 201 to someone"
    );
    for base in &targets {
        let view = campaign_view(&client, base, &campaign).await;
        assert_eq!(
            (view["issued_count"].as_u64(), view["status"].as_str()),
            (Some(STOCK as u64), Some("sold_out")),
            "every instance sees the same gate"
        );
    }
    // The summary counts every instance's claims, and every instance
    // answers the same: each user's turn ended with three coupons or with
    // one 409 (sold out), so that is how many answers there were.
    let mut per_user = HashMap::<&str, usize>::new();
    for i in &issued {
        *per_user.entry(i.user.as_str()).or_default() += 1;
    }
    let full = per_user.values().filter(|&&n| n == LIMIT).count();
    let refused = (users.len() - full) as u64;
    let path = format!("/api/v1/admin/campaigns/{campaign}/summary");
    for app in &apps {
        let s = crate::summaries::poll(app, &path, |s| {
            s["claims"]["issued"] == STOCK && s["claims"]["sold_out"] == refused
        })
        .await;
        assert_eq!(s["issued"], STOCK);
        assert_eq!(s["claims"]["limit_reached"], 0, "{s:#}");
    }
}

#[tokio::test]
async fn a_socket_on_one_instance_hears_claims_and_the_sell_out_made_on_another() {
    let settings = shared_settings(&fresh_postgres().await, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    // Publish only once both instances' relays are subscribed.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("{}:events", settings.redis_prefix);
    for _ in 0..100 {
        let (_, listeners): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        if listeners >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = apps[1].create_campaign(json!({"total_quantity": 2})).await;
    let id = c["id"].as_str().unwrap();
    let (_, alice) = apps[1].signup("listener@example.com").await;
    let (_, bob) = apps[1].signup("closer@example.com").await;
    let r = apps[1]
        .client
        .put(apps[1].url(&format!("/api/v1/campaigns/{id}/subscription")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Alice listens on instance A and claims on instance B.
    let mut ws = ws_connect(&apps[0].base, &alice).await;
    let r = apps[1].issue(id, &alice, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let coupon = body(r).await;
    let heard = next_of(&mut ws, "coupon.issued").await;
    assert_eq!(heard["data"]["coupon_id"], coupon["id"]);

    // Bob takes the last one on B. Both instances notice the sell-out; the
    // subscriber hears it once.
    assert_eq!(
        apps[1].issue(id, &bob, None).await.status(),
        StatusCode::CREATED
    );
    let sold_out = next_of(&mut ws, "campaign.sold_out").await;
    assert_eq!(sold_out["campaign_id"], id);
    for app in &apps {
        app.state
            .notifier
            .tick(app.clock.now(), true)
            .await
            .unwrap();
    }
    let inbox = body(apps[0].get("/api/v1/me/notifications", Some(&alice)).await).await;
    let sold_outs = inbox["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "campaign.sold_out")
        .count();
    assert_eq!(sold_outs, 1, "{inbox}");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"ping"}"#.into(),
    ))
    .await
    .unwrap();
    let mut after = next_json(&mut ws).await;
    // `campaign.opened` may still be on its way from the scheduler; a second sell-out may not.
    while after["type"] == "campaign.opened" {
        after = next_json(&mut ws).await;
    }
    assert_eq!(after["type"], "pong", "no second sell-out: {after}");
}

/// The SSL state of the record's connections that an instance opened under
/// `application_name` (count, all encrypted).
async fn ssl_of(application: &str) -> (i64, bool) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&crate::helpers::postgres_base())
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(application)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_record_is_reached_over_tls_when_the_url_asks_for_it() {
    let schema_url = crate::helpers::fresh_postgres().await;
    let tls = format!("fc-tls-{}", uuid::Uuid::now_v7().simple());
    let plain = format!("fc-plain-{}", uuid::Uuid::now_v7().simple());
    let encrypted = instances(
        &shared_settings(
            &format!("{schema_url}&sslmode=require&application_name={tls}"),
            &redis_url(),
            &prefix(),
        ),
        1,
    )
    .await;
    let unencrypted = instances(
        &shared_settings(
            &format!("{schema_url}&application_name={plain}"),
            &redis_url(),
            &prefix(),
        ),
        1,
    )
    .await;
    // Both work end to end (a campaign is created and read back).
    for app in encrypted.iter().chain(&unencrypted) {
        let c = app.create_campaign(json!({})).await;
        let r = app
            .get(
                &format!("/api/v1/campaigns/{}", c["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (n, all_ssl) = ssl_of(&tls).await;
    assert!(
        n > 0 && all_ssl,
        "sslmode=require: {n} connections, all TLS: {all_ssl}"
    );
    let (n, any_ssl) = ssl_of(&plain).await;
    assert!(n > 0 && !any_ssl, "no sslmode: {n} connections, plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_is_reached_over_tls_with_a_rediss_url() {
    // The server listens for TLS only: a claim that succeeds went over TLS.
    let redis = RedisServer::start_tls();
    let settings = shared_settings(
        &crate::helpers::fresh_postgres().await,
        &redis.url(),
        &prefix(),
    );
    let app = instances(&settings, 1).await.remove(0);
    let c = app.create_campaign(json!({"total_quantity": 2})).await;
    let (_, token) = app.signup("tls@example.com").await;
    let r = app.issue(c["id"].as_str().unwrap(), &token, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let view = app
        .get(
            &format!("/api/v1/campaigns/{}", c["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(body(view).await["remaining_quantity"], 1);
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
}

/// A service key deleted on one instance is refused by the next request on
/// another: no cache to wait out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_key_deleted_on_one_instance_is_refused_at_once_on_another() {
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let (id, key) = crate::service_keys::service_key(&apps[0], "order service").await;
    let path = format!("/api/v1/coupons/{}/cancel-use", uuid::Uuid::now_v7());
    let order = json!({"order_id": "order-1"});
    // Known on the other instance: past authentication (no such coupon).
    let r = apps[1].post_json(&path, Some(&key), &order).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = apps[0]
        .client
        .delete(apps[0].url(&format!("/api/v1/admin/api-keys/{id}")))
        .bearer_auth(&apps[0].admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = apps[1].post_json(&path, Some(&key), &order).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Two instances run the reservation expiry over one record: each hold
/// expires once, and each owner is told once (promise 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_expire_each_reservation_once_and_tell_its_owner_once() {
    use sqlx::Connection;
    const N: usize = 20;
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let campaign = apps[0]
        .create_campaign(json!({"total_quantity": N, "min_order_amount": 0}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut held = Vec::new();
    for (i, (_, token)) in apps[0]
        .bulk_users("expiry", N)
        .await
        .into_iter()
        .enumerate()
    {
        let app = &apps[i % 2];
        let coupon = body(app.issue(&campaign, &token, None).await).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = app
            .post_json(
                &format!("/api/v1/coupons/{coupon}/reserve"),
                Some(&token),
                &json!({"order_id": format!("order-{i}"), "order_amount": 10_000, "ttl_secs": 1}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push((token, coupon));
    }
    for app in &apps {
        app.clock.advance(Duration::from_secs(2));
    }
    let mut conn = sqlx::PgConnection::connect(&postgres).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (expired, told): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM coupon_holds WHERE state = 'expired'), \
             (SELECT count(*) FROM coupon_holds WHERE notified)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if expired == N as i64 && told == N as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{expired} expired, {told} told"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both instances ran a few more rounds: still once each.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (holds, notices, owners): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM coupon_holds), \
         (SELECT count(*) FROM notifications WHERE kind = 'coupon.reservation_expired'), \
         (SELECT count(DISTINCT user_id) FROM notifications WHERE kind = 'coupon.reservation_expired')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((holds, notices, owners), (N as i64, N as i64, N as i64));
    for (token, coupon) in &held {
        let view = body(
            apps[1]
                .get(&format!("/api/v1/coupons/{coupon}"), Some(token))
                .await,
        )
        .await;
        assert_eq!(view["status"], "available");
    }
}

/// Promise 11 with a relay on each of two instances: a claim storm across
/// both, and every coupon's `coupon.issued` reaches the exchange, each id
/// at least once (the relays lease rows, so none is published by both at
/// the same time; a republish after a lease ran out would keep the id).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_relays_on_two_instances_publish_every_event() {
    const STOCK: usize = 600;
    let broker = crate::broker::TestBroker::new().await;
    let postgres = fresh_postgres().await;
    let mut settings = shared_settings(&postgres, &redis_url(), &prefix());
    broker.configure(&mut settings);
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    let users = bulk_users(&client, &targets[1], &admin, "relay", 300).await;
    let campaign = create_campaign(&client, &targets[0], &admin, STOCK).await;
    let issued = storm(&client, &targets, &campaign, &users, "relay", |_| {}).await;
    assert_eq!(issued.len(), STOCK);
    let coupons: HashSet<String> = issued.iter().map(|i| i.coupon.clone()).collect();
    let issued_ids = |all: &[crate::broker::Got]| -> HashSet<String> {
        all.iter()
            .filter(|g| g.routing_key == "coupon.issued")
            .filter_map(|g| g.json()["id"].as_str().map(str::to_owned))
            .collect()
    };
    let got = broker
        .events_until(|all| coupons.is_subset(&issued_ids(all)))
        .await;
    let published = issued_ids(&got);
    assert_eq!(
        published.intersection(&coupons).count(),
        STOCK,
        "every coupon.issued came out"
    );
    let mut by_instance = Vec::new();
    for app in &apps {
        by_instance.push(crate::broker::metric(app, "flashcoupon_outbox_published_total").await);
    }
    eprintln!(
        "{} events read, {} distinct; confirmed by each relay: {by_instance:?}",
        got.len(),
        published.len()
    );
    broker.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_events_sent_to_two_instances_issue_once_per_user_and_campaign() {
    let postgres = fresh_postgres().await;
    let settings = shared_settings(&postgres, &redis_url(), &prefix());
    let apps = instances(&settings, 2).await;
    let targets: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let client = test_client();
    let admin = admin_token(&client, &targets[0]).await;
    // A limit of three: only "once per (user, campaign)" stops a second.
    let r = client
        .post(format!("{}/api/v1/campaigns", targets[1]))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "promo", "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": 1000, "per_user_limit": 3, "trigger": "custom:promo",
            "issue_starts_at": "2020-01-01T00:00:00Z", "issue_ends_at": "2099-01-01T00:00:00Z", "valid_days": 30
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let campaign = body(r).await["id"].as_str().unwrap().to_owned();
    let users = bulk_users(&client, &targets[0], &admin, "promo", 40).await;
    // Each user's event twice on each instance, and a second event of the
    // same name on both: all at once.
    let mut sends = Vec::new();
    for (n, (user, _)) in users.iter().enumerate() {
        for (event, base) in [
            ("a", &targets[0]),
            ("a", &targets[1]),
            ("a", &targets[0]),
            ("a", &targets[1]),
            ("b", &targets[1]),
            ("b", &targets[0]),
        ] {
            let (client, admin, base) = (client.clone(), admin.clone(), base.clone());
            let b =
                json!({"event_id": format!("promo-{n}-{event}"), "name": "promo", "user_id": user});
            sends.push(tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/trigger-events"))
                    .bearer_auth(&admin)
                    .json(&b)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
    }
    for s in sends {
        assert_eq!(s.await.unwrap(), StatusCode::ACCEPTED);
    }
    // Every event done, on whichever instance worked it.
    for n in 0..users.len() {
        for event in ["a", "b"] {
            let mut outcome = Value::Null;
            for _ in 0..600 {
                let e = body(
                    client
                        .get(format!(
                            "{}/api/v1/trigger-events/promo-{n}-{event}",
                            targets[n % 2]
                        ))
                        .bearer_auth(&admin)
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                if e["status"] == "done" {
                    outcome = e["outcome"].clone();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                outcome == "issued 1" || outcome == "issued_before 1",
                "promo-{n}-{event}: {outcome}"
            );
        }
    }
    let rows = record(&postgres, &campaign).await;
    assert_eq!(rows.len(), users.len(), "one coupon per user");
    let owners: std::collections::HashSet<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(owners.len(), users.len());
}
