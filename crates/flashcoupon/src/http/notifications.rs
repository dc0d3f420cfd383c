//! Notifications for shoppers: the WebSocket that pushes their events, the
//! public live channel of a campaign (Server-Sent Events), "notify me"
//! subscriptions, and the inbox.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::AuthUser;
use crate::auth::Claims;
use crate::domain::InvalidInput;
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;
use crate::notify::hub::CLOSE_SLOW;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(socket))
        .routes(routes!(live))
        .routes(routes!(live_many))
        .routes(routes!(subscription, subscribe, unsubscribe))
        .routes(routes!(inbox))
        .routes(routes!(mark_read))
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
enum ClientMessage {
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
/// 4000 heartbeat lost, 4429 the client read too slowly (its events stay in
/// the inbox).
#[utoipa::path(get, path = "/api/v1/notifications/ws", tag = "notifications",
    responses((status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, body = ErrorBody, description = "not a WebSocket upgrade request")))]
pub async fn socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return ApiError::InvalidInput(
            "this endpoint speaks WebSocket: send a GET with Upgrade: websocket".into(),
        )
        .into_response();
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
        .on_upgrade(move |socket| session(state, socket, header_token))
}

async fn session(state: AppState, mut socket: WebSocket, header_token: Option<String>) {
    let (user, expires) = match authenticate(&state, &mut socket, header_token).await {
        Ok(claims) => (claims.sub, claims.exp),
        Err(Some((code, reason))) => return close_with(&mut socket, code, reason).await,
        Err(None) => return,
    };
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
            .tokens
            .verify(token)
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

/// A campaign's remaining stock and status, live (Server-Sent Events).
///
/// Public. Each `stock` event carries a snapshot (`status`,
/// `total_quantity`, `remaining_quantity`, `issued_count`, `paused`, the
/// window, and `at`, the server's time when it was sent); the first arrives at once, the next
/// whenever something changed, at most 10 a second.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/live", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, content_type = "text/event-stream", description = "`stock` events"),
        (status = 404, body = ErrorBody)))]
pub async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id: CampaignId = parse_path_id(&id)?;
    state
        .catalog
        .get(&*state.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let snapshots = stock_events(state.notifier.live.watch(id), state.clock.clone());
    let snapshots = futures_util::StreamExt::take_until(snapshots, state.notifier.stopping());
    Ok(Sse::new(snapshots).keep_alive(KeepAlive::default()))
}

/// A campaign's snapshots as `stock` events: the current one, then each change.
///
/// `at` is stamped when the event is sent: a snapshot is only republished
/// when something changed (watched campaigns are re-read every second), so
/// the state it carries still holds then, and pages set their countdown
/// clock from it. The snapshot in the channel may be hours old.
fn stock_events(
    rx: tokio::sync::watch::Receiver<Option<std::sync::Arc<crate::notify::LiveSnapshot>>>,
    clock: crate::clock::Clock,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + Unpin + 'static {
    Box::pin(futures_util::stream::unfold(
        (rx, false),
        move |(mut rx, wait)| {
            let clock = clock.clone();
            async move {
                if wait {
                    rx.changed().await.ok()?;
                }
                loop {
                    let current = rx.borrow_and_update().clone();
                    if let Some(snapshot) = current {
                        let snapshot = crate::notify::LiveSnapshot {
                            at: clock.now(),
                            ..(*snapshot).clone()
                        };
                        let event = SseEvent::default()
                            .event("stock")
                            .json_data(&snapshot)
                            .unwrap_or_else(|_| {
                                SseEvent::default().comment("unserialisable snapshot")
                            });
                        return Some((Ok(event), (rx, true)));
                    }
                    rx.changed().await.ok()?;
                }
            }
        },
    ))
}

/// The most campaigns one multiplexed live stream may watch.
pub const MAX_LIVE_CAMPAIGNS: usize = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LiveManyParams {
    /// Comma-separated campaign ids, 1..=50.
    pub campaigns: String,
}

