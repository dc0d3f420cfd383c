//! Live stock over Server-Sent Events: one campaign, or several on one
//! stream (a page of drops), public.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_core::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ClientAddr, ErrorBody, Query, parse_path_id};
use crate::connections::Slot;
use crate::domain::InvalidInput;
use crate::domain::ids::CampaignId;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(live_many))
}

/// A campaign's remaining stock and status, live (Server-Sent Events).
///
/// Public. Each `stock` event carries a snapshot (`status`,
/// `total_quantity`, `remaining_quantity`, `issued_count`, `paused`, the
/// window, and `at`, the server's time when it was sent, or published a
/// moment before); the first arrives at once, the next whenever something
/// changed, at most 10 a second (fewer when thousands watch: about 10,000
/// events a second across a campaign's streams, so 10,000 pages get one a
/// second).
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/live", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, content_type = "text/event-stream", description = "`stock` events"),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "unavailable: too many live connections")))]
pub async fn live(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id: CampaignId = parse_path_id(&id)?;
    state
        .catalog
        .get(&*state.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let slot = state
        .connections
        .open(client, false)
        .map_err(|full| ApiError::Unavailable(full.to_string()))?;
    let snapshots = stock_events(state.notifier.live.watch(id), state.clock.clone());
    Ok(stream(snapshots, state.notifier.stopping(), slot))
}

/// The SSE answer: ends at shutdown, and holds the connection's place under
/// the caps for as long as it is open.
pub(super) fn stream(
    events: impl Stream<Item = Result<SseEvent, Infallible>> + Send + Unpin + 'static,
    stopping: impl std::future::Future<Output = ()> + Send + 'static,
    slot: Slot,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = futures_util::StreamExt::take_until(events, stopping);
    let events = futures_util::StreamExt::map(events, move |event| {
        let _held = &slot;
        event
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// A campaign's snapshots as `stock` events: the current one, then each change.
///
/// The first event is rendered for this stream, `at` stamped now: the
/// snapshot in the channel may be hours old (one is only republished when
/// something changed; watched campaigns are re-read every second, so the
/// state it carries still holds), and pages set their countdown clock from
/// it. A change is sent as rendered when it was published (`at` then, a
/// moment ago), at this stream's turn (see `notify::live`): ten thousand
/// streams woken by one update would otherwise all run at once, and claims
/// would queue behind them (`bench/abuse.sh`).
fn stock_events(
    watcher: crate::notify::Watcher,
    clock: crate::clock::Clock,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + Unpin + 'static {
    let crate::notify::Watcher { rx, turn } = watcher;
    Box::pin(futures_util::stream::unfold(
        (rx, false),
        move |(mut rx, wait)| {
            let clock = clock.clone();
            let turn = turn.clone();
            async move {
                if wait {
                    // At this stream's turn, if there is something new.
                    loop {
                        turn.notified().await;
                        if rx.has_changed().ok()? {
                            break;
                        }
                    }
                }
                loop {
                    let current = rx.borrow_and_update().clone();
                    if let Some(published) = current {
                        let event = SseEvent::default().event("stock");
                        let event = if wait {
                            event.data(&*published.json)
                        } else {
                            let snapshot = crate::notify::LiveSnapshot {
                                at: clock.now(),
                                ..published.snapshot.clone()
                            };
                            event.json_data(&snapshot).unwrap_or_else(|_| {
                                SseEvent::default().comment("unserialisable snapshot")
                            })
                        };
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
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(,[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}){0,49}$"
    )]
    pub campaigns: String,
}

/// Several campaigns' live stock on one stream (Server-Sent Events).
///
/// Public. The same `stock` events as `/campaigns/{id}/live`, each naming
/// its `campaign_id`: a drops page watches every card over one connection
/// (browsers allow only six per host over HTTP/1.1).
#[utoipa::path(get, path = "/api/v1/live", tag = "notifications", params(LiveManyParams),
    responses((status = 200, content_type = "text/event-stream", description = "`stock` events"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "unavailable: too many live connections")))]
pub async fn live_many(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Query(params): Query<LiveManyParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // As the pattern says: 1 to 50 ids, commas and nothing else between them.
    let listed: Vec<&str> = params.campaigns.split(',').collect();
    if listed.len() > MAX_LIVE_CAMPAIGNS {
        return Err(InvalidInput::new(
            "campaigns",
            format!("at most {MAX_LIVE_CAMPAIGNS} campaigns"),
        )
        .into());
    }
    let mut ids: Vec<CampaignId> = Vec::new();
    for raw in listed {
        let id: CampaignId = raw
            .parse()
            .map_err(|_| InvalidInput::new("campaigns", format!("{raw:?} is not a campaign id")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
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
    let slot = state
        .connections
        .open(client, false)
        .map_err(|full| ApiError::Unavailable(full.to_string()))?;
    Ok(stream(all, state.notifier.stopping(), slot))
}
