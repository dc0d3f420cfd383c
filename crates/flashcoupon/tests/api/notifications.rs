//! Notifications end to end: a real WebSocket client, the live channel over
//! SSE, subscriptions stepped through with the test clock, the inbox, and
//! webhooks received by a server the test runs (which checks signatures).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{Sse, TestApp, assert_error, body, rfc3339, spawn_app, spawn_app_with};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long to wait for something that should arrive (a failure guard, not a measurement).
const PATIENCE: Duration = Duration::from_secs(15);

/// A notification socket signed in with the `Authorization` header.
pub async fn ws_connect(base: &str, token: &str) -> Ws {
    let url = format!(
        "{}/api/v1/notifications/ws",
        base.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws
}

/// A socket without a header (as a browser opens it).
async fn ws_bare(base: &str) -> Ws {
    let url = format!(
        "{}/api/v1/notifications/ws",
        base.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next JSON text message (pings are answered by the client library).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next event of type `kind`, skipping others.
pub async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let e = next_json(ws).await;
        if e["type"] == kind {
            return e;
        }
    }
}

/// The close frame the server ends with.
async fn close_code(ws: &mut Ws) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the server closes in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn inbox(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/me/notifications{query}"), Some(token))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    body(r).await
}

/// Poll the inbox until `done` holds (the inbox writer batches asynchronously).
/// Poll until `probe` answers `Ok` (background writers and deliverers get
/// there in their own time); `PATIENCE` is a failure guard, not a measurement.
async fn eventually<T, F: std::future::Future<Output = Result<T, String>>>(
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(why) => assert!(tokio::time::Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn inbox_until(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(|| async {
        let b = inbox(app, token, "?limit=200").await;
        if done(&b) {
            Ok(b)
        } else {
            Err(format!("the inbox never got there: {b}"))
        }
    })
    .await
}

fn of_type<'a>(inbox: &'a Value, kind: &str) -> Vec<&'a Value> {
    inbox["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == kind)
        .collect()
}

async fn subscribe(app: &TestApp, campaign: &str, token: &str) {
    let r = app
        .client
        .put(app.url(&format!("/api/v1/campaigns/{campaign}/subscription")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["subscribed"], true);
}

#[tokio::test]
async fn a_socket_hears_its_claim_and_subscribers_hear_the_sell_out() {
    let app = spawn_app().await;
    let c = app
        .create_campaign(json!({"total_quantity": 2, "name": "Two left"}))
        .await;
    let id = c["id"].as_str().unwrap();
    let (_, alice) = app.signup("alice@example.com").await;
    let (_, bob) = app.signup("bob@example.com").await;
    let (_, carol) = app.signup("carol@example.com").await;
    subscribe(&app, id, &alice).await;
    let mut ws_alice = ws_connect(&app.base, &alice).await;

    let r = app.issue(id, &alice, None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let coupon = body(r).await;
    let issued = next_of(&mut ws_alice, "coupon.issued").await;
    assert_eq!(issued["data"]["coupon_id"], coupon["id"]);
    assert_eq!(issued["campaign_id"], id);
    assert!(issued["id"].is_string() && issued["at"].is_string());

    // A browser-style socket: the token in the first message.
    let mut ws_carol = ws_bare(&app.base).await;
    ws_carol
        .send(Message::Text(
            json!({"type": "auth", "token": carol}).to_string().into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws_carol).await["type"], "ready");

    // Bob takes the last coupon: the subscriber hears the sell-out.
    assert_eq!(
        app.issue(id, &bob, None).await.status(),
        StatusCode::CREATED
    );
    let sold_out = next_of(&mut ws_alice, "campaign.sold_out").await;
    assert_eq!(sold_out["campaign_id"], id);
    assert_eq!(sold_out["data"]["issued_count"], 2);

    // Carol is too late, and is told why.
    assert_error(
        app.issue(id, &carol, None).await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
    let failed = next_of(&mut ws_carol, "coupon.claim_failed").await;
    assert_eq!(failed["data"]["reason"], "sold_out");

    // Everything pushed is in the inbox too.
    let alice_inbox = inbox_until(&app, &alice, |b| {
        b["notifications"].as_array().unwrap().len() >= 2
    })
    .await;
    assert_eq!(of_type(&alice_inbox, "coupon.issued").len(), 1);
    assert_eq!(of_type(&alice_inbox, "campaign.sold_out").len(), 1);
    let carol_inbox = inbox_until(&app, &carol, |b| {
        !b["notifications"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(of_type(&carol_inbox, "coupon.claim_failed").len(), 1);
    // Bob did not subscribe: no sell-out for him.
    let bob_inbox = inbox_until(&app, &bob, |b| {
        !b["notifications"].as_array().unwrap().is_empty()
    })
    .await;
    assert!(
        of_type(&bob_inbox, "campaign.sold_out").is_empty(),
        "{bob_inbox}"
    );
}

#[tokio::test]
async fn a_bad_token_closes_the_socket_with_a_clear_code() {
    let app = spawn_app().await;
    let url = format!(
        "{}/api/v1/notifications/ws",
        app.base.replace("http://", "ws://")
    );

    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", "Bearer forged.token.here".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(close_code(&mut ws).await.0, 4401);

    let mut ws = ws_bare(&app.base).await;
    ws.send(Message::Text(
        json!({"type": "auth", "token": "nope"}).to_string().into(),
    ))
    .await
    .unwrap();
    let (code, reason) = close_code(&mut ws).await;
    assert_eq!(code, 4401);
    assert!(reason.contains("token"), "{reason}");

    let mut ws = ws_bare(&app.base).await;
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await.0, 4400);

    // Not a WebSocket request at all: a JSON 400.
    assert_error(
        app.get("/api/v1/notifications/ws", None).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    )
    .await;
}

#[tokio::test]
async fn a_socket_is_closed_when_its_token_expires() {
    let app = spawn_app().await;
    let (user, _) = app.signup("short-lived@example.com").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Valid for two more seconds: it signs in, then the server ends it.
    let token = app.state.tokens.issue_with_expiry(
        user.parse().unwrap(),
        flashcoupon::domain::account::Role::User,
        now,
        now + 2,
    );
    let mut ws = ws_connect(&app.base, &token).await;
    let (code, reason) = close_code(&mut ws).await;
    assert_eq!(code, 4401);
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_not_buffered_for() {
    let app = spawn_app_with(|s| s.ws_queue = 8).await;
    let (user, token) = app.signup("slowpoke@example.com").await;
    let mut ws = ws_connect(&app.base, &token).await;
    // Far more than the socket buffers of loopback TCP hold, while the client
    // reads nothing: the server's queue for it fills and it is cut off.
    let user: flashcoupon::domain::ids::UserId = user.parse().unwrap();
    let padding = "x".repeat(1_000);
    for _ in 0..50_000 {
        let failed = flashcoupon::events::Payload::ClaimFailed {
            reason: "sold_out",
            message: padding.clone(),
        };
        app.state.events.publish(flashcoupon::events::Event::new(
            failed,
            app.clock.now(),
            Some(user),
            None,
        ));
        tokio::task::yield_now().await;
    }
    let (code, reason) = close_code(&mut ws).await;
    assert_eq!(code, 4429, "{reason}");
    assert_eq!(app.state.notifier.hub.connections(user), 0);
}

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

/// A webhook receiver: records each request and answers with the next status.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(self, hang: bool) -> String {
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

    fn requests(&self) -> Vec<(HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, String)> {
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

async fn register(app: &TestApp, b: Value) -> Value {
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
    let app = spawn_app_with(|s| s.webhook_retry_base_ms = 50).await;
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
    // … then the use.
    let r = app
        .post_json(
            &format!("/api/v1/coupons/{}/use", coupon["id"].as_str().unwrap()),
            Some(&user),
            &json!({"order_id": "order-77", "order_amount": 40000}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
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
    let app = spawn_app().await;
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
async fn the_live_channel_streams_coalesced_stock_until_sold_out() {
    let mut app = spawn_app().await;
    let c = app.create_campaign(json!({"total_quantity": 200})).await;
    let id = c["id"].as_str().unwrap();
    let users = app.bulk_users("live", 200).await;
    let r = app.get(&format!("/api/v1/campaigns/{id}/live"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = Sse::new(r);
    let mut snapshots: Vec<Value> = Vec::new();
    let mut claims = None;
    loop {
        let (event, snapshot) = stream.next().await;
        assert_eq!(event, "stock", "{snapshot}");
        snapshots.push(snapshot);
        if snapshots.len() == 1 && claims.is_none() {
            assert_eq!(snapshots[0]["remaining_quantity"], 200);
            assert_eq!(snapshots[0]["status"], "open");
            // Now 200 claims, as fast as they go.
            let client = app.client.clone();
            let base = app.base.clone();
            let id = id.to_owned();
            let tokens: Vec<String> = users.iter().map(|u| u.1.clone()).collect();
            claims = Some(tokio::spawn(async move {
                let all = tokens.into_iter().map(|t| {
                    let client = client.clone();
                    let url = format!("{base}/api/v1/campaigns/{id}/issue");
                    async move {
                        client
                            .post(url)
                            .bearer_auth(t)
                            .send()
                            .await
                            .unwrap()
                            .status()
                    }
                });
                futures::future::join_all(all).await
            }));
        }
        // In scale-out mode the gate can say sold out while the last claims
        // are still being committed (`issued_count` counts durable coupons),
        // so the stream is read on until it shows the final state.
        if snapshots
            .last()
            .is_some_and(|s| s["status"] == "sold_out" && s["issued_count"] == 200)
        {
            break;
        }
    }
    let statuses = claims.unwrap().await.unwrap();
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED));
    let last = snapshots.last().unwrap();
    assert_eq!(
        (
            last["remaining_quantity"].as_u64(),
            last["issued_count"].as_u64()
        ),
        (Some(0), Some(200))
    );
    // Coalesced: far fewer snapshots than claims, remaining never going up.
    assert!(
        snapshots.len() < 100,
        "{} snapshots for 200 claims",
        snapshots.len()
    );
    let remaining: Vec<u64> = snapshots
        .iter()
        .map(|s| s["remaining_quantity"].as_u64().unwrap())
        .collect();
    assert!(remaining.windows(2).all(|w| w[0] >= w[1]), "{remaining:?}");
    let issued: Vec<u64> = snapshots
        .iter()
        .map(|s| s["issued_count"].as_u64().unwrap())
        .collect();
    assert!(issued.windows(2).all(|w| w[0] <= w[1]), "{issued:?}");

    assert_error(
        app.get(
            &format!("/api/v1/campaigns/{}/live", uuid::Uuid::now_v7()),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // An open live stream does not hold up a graceful shutdown: it ends.
    app.stop().await;
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.response.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ends at shutdown");
    assert!(end.is_ok(), "{end:?}");
}
