//! Extractors that answer bad input in our error format: `Json` and `Query`
//! wrap axum's and turn every rejection into a 4xx `ApiError` (serde's path
//! names the offending field); `IdempotencyKey` reads and checks the header.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body (request) or JSON answer (response).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        json_body(req, state).await.map(Json)
    }
}

/// An optional JSON body: none when the request has no `Content-Type` (an
/// empty POST, as axum decides), else a body checked like [`Json`]'s.
impl<S, T> axum::extract::OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        json_body(req, state).await.map(|v| Some(Json(v)))
    }
}

/// The body of a request that says it is JSON, read within the body limit
/// and parsed into `T`: axum's `Json` steps (415, 413, then serde), with
/// one more. Every body this API takes is a JSON object (or `null` where a
/// body is optional), and serde would also read a struct from an array of
/// its fields in order (`["spring", 100, …]`): a shape nobody documents, so
/// a top-level array is refused.
async fn json_body<T, S>(req: Request, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    if !json_content_type(req.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|b| {
        if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: super::BODY_LIMIT_BYTES,
            }
        } else {
            ApiError::InvalidInput(format!("body: {}", b.body_text()))
        }
    })?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::InvalidInput(
            "body: must be a JSON object, not an array".into(),
        ));
    }
    axum::Json::<T>::from_bytes(&bytes)
        .map(|axum::Json(v)| v)
        .map_err(json_rejection)
}

/// `application/json` or `application/<anything>+json`, as axum's `Json`
/// accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(b)
            if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::PayloadTooLarge {
                limit: super::BODY_LIMIT_BYTES,
            }
        }
        // Syntax and data errors: the text carries serde's path to the field.
        other => ApiError::InvalidInput(
            other
                .body_text()
                .replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                )
                .replace(
                    "Failed to parse the request body as JSON: ",
                    "malformed JSON: ",
                ),
        ),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::InvalidInput(query_message(rejection))),
        }
    }
}

fn query_message(rejection: QueryRejection) -> String {
    rejection
        .body_text()
        .replace("Failed to deserialize query string: ", "query: ")
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The optional `Idempotency-Key` header: 1..=128 printable ASCII characters.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let key = idempotency_key(raw.as_bytes()).ok_or_else(|| {
            ApiError::InvalidInput(
                "Idempotency-Key: must be 1 to 128 printable ASCII characters".into(),
            )
        })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// A header value that is a valid Idempotency-Key: 1..=128 printable ASCII.
pub(crate) fn idempotency_key(raw: &[u8]) -> Option<&str> {
    let printable = raw.iter().all(|b| (0x20..0x7f).contains(b));
    if raw.is_empty() || raw.len() > 128 || !printable {
        return None;
    }
    std::str::from_utf8(raw).ok()
}

/// The client's address: the peer's, or the one a trusted proxy forwarded
/// (`RateLimits::client`). Used by the sign-in limit and the connection caps.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

impl FromRequestParts<crate::state::AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address")))?;
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(ClientAddr(state.limits.client(peer, forwarded)))
    }
}
