//! The HTTP layer: extract, call the domain or the claim path, map to a
//! response. Each resource module exposes `router()`; [`router`] merges them,
//! so this file is where every route can be found.

mod accounts;
mod campaigns;
mod dashboard;
mod error;
mod extract;
mod issue;
mod notifications;
mod openapi;
mod ops;
mod paging;
mod spending;
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
use utoipa_swagger_ui::SwaggerUi;

pub use accounts::{BulkUser, BulkUsersResponse, LoginResponse, SignupResponse};
pub use error::{ApiError, ErrorBody};
pub use extract::{IdempotencyKey, Json, Query};
pub use openapi::ApiDoc;

use crate::state::AppState;

/// Request bodies are capped: nothing in the API needs more.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Every route:
///
/// | route | module |
/// | --- | --- |
/// | `POST /api/v1/auth/signup`, `POST /api/v1/auth/login`, `POST /api/v1/admin/users/bulk` | [`accounts`] |
/// | `GET, POST /api/v1/campaigns`, `GET, PATCH /api/v1/campaigns/{id}` | [`campaigns`] |
/// | `POST /api/v1/campaigns/{id}/issue`, `GET /api/v1/campaigns/{id}/me` | [`issue`] |
/// | `GET /api/v1/me/coupons`, `GET /api/v1/users/{user_id}/coupons`, `GET /api/v1/coupons/{id}` | [`wallet`] |
/// | `POST /api/v1/coupons/{id}/use`, `POST /api/v1/coupons/{id}/cancel-use`, `POST /api/v1/coupons/{id}/preview` | [`spending`] |
/// | `GET /api/v1/notifications/ws`, `GET /api/v1/campaigns/{id}/live`, `GET /api/v1/live`, `GET, PUT, DELETE /api/v1/campaigns/{id}/subscription`, `GET /api/v1/me/notifications`, `POST /api/v1/me/notifications/read` | [`notifications`] |
/// | `GET, POST /api/v1/admin/webhooks`, `GET, DELETE /api/v1/admin/webhooks/{id}`, `GET /api/v1/admin/webhooks/{id}/deliveries` | [`webhooks`] |
/// | `GET /api/v1/admin/campaigns/{id}/stats`, `GET /api/v1/admin/campaigns/{id}/winners`, `GET /api/v1/admin/campaigns/{id}/winners.csv` | [`dashboard`] |
/// | `GET /`, `GET /admin`, `GET /assets/{*path}` (the web UI) | [`ui`] |
/// | `GET /healthz`, `GET /readyz`, `GET /metrics` | [`ops`] |
/// | `GET /openapi.json`, `GET /api/docs` | [`openapi`] |
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(accounts::router())
        .merge(campaigns::router())
        .merge(issue::router())
        .merge(wallet::router())
        .merge(spending::router())
        .merge(notifications::router())
        .merge(webhooks::router())
        .merge(dashboard::router())
        .merge(ui::router())
        .merge(ops::router())
        .merge(SwaggerUi::new("/api/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
