//! The notification socket: a WebSocket that pushes each signed-in shopper
//! their events (claims, uses, subscriptions' news) as they happen.
//!
//! Not in the OpenAPI document: OpenAPI describes requests and their
//! answers, and a WebSocket is neither (a fuzzer reading the document would
//! only see a GET that refuses to be one). The `notifications` tag's
//! description there points here and says how to connect.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{ApiError, ClientAddr};
use crate::auth::Claims;
use crate::connections::Slot;
use crate::notify::hub::CLOSE_SLOW;
use crate::state::AppState;

pub const PATH: &str = "/api/v1/notifications/ws";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(socket))
}

/// Close codes of the notification socket.
pub mod close {
    /// The token (header or auth message) is missing, malformed, expired or forged.
    pub const UNAUTHORIZED: u16 = 4401;
    /// No auth message arrived in time.
    pub const AUTH_TIMEOUT: u16 = 4408;
    /// The first message was not `{"type":"auth","token":"…"}`.
    pub const BAD_AUTH_MESSAGE: u16 = 4400;
    /// The client stopped answering heartbeats.
    pub const IDLE: u16 = 4000;
    /// The client read its events too slowly.
    pub const SLOW: u16 = super::CLOSE_SLOW;
    /// The account holds as many sockets as it may (the standard "try
    /// again later").
    pub const BUSY: u16 = 1013;
}

/// A browser cannot set headers on a WebSocket: it sends this first.
const AUTH_WAIT: Duration = Duration::from_secs(10);
/// A ping this often; a client silent for three of them is gone.
const HEARTBEAT: Duration = Duration::from_secs(20);
/// One frame may take this long to write before the client counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a client may send (auth, ping).
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Send one frame; `false` if the socket is gone or the client stopped reading.
async fn send(socket: &mut WebSocket, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await,
        Ok(Ok(()))
    )
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ClientMessage {
    Auth { token: String },
    Ping,
}

/// The signed-in user's live events, over a WebSocket.
///
/// Authenticate with `Authorization: Bearer <token>` on the upgrade request,
/// or (browsers) with a first message `{"type":"auth","token":"…"}` within
/// 10 s. The server answers `{"type":"ready","user_id":…}`, then sends each
/// event as `{"id","type","at","campaign_id","data"}`. It pings every 20 s
/// and answers `{"type":"ping"}` with `{"type":"pong"}`. Close codes: 4401
/// bad or expired token (also when the token expires while the socket is
/// open), 4408 no auth message in time, 4400 malformed auth message,
/// 4000 heartbeat lost, 1013 too many sockets for the account, 4429 the
/// client read too slowly (its events stay in
/// the inbox).
pub async fn socket(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return ApiError::InvalidInput(
            "this endpoint speaks WebSocket: send a GET with Upgrade: websocket".into(),
        )
        .into_response();
    };
    let slot = match state.connections.open(client, true) {
        Ok(slot) => slot,
        Err(full) => return ApiError::Unavailable(full.to_string()).into_response(),
    };
    let header_token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
                .to_owned()
        });
    upgrade
        // Clients send only small control messages.
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session(state, socket, header_token, slot))
}

async fn session(
    state: AppState,
    mut socket: WebSocket,
    header_token: Option<String>,
    // Held for the socket's life: its place under the connection caps.
    mut slot: Slot,
) {
    let (user, expires, epoch) = match authenticate(&state, &mut socket, header_token).await {
        Ok(claims) => (claims.sub, claims.exp, claims.tep),
        Err(Some((code, reason))) => return close_with(&mut socket, code, reason).await,
        Err(None) => return,
    };
    if slot.signed_in(user).is_err() {
        return close_with(
            &mut socket,
            close::BUSY,
            "too many sockets for this account",
        )
        .await;
    }
    let mut registration = state.notifier.hub.register(user);
    let ready = serde_json::json!({"type": "ready", "user_id": user}).to_string();
    if !send(&mut socket, Message::Text(ready.into())).await {
        return;
    }
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    // The socket lives as long as the token it signed in with, like any request.
    let left = Duration::from_secs(expires).saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let expiry = tokio::time::sleep(left);
    tokio::pin!(expiry);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            queued = registration.rx.recv() => match queued {
                Some(json) => {
                    if !send(&mut socket, Message::Text(json.as_ref().into())).await {
                        return close_with(&mut socket, close::SLOW, "too slow: an event could not be written").await;
                    }
                }
                None => {
                    if registration.overflowed() {
                        return close_with(&mut socket, close::SLOW, "too slow: events were not read in time").await;
                    }
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if let Ok(ClientMessage::Ping) = serde_json::from_str(&text) {
                        let pong = Message::Text(r#"{"type":"pong"}"#.into());
                        if !send(&mut socket, pong).await {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Pongs, pings (axum answers them) and anything else: the client is alive.
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            () = &mut expiry => {
                return close_with(&mut socket, close::UNAUTHORIZED, "token expired: sign in again").await;
            }
            _ = beat.tick() => {
                // A password reset or a role change ends its sockets too.
                if state.revocations.is_revoked(user, epoch) {
                    return close_with(&mut socket, close::UNAUTHORIZED, "token revoked: sign in again").await;
                }
                if last_heard.elapsed() > HEARTBEAT * 3 {
                    return close_with(&mut socket, close::IDLE, "no heartbeat from the client").await;
                }
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    return;
                }
            }
        }
    }
}

/// The claims of the header token, or of the first message's. `Err(None)`:
/// the client left before saying who it is.
async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    header_token: Option<String>,
) -> Result<Claims, Option<(u16, &'static str)>> {
    let verify = |token: &str| {
        state
            .authenticate(token)
            .ok_or(Some((close::UNAUTHORIZED, "invalid or expired token")))
    };
    if let Some(token) = header_token {
        return verify(&token);
    }
    let first = tokio::time::timeout(AUTH_WAIT, socket.recv())
        .await
        .map_err(|_| {
            Some((
                close::AUTH_TIMEOUT,
                "authenticate first: send {\"type\":\"auth\",\"token\":\"…\"}",
            ))
        })?;
    match first {
        Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
            Ok(ClientMessage::Auth { token }) => verify(token.trim()),
            _ => Err(Some((
                close::BAD_AUTH_MESSAGE,
                "expected {\"type\":\"auth\",\"token\":\"…\"}",
            ))),
        },
        Some(Ok(Message::Close(_)) | Err(_)) | None => Err(None),
        Some(Ok(_)) => Err(Some((
            close::BAD_AUTH_MESSAGE,
            "expected {\"type\":\"auth\",\"token\":\"…\"}",
        ))),
    }
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    send(socket, Message::Close(Some(frame))).await;
}
