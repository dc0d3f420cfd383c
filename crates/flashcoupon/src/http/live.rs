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
use crate::notify::fanout::{Snapshot, Watcher};
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

/// A live channel's snapshots (a campaign's, a sale's) as `stock` events:
/// the current one, then each change.
///
/// The first event is rendered for this stream, `at` stamped now: the
/// snapshot in the channel may be hours old (one is only republished when
/// something changed; watched campaigns and sales are re-read all the time,
/// so the state it carries still holds), and pages set their countdown
/// clock from it. A change is sent as rendered when it was published (`at`
/// then, a moment ago), at this stream's turn (see `notify::fanout`): ten
/// thousand streams woken by one update would otherwise all run at once,
/// and claims would queue behind them (`bench/abuse.sh`).
pub(super) fn stock_events<S: Snapshot>(
    watcher: Watcher<S>,
    clock: crate::clock::Clock,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + Unpin + 'static {
    let Watcher { rx, turn } = watcher;
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
                            event
                                .json_data(published.snapshot.stamped(clock.now()))
                                .unwrap_or_else(|_| {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::response::IntoResponse;
    use futures_util::StreamExt;

    use super::*;
    use crate::notify::fanout::tests::reading;
    use crate::notify::fanout::{COALESCE, Fanout};

    /// The next `stock` event's data as JSON, if one comes within a minute.
    async fn next(
        body: &mut (impl futures_core::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    ) -> Option<serde_json::Value> {
        let chunk = tokio::time::timeout(Duration::from_secs(60), body.next())
            .await
            .ok()??
            .unwrap();
        let text = std::str::from_utf8(&chunk).unwrap();
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        Some(serde_json::from_str(data).unwrap())
    }

    /// A stream opens with the current state stamped now, then sends each
    /// change as published, at its turn; changes published while it was
    /// not being read come as one, the latest: none is left unsent.
    #[tokio::test(start_paused = true)]
    async fn a_stream_opens_now_then_sends_changes_at_its_turn_and_never_misses_the_last() {
        let fanout = Fanout::<u8, crate::notify::fanout::tests::Reading>::default();
        let clock = crate::clock::Clock::default();
        let watcher = fanout.watch(1);
        fanout.publish(1, reading(10, 0));
        let before = clock.now().0;
        let events = stock_events(watcher, clock.clone());
        let mut body = Sse::new(events)
            .into_response()
            .into_body()
            .into_data_stream();

        let first = next(&mut body).await.expect("the current state at once");
        assert_eq!(first["left"], 10);
        let at = crate::domain::timestamp::Timestamp::parse_rfc3339(first["at"].as_str().unwrap());
        assert!(at.unwrap().0 >= before, "stamped now: {first}");
        assert_eq!(next(&mut body).await, None, "nothing changed, nothing sent");

        tokio::time::advance(COALESCE).await;
        fanout.publish(1, reading(9, 1));
        let second = next(&mut body).await.expect("the change");
        let published = |left, at| serde_json::to_value(reading(left, at)).unwrap();
        assert_eq!(second, published(9, 1), "as published");

        // Two changes while nobody reads the stream: the latest arrives, once.
        tokio::time::advance(COALESCE).await;
        fanout.publish(1, reading(8, 2));
        tokio::time::advance(COALESCE).await;
        fanout.publish(1, reading(7, 3));
        tokio::task::yield_now().await;
        let third = next(&mut body).await.expect("the latest change");
        assert_eq!(third, published(7, 3));
        assert_eq!(next(&mut body).await, None, "and only once");
    }
}
