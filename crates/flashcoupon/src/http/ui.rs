//! The web UI: the shoppers' drop page at `/` and the admin console at
//! `/admin`, served from files embedded in the binary (rust-embed), so
//! `flashcoupon serve` alone gives a shop both pages, with no CDN and no Node.
//!
//! The pages are plain HTML, CSS and JavaScript modules in `ui/` (no build
//! step); they talk to the same JSON API, socket and live stream as any client.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiError;
use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "ui/"]
struct Assets;

/// Scripts, styles and connections only from this origin; no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { file("index.html", &h) }),
        )
        .route(
            "/admin",
            get(|h: HeaderMap| async move { file("admin.html", &h) }),
        )
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>, h: HeaderMap| async move {
                file(&format!("assets/{path}"), &h)
            }),
        )
}

/// One embedded file, revalidated by ETag (`no-cache`: a new binary's
/// pages are seen at once, an unchanged file costs a 304).
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(found) = Assets::get(path) else {
        return ApiError::NotFound.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&found.metadata.sha256_hash()[..16]));
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, mime.essence_str().to_owned())],
            found.data.into_owned(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.ends_with(".html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}
