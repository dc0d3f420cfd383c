//! The notification socket: claims heard live, bad and expired tokens,
//! a client that does not read.

use super::*;

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
        0,
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

/// A socket signed in by header, its first message not read yet.
async fn ws_unread(base: &str, token: &str) -> Ws {
    let url = format!(
        "{}/api/v1/notifications/ws",
        base.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

#[tokio::test]
async fn live_connections_are_capped_per_account_and_per_address() {
    let app = spawn_app_with(|s| {
        s.max_sockets_per_user = 1;
        s.max_connections_per_address = 3;
    })
    .await;
    let (_, token) = app.signup("tabs@example.com").await;
    let mut first = ws_connect(&app.base, &token).await;
    // A second socket for the same account is closed with "try again later".
    let mut second = ws_unread(&app.base, &token).await;
    let (code, reason) = close_code(&mut second).await;
    assert_eq!(code, 1013, "{reason}");
    // Closing the first gives its place back.
    first.close(None).await.unwrap();
    drop(first);
    let mut third = eventually(|| async {
        let mut ws = ws_unread(&app.base, &token).await;
        match next_json(&mut ws).await["type"].as_str() {
            Some("ready") => Ok(ws),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The address (127.0.0.1) holds one socket; two live streams fill it, the
    // next is refused with a clear 503.
    let c = app.create_campaign(json!({})).await;
    let live = format!("/api/v1/campaigns/{}/live", c["id"].as_str().unwrap());
    let s1 = app.get(&live, None).await;
    let s2 = app.get(&live, None).await;
    assert!(s1.status().is_success() && s2.status().is_success());
    let r = app.get(&live, None).await;
    let why = assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(why.contains("this address"), "{why}");
    drop((s1, s2));
    let _ = third.close(None).await;
}
