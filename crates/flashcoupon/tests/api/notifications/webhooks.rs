//! Webhooks received by a server the test runs, which checks signatures.

use super::*;

/// A webhook receiver: records each request and answers with the next status.
#[derive(Clone, Default)]
pub(super) struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    pub(super) async fn start(self, hang: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    me.seen.lock().unwrap().push((headers, body));
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    let status = {
                        let mut s = me.statuses.lock().unwrap();
                        if s.is_empty() { 200 } else { s.remove(0) }
                    };
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/hook")
    }

    pub(super) fn requests(&self) -> Vec<(HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }

    pub(super) async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, String)> {
        eventually(|| async {
            let seen = self.requests();
            if seen.len() >= n {
                Ok(seen)
            } else {
                Err(format!("only {} requests arrived", seen.len()))
            }
        })
        .await
    }
}

/// Verify a request the way a shop would: HMAC-SHA256 over "<timestamp>.<body>".
fn signature_ok(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let ts = headers["x-flashcoupon-timestamp"].to_str().unwrap();
    let sig = headers["x-flashcoupon-signature"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    sig == expected
}

/// The test's receivers listen on loopback, which webhooks refuse unless
/// the operator allows it (`--webhook-allow 127.0.0.1`).
pub(super) fn loopback() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.1/32".parse().unwrap()]
}

pub(super) async fn register(app: &TestApp, b: Value) -> Value {
    let r = app
        .post_json("/api/v1/admin/webhooks", Some(&app.admin), &b)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    body(r).await
}

async fn delivery_log(app: &TestApp, hook: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/admin/webhooks/{hook}/deliveries"),
            Some(&app.admin),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await
}

