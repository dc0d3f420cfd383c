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

mod inbox;
mod live;
mod sales;
mod socket;
mod webhooks;

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
