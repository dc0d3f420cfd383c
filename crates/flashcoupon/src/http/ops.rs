//! Operations: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::ids::CampaignId;
use crate::issuing::drop_of;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// The record (and, in scale-out mode, the Redis gate) is reachable and a
/// group-commit writer is running; 503 naming what is not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "storage unreachable or no commit writer")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut down = Vec::new();
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "not ready: the record is unreachable");
        down.push("the record (database)");
    }
    if !state.commit.writers_alive() {
        tracing::error!("not ready: every group-commit writer has stopped");
        down.push("the group-commit writer");
    }
    if !state.orders.writers_alive() {
        tracing::error!("not ready: every time-sale order writer has stopped");
        down.push("the time-sale order writer");
    }
    if let Err(e) = state.gate.ping().await {
        tracing::warn!(error = %e, "not ready: the gate is unreachable");
        down.push("the gate (Redis)");
    }
    if down.is_empty() {
        return (StatusCode::OK, axum::Json(json!({"status": "ready"})));
    }
    let message = format!("not ready: {} unavailable", down.join(", "));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"error": {"code": "unavailable", "message": message}})),
    )
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The caps count every live stream already; the gauge is read off them.
    state
        .metrics
        .sse_connections
        .set(state.connections.stream_count() as i64);
    // Left as last read if the record does not answer.
    if let Ok((backlog, oldest)) = state.store.outbox_backlog().await {
        state.metrics.outbox_backlog.set(backlog);
        let age = oldest.map_or(0, |t| (state.clock.now().0 - t.0).max(0));
        state.metrics.outbox_oldest_age.set(age as f64 / 1000.0);
    }
    if let Some(restarts) = state.store.log_restarts() {
        // A counter follows the store's own count.
        let counter = &state.metrics.sqlite_log_restarts;
        counter.inc_by(restarts.saturating_sub(counter.get()));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&stock(&state).await),
    )
}

/// Remaining stock per campaign, for the gauge; campaigns whose gate cannot
/// answer right now are left out rather than failing the scrape.
async fn stock(state: &AppState) -> Vec<(CampaignId, u32)> {
    let Ok(campaigns) = state.store.all_campaigns().await else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(campaigns.len());
    for c in &campaigns {
        if let Ok(s) = state.gate.stock(drop_of(c.id)).await {
            out.push((c.id, s.remaining));
        }
    }
    out
}