#[tokio::test]
async fn webhooks_are_signed_retried_with_backoff_and_logged() {
    let app = spawn_app_with(|s| {
        s.webhook_retry_base_ms = 50;
        s.webhook_allow = loopback();
    })
    .await;
    let receiver = Receiver::default();
    receiver.statuses.lock().unwrap().extend([500, 503]);
    let url = receiver.clone().start(false).await;
    let secret = "shop-secret-0123456789";
    let hook = register(
        &app,
        json!({"url": url, "events": ["coupon.used", "campaign.sold_out"], "secret": secret}),
    )
    .await;
    assert_eq!(hook["secret"], secret, "the secret is shown on creation");
    let hook_id = hook["id"].as_str().unwrap();

    let c = app.create_campaign(json!({"total_quantity": 1})).await;
    let (_, user) = app.signup("buyer@example.com").await;
    let coupon = body(app.issue(c["id"].as_str().unwrap(), &user, None).await).await;
    // The sell-out goes out first (it fails twice: 500, 503, then 200) …
    let seen = receiver.wait_for(3).await;
    // … then the use, by a request the shop names.
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/coupons/{}/use",
            coupon["id"].as_str().unwrap()
        )))
        .bearer_auth(&user)
        .header("x-request-id", "shop-use-77")
        .json(&json!({"order_id": "order-77", "order_amount": 40000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let hop = r.headers()["traceparent"].clone();
    let seen_all = receiver.wait_for(4).await;
    for (headers, body) in &seen_all {
        assert!(
            signature_ok(secret, headers, body),
            "a valid signature on {body}"
        );
        assert!(!signature_ok("another-secret-012345", headers, body));
    }
    let first: Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(first["type"], "campaign.sold_out");
    assert_eq!(seen[0].1, seen[2].1, "a retry sends the same body");
    let used: Value = serde_json::from_str(&seen_all[3].1).unwrap();
    assert_eq!(used["type"], "coupon.used");
    assert_eq!(used["data"]["order_id"], "order-77");
    assert_eq!(seen_all[3].0["x-flashcoupon-event"], "coupon.used");
    // The use's delivery names its request and continues its trace; the
    // sell-out, which no request of its own caused, names none.
    assert_eq!(seen_all[3].0["x-request-id"], "shop-use-77");
    assert_eq!(seen_all[3].0["traceparent"], hop);
    assert!(
        !seen[0].0.contains_key("x-request-id") && !seen[0].0.contains_key("traceparent"),
        "{:?}",
        seen[0].0
    );

    // The log: the sell-out took three attempts (500, 503, 200).
    let log = eventually(|| async {
        let log = delivery_log(&app, hook_id).await;
        let deliveries = log["deliveries"].as_array().unwrap();
        if deliveries.len() == 2 && deliveries.iter().all(|d| d["status"] == "delivered") {
            Ok(log)
        } else {
            Err(log.to_string())
        }
    })
    .await;
    let sold = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "campaign.sold_out")
        .unwrap();
    assert_eq!(sold["attempts"], 3);
    assert!(sold.get("request_id").is_none(), "{sold}");
    let used = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "coupon.used")
        .unwrap();
    assert_eq!(used["request_id"], "shop-use-77");
    let codes: Vec<i64> = sold["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 200]);
    // Backoff doubles: the third attempt waited at least twice the base after the second.
    let at = |i: usize| {
        flashcoupon::domain::timestamp::Timestamp::parse_rfc3339(
            sold["log"][i]["at"].as_str().unwrap(),
        )
        .unwrap()
        .0
    };
    assert!(at(1) - at(0) >= 50 && at(2) - at(1) >= 100, "{sold}");

    // Deleting the endpoint keeps its log readable.
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/admin/webhooks/{hook_id}")))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        delivery_log(&app, hook_id).await["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_error(
        app.get(
            &format!("/api/v1/admin/webhooks/{hook_id}"),
            Some(&app.admin),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn chat_formats_and_a_hanging_endpoint_never_hold_up_claims() {
    let app = spawn_app_with(|s| s.webhook_allow = loopback()).await;
    let hanging = Receiver::default();
    let hang_url = hanging.clone().start(true).await;
    let chat = Receiver::default();
    let chat_url = chat.clone().start(false).await;
    register(
        &app,
        json!({"url": hang_url, "events": ["campaign.stock_low"], "stock_low_threshold": 100}),
    )
    .await;
    register(&app, json!({"url": chat_url, "events": ["campaign.stock_low"], "stock_low_threshold": 100, "format": "discord"})).await;

    let c = app.create_campaign(json!({"total_quantity": 30})).await;
    let id = c["id"].as_str().unwrap();
    let users = app.bulk_users("hang", 30).await;
    // Stock is under the threshold: both endpoints are called, once.
    assert_eq!(
        app.issue(id, &users[0].1, None).await.status(),
        StatusCode::CREATED
    );
    hanging.wait_for(1).await;
    let discord = chat.wait_for(1).await;
    let message: Value = serde_json::from_str(&discord[0].1).unwrap();
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("coupons left"),
        "{message}"
    );
    // With the hanging endpoint holding a request open, every claim still answers.
    for (_, token) in &users[1..] {
        assert_eq!(
            app.issue(id, token, None).await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(app.record(id).await.len(), 30);
    assert_eq!(hanging.requests().len(), 1, "still the one hanging request");
}

#[tokio::test]
async fn bad_webhook_input_is_400_and_registers_nothing() {
    let app = spawn_app().await;
    let ok = json!({"url": "https://shop.example/hook", "events": ["coupon.used"]});
    let mut cases = vec![];
    for (field, value) in [
        ("url", json!("not a url")),
        ("url", json!("ftp://shop.example/hook")),
        ("url", json!("/relative")),
        ("events", json!([])),
        ("events", json!(["coupon.exploded"])),
        ("format", json!("teams")),
        ("secret", json!("short")),
        ("secret", json!("sixteen-chars-with\u{0}-a-nul")),
        ("secret", json!("sixteen chars with spaces")),
        ("stock_low_threshold", json!(5)),
    ] {
        let mut b = ok.clone();
        b[field] = value;
        cases.push(b);
    }
    cases.push(json!({"url": "https://shop.example/hook", "events": ["campaign.stock_low"]}));
    cases.push(json!({"url": "https://shop.example/hook", "events": ["campaign.stock_low"], "stock_low_threshold": 0}));
    cases.push(json!({"url": "https://shop.example/hook", "events": ["coupon.used"], "extra": 1}));
    for b in cases {
        let r = app
            .post_json("/api/v1/admin/webhooks", Some(&app.admin), &b)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
    let (_, shopper) = app.signup("nosy@example.com").await;
    let r = app
        .post_json("/api/v1/admin/webhooks", Some(&shopper), &ok)
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let list = body(app.get("/api/v1/admin/webhooks", Some(&app.admin)).await).await;
    assert!(list["webhooks"].as_array().unwrap().is_empty(), "{list}");

    let created = register(&app, ok).await;
    let list = body(app.get("/api/v1/admin/webhooks", Some(&app.admin)).await).await;
    assert_eq!(list["webhooks"][0]["id"], created["id"]);
    assert!(
        list["webhooks"][0].get("secret").is_none(),
        "secrets are shown once"
    );
    assert_eq!(created["secret"].as_str().unwrap().len(), 64);
    assert_error(
        app.get(
            &format!("/api/v1/admin/webhooks/{}/deliveries", uuid::Uuid::now_v7()),
            Some(&app.admin),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn webhooks_never_reach_inside_the_network_unless_the_operator_allows_it() {
    let app = spawn_app_with(|s| s.webhook_retry_base_ms = 3_600_000).await;
    let inside = Receiver::default();
    let url = inside.clone().start(false).await; // http://127.0.0.1:<port>/…
    let by_name = url.replace("127.0.0.1", "localhost");
    let mut hooks = Vec::new();
    for u in [&url, &by_name] {
        let hook = register(&app, json!({"url": u, "events": ["campaign.sold_out"]})).await;
        hooks.push(hook["id"].as_str().unwrap().to_owned());
    }
    let c = app.create_campaign(json!({"total_quantity": 1})).await;
    let (_, user) = app.signup("buyer@example.com").await;
    app.issue(c["id"].as_str().unwrap(), &user, None).await;
    for hook in &hooks {
        let log = eventually(|| async {
            let log = delivery_log(&app, hook).await;
            match log["deliveries"][0]["log"][0]["error"].as_str() {
                Some(_) => Ok(log),
                None => Err(log.to_string()),
            }
        })
        .await;
        let error = log["deliveries"][0]["log"][0]["error"].as_str().unwrap();
        assert!(error.contains("not a public one"), "{error}");
        assert!(
            !error.contains("127.0.0.1") && !error.contains("os error"),
            "{error}"
        );
    }
    assert!(inside.requests().is_empty(), "nothing reached the inside");
}

#[tokio::test]
async fn a_spend_and_its_webhook_delivery_are_written_together() {
    let app = spawn_app_with(|s| s.webhook_allow = loopback()).await;
    let receiver = Receiver::default();
    let url = receiver.clone().start(false).await;
    let hook = register(
        &app,
        json!({"url": url, "events": ["coupon.used", "coupon.use_cancelled"]}),
    )
    .await;
    let hook = hook["id"].as_str().unwrap();
    let c = app.create_campaign(json!({})).await;
    let (_, user) = app.signup("buyer@example.com").await;
    let coupon = body(app.issue(c["id"].as_str().unwrap(), &user, None).await).await;
    let path = |action: &str| {
        format!(
            "/api/v1/coupons/{}/{action}",
            coupon["id"].as_str().unwrap()
        )
    };
    let r = app
        .post_json(
            &path("use"),
            Some(&user),
            &json!({"order_id": "o-1", "order_amount": 40000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The delivery is in the record when the spend is: not enqueued later
    // by a task a crash could lose.
    let log = delivery_log(&app, hook).await;
    let types: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["coupon.used"]);
    let r = app
        .post_json(
            &path("cancel-use"),
            Some(&app.admin),
            &json!({"order_id": "o-1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let log = delivery_log(&app, hook).await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 2);
    // A spend that does not happen enqueues nothing.
    let r = app
        .post_json(
            &path("cancel-use"),
            Some(&app.admin),
            &json!({"order_id": "o-1"}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_used").await;
    assert_eq!(
        delivery_log(&app, hook).await["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    receiver.wait_for(2).await;
}