/// Several campaigns' live stock on one stream (Server-Sent Events).
///
/// Public. The same `stock` events as `/campaigns/{id}/live`, each naming
/// its `campaign_id`: a drops page watches every card over one connection
/// (browsers allow only six per host over HTTP/1.1).
#[utoipa::path(get, path = "/api/v1/live", tag = "notifications", params(LiveManyParams),
    responses((status = 200, content_type = "text/event-stream", description = "`stock` events"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn live_many(
    State(state): State<AppState>,
    Query(params): Query<LiveManyParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let mut ids: Vec<CampaignId> = Vec::new();
    for raw in params.campaigns.split(',').map(str::trim) {
        let id: CampaignId = raw
            .parse()
            .map_err(|_| InvalidInput::new("campaigns", format!("{raw:?} is not a campaign id")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > MAX_LIVE_CAMPAIGNS {
        return Err(InvalidInput::new(
            "campaigns",
            format!("at most {MAX_LIVE_CAMPAIGNS} campaigns"),
        )
        .into());
    }
    for &id in &ids {
        state
            .catalog
            .get(&*state.store, id)
            .await?
            .ok_or(ApiError::NotFound)?;
    }
    let all = futures_util::stream::select_all(
        ids.into_iter()
            .map(|id| stock_events(state.notifier.live.watch(id), state.clock.clone())),
    );
    let all = futures_util::StreamExt::take_until(all, state.notifier.stopping());
    Ok(Sse::new(all).keep_alive(KeepAlive::default()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    pub campaign_id: CampaignId,
    pub subscribed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribed_at: Option<Timestamp>,
}

async fn existing_campaign(state: &AppState, id: &str) -> Result<CampaignId, ApiError> {
    let id: CampaignId = parse_path_id(id)?;
    state
        .catalog
        .get(&*state.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(id)
}

/// Is the caller subscribed to this campaign?
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)))]
pub async fn subscription(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let campaign = existing_campaign(&state, &id).await?;
    let since = state.store.subscription(user.id, campaign).await?;
    Ok(Json(SubscriptionView {
        campaign_id: campaign,
        subscribed: since.is_some(),
        subscribed_at: since,
    }))
}

/// "Notify me": `campaign.opening_soon`, `campaign.opened` and `campaign.sold_out`
/// for this campaign. Idempotent.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)))]
pub async fn subscribe(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let campaign = existing_campaign(&state, &id).await?;
    state
        .store
        .subscribe(user.id, campaign, state.clock.now())
        .await?;
    subscription(State(state), user, Path(id)).await
}

/// Stop notifying. Idempotent.
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let campaign = existing_campaign(&state, &id).await?;
    state.store.unsubscribe(user.id, campaign).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    /// Page size, 1..=200 (default 50).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub before: Option<String>,
    /// Only unread ones.
    pub unread: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: Timestamp,
    pub campaign_id: Option<CampaignId>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub read: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Inbox {
    pub notifications: Vec<NotificationView>,
    /// Unread, in the whole inbox.
    pub unread_count: u64,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<uuid::Uuid>,
}

/// The caller's notifications, newest first: everything pushed, kept for
/// when they were offline.
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "notifications",
    params(InboxParams), security(("bearer" = [])),
    responses((status = 200, body = Inbox), (status = 400, body = ErrorBody)))]
pub async fn inbox(
    State(state): State<AppState>,
    user: AuthUser,
    Query(params): Query<InboxParams>,
) -> Result<Json<Inbox>, ApiError> {
    let page = Page::<uuid::Uuid>::parse(params.limit, params.before, 50, 200, "notification id")?;
    let rows = state
        .store
        .inbox(
            user.id,
            params.unread.unwrap_or(false),
            page.limit,
            page.before,
        )
        .await?;
    let next = page.next(&rows, |r| r.id);
    Ok(Json(Inbox {
        unread_count: state.store.unread_count(user.id).await?,
        notifications: rows
            .into_iter()
            .map(|r| NotificationView {
                id: r.id,
                kind: r.kind,
                at: r.at,
                campaign_id: r.campaign,
                data: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
                read: r.read_at.is_some(),
            })
            .collect(),
        next,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// These notifications (1..=500 ids)…
    pub ids: Option<Vec<uuid::Uuid>>,
    /// …or all of them (`true`). Exactly one of the two.
    pub all: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarkedRead {
    /// Notifications that were unread and are read now.
    pub marked: u64,
    pub unread_count: u64,
}

/// Mark notifications read.
#[utoipa::path(post, path = "/api/v1/me/notifications/read", tag = "notifications",
    request_body = MarkRead, security(("bearer" = [])),
    responses((status = 200, body = MarkedRead), (status = 400, body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<MarkRead>,
) -> Result<Json<MarkedRead>, ApiError> {
    let ids = match (body.ids, body.all) {
        (Some(ids), None) if (1..=500).contains(&ids.len()) => Some(ids),
        (None, Some(true)) => None,
        (Some(_), None) => {
            return Err(InvalidInput::new("ids", "give between 1 and 500 ids").into());
        }
        _ => {
            return Err(InvalidInput::new("ids", "give either `ids` or `\"all\": true`").into());
        }
    };
    let marked = state
        .store
        .mark_read(user.id, ids.as_deref(), state.clock.now())
        .await?;
    Ok(Json(MarkedRead {
        marked,
        unread_count: state.store.unread_count(user.id).await?,
    }))
}
