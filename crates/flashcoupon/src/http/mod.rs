//! The HTTP layer: extract, call the domain or the claim path, map to a
//! response. Each resource module exposes `router()`; [`router`] merges them,
//! so this file is where every route can be found.

mod accounts;
mod campaigns;
mod codes;
pub(crate) mod csv;
pub(crate) mod dashboard;
mod error;
pub(crate) mod extract;
mod issue;
mod live;
mod notifications;
mod openapi;
mod ops;
mod paging;
mod payments;
mod points;
mod red;
mod request_id;
mod sales;
mod service_keys;
pub(crate) mod socket;
mod spending;
pub(crate) mod summary;
mod triggers;
mod ui;
pub mod views;
mod wallet;
mod webhooks;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use accounts::{BulkUser, BulkUsersResponse, LoginResponse, SignupResponse};
pub use error::{ApiError, ErrorBody};
pub use extract::{ClientAddr, IdempotencyKey, Json, Query};
pub use openapi::ApiDoc;

use crate::state::AppState;

/// Request bodies are capped: nothing in the API needs more.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Every route. Each resource module's `router()` lists its handlers, and
/// each handler's `#[utoipa::path]` is the one place its method and path are
/// written: the router and `/openapi.json` both come from it.
///
/// | module | what |
/// | --- | --- |
/// | [`accounts`] | sign-up, log-in, bulk users |
/// | [`campaigns`] | create, list, read, patch campaigns |
/// | [`issue`] | the claim (hot path), the caller's view of a campaign |
/// | [`wallet`] | wallets and one coupon |
/// | [`spending`] | use, preview, cancel a use |
/// | [`socket`] | the notification WebSocket, not in the OpenAPI document (it is no request and answer) |
/// | [`live`] | live stock (Server-Sent Events) |
/// | [`notifications`] | subscriptions, inbox |
/// | [`webhooks`] | the shop's endpoints and their delivery log |
/// | [`dashboard`] | per-campaign claim statistics and winners |
/// | [`ops`] | health, readiness, metrics |
/// | [`ui`] | the web UI (`/`, `/admin`, `/assets/*`), not in the OpenAPI document |
pub fn router(state: AppState) -> Router {
    let (api, mut doc) = api().split_for_parts();
    openapi::add_common_responses(&mut doc);
    openapi::add_body_rules(&mut doc);
    api.merge(ui::router())
        .merge(socket::router())
        .merge(SwaggerUi::new("/api/docs").url("/openapi.json", doc))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            red::layer,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_id::span))
        // Outermost: the ids exist before anything logs, and every answer
        // (a panic's, a 404's) carries them.
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// The API's routes, with the OpenAPI document they describe.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(campaigns::router())
        .merge(issue::router())
        .merge(codes::router())
        .merge(triggers::router())
        .merge(wallet::router())
        .merge(spending::router())
        .merge(summary::router())
        .merge(live::router())
        .merge(notifications::router())
        .merge(webhooks::router())
        .merge(service_keys::router())
        .merge(payments::router())
        .merge(points::router())
        .merge(sales::router())
        .merge(dashboard::router())
        .merge(ops::router())
}

/// A path id that does not parse names nothing that exists: 404, like an unknown one.
pub fn parse_path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "a handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({"error": {"code": "internal", "message": "internal error"}})),
    )
        .into_response()
}
