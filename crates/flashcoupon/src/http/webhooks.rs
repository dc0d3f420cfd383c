//! Admin: shop-side webhook endpoints and their delivery log.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use rand::RngCore;
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::AdminUser;
use crate::domain::timestamp::Timestamp;
use crate::domain::{InvalidInput, whole};
use crate::events::EventKind;
use crate::notify::webhooks::FORMATS;
use crate::state::AppState;
use crate::store::{DeliveryRecord, WebhookRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
        .routes(routes!(deliveries))
}

/// What a webhook URL may be, as the schema publishes it: `http` or
/// `https`, a host name whose last label starts with a letter (so it is
/// not read as a number) or an IPv4 address, an optional port, then any
/// printable ASCII after a `/`, `?` or `#`. Every such URL parses (an
/// `xn--` label that is not valid punycode being the one exception a
/// pattern cannot see), and nothing else is accepted.
pub const URL_PATTERN: &str = concat!(
    r"^https?://(",
    // host name
    r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?",
    // or IPv4
    r"|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    // port 0..=65535
    r")(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?",
    r"([/?#][\x21-\x7e]*)?$"
);

pub const MAX_URL_CHARS: usize = 2048;

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(URL_PATTERN).expect("URL_PATTERN compiles"));

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    #[schema(schema_with = url_schema)]
    pub url: String,
    /// Any of `campaign.opened`, `campaign.sold_out`, `campaign.stock_low`,
    /// `coupon.used`, `coupon.use_cancelled`, `payment.after_expiry`,
    /// `sale.opened`, `sale.sold_out` (repeats count once).
    #[schema(schema_with = events_schema)]
    pub events: Vec<String>,
    /// The HMAC key, 16..=256 printable ASCII characters, no spaces.
    /// Default: 32 random bytes, hex.
    #[schema(pattern = r"^[\x21-\x7e]{16,256}$")]
    pub secret: Option<String>,
    #[schema(schema_with = format_schema)]
    pub format: Option<String>,
    /// With `campaign.stock_low` (and only then): fire once remaining stock
    /// is at or below this.
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub stock_low_threshold: Option<i64>,
}

fn url_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(MAX_URL_CHARS))
        .pattern(Some(URL_PATTERN))
        .description(Some(
            "An absolute `http://` or `https://` URL: a host name or IPv4 address, an optional port, then a path.",
        ))
        .build()
}

fn events_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let known = EventKind::webhook_names();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(known.clone())),
        )
        .min_items(Some(1))
        .max_items(Some(known.len()))
        .build()
}

fn format_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let values = FORMATS
        .iter()
        .map(|f| serde_json::Value::from(*f))
        .chain([serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .description(Some("`json` (default), `discord` or `slack`."))
        .build()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_low_threshold: Option<i64>,
    /// Only in the answer to the creation; keep it to verify signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: Timestamp,
}

impl WebhookView {
    fn new(w: WebhookRecord, with_secret: bool) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            format: w.format,
            stock_low_threshold: w.stock_low_threshold,
            secret: with_secret.then_some(w.secret),
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug)]
struct ValidWebhook {
    url: String,
    events: Vec<String>,
    format: String,
    secret: String,
    stock_low_threshold: Option<i64>,
}

impl NewWebhook {
    /// The endpoint to store (without id and time), or what is wrong.
    fn validate(self) -> Result<ValidWebhook, InvalidInput> {
        if self.url.len() > MAX_URL_CHARS {
            return Err(InvalidInput::new(
                "url",
                format!("must be at most {MAX_URL_CHARS} characters"),
            ));
        }
        let bad_url = || {
            InvalidInput::new(
                "url",
                "must be an absolute http(s) URL with a host name or IPv4 address",
            )
        };
        if !URL.is_match(&self.url) {
            return Err(bad_url());
        }
        // Kept as written: what matches the pattern parses, and fits the
        // record's 2048 characters, which its normalised form (`http://a?x`
        // becomes `http://a/?x`) might not. Deliveries parse it again.
        reqwest::Url::parse(&self.url).map_err(|_| bad_url())?;
        let known = EventKind::webhook_names();
        if self.events.is_empty() || self.events.len() > known.len() {
            return Err(InvalidInput::new(
                "events",
                format!("give 1 to {} of {}", known.len(), known.join(", ")),
            ));
        }
        let mut events = Vec::new();
        for e in self.events {
            if !known.contains(&e.as_str()) {
                return Err(InvalidInput::new(
                    "events",
                    format!("unknown event type {e:?}; known: {}", known.join(", ")),
                ));
            }
            if !events.contains(&e) {
                events.push(e);
            }
        }
        let format = self.format.unwrap_or_else(|| "json".into());
        if !FORMATS.contains(&format.as_str()) {
            return Err(InvalidInput::new(
                "format",
                format!("must be one of {}", FORMATS.join(", ")),
            ));
        }
        let wants_low = events.iter().any(|e| e == EventKind::StockLow.as_str());
        match (wants_low, self.stock_low_threshold) {
            (true, None) => {
                return Err(InvalidInput::new(
                    "stock_low_threshold",
                    "campaign.stock_low needs a threshold",
                ));
            }
            (false, Some(_)) => {
                return Err(InvalidInput::new(
                    "stock_low_threshold",
                    "only with the campaign.stock_low event",
                ));
            }
            (_, Some(t)) if !(1..=1_000_000_000).contains(&t) => {
                return Err(InvalidInput::new(
                    "stock_low_threshold",
                    "must be between 1 and 1000000000",
                ));
            }
            _ => {}
        }
        let secret = match self.secret {
            Some(s) if (16..=256).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) => {
                s
            }
            Some(_) => {
                return Err(InvalidInput::new(
                    "secret",
                    "must be 16 to 256 printable ASCII characters, no spaces",
                ));
            }
            None => {
                let mut bytes = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut bytes);
                hex::encode(bytes)
            }
        };
        Ok(ValidWebhook {
            url: self.url,
            events,
            format,
            secret,
            stock_low_threshold: self.stock_low_threshold,
        })
    }
}

/// Register an endpoint. The answer includes its secret (only this once).
#[utoipa::path(post, path = "/api/v1/admin/webhooks", tag = "webhooks", request_body = NewWebhook,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let valid = body.validate()?;
    let record = WebhookRecord {
        id: uuid::Uuid::now_v7(),
        url: valid.url,
        secret: valid.secret,
        events: valid.events,
        format: valid.format,
        stock_low_threshold: valid.stock_low_threshold,
        created_at: state.clock.now(),
    };
    state.store.insert_webhook(&record).await?;
    state.notifier.webhooks.invalidate();
    Ok((StatusCode::CREATED, Json(WebhookView::new(record, true))))
}

/// Every registered endpoint (without secrets).
#[utoipa::path(get, path = "/api/v1/admin/webhooks", tag = "webhooks", security(("bearer" = ["admin"])),
    responses((status = 200, body = WebhookList), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.store.webhooks().await?;
    Ok(Json(WebhookList {
        webhooks: webhooks
            .into_iter()
            .map(|w| WebhookView::new(w, false))
            .collect(),
    }))
}

async fn find(state: &AppState, id: &str) -> Result<WebhookRecord, ApiError> {
    let id: uuid::Uuid = parse_path_id(id)?;
    state.store.webhook(id).await?.ok_or(ApiError::NotFound)
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::new(find(&state, &id).await?, false)))
}

/// Remove an endpoint: its pending deliveries are dropped, its log stays readable.
#[utoipa::path(delete, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")), security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: uuid::Uuid = parse_path_id(&id)?;
    if !state.store.delete_webhook(id, state.clock.now()).await? {
        return Err(ApiError::NotFound);
    }
    state.notifier.webhooks.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub at: Timestamp,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    /// `pending` (will be retried), `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: i64,
    /// When a pending delivery is tried next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    /// The request body sent.
    pub body: String,
    /// The request that caused the event (sent as `X-Request-Id`), if one
    /// did: what to search the logs for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub log: Vec<AttemptView>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
            status: d.status,
            attempts: d.attempts,
            created_at: d.created_at,
            finished_at: d.finished_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            body: d.body,
            request_id: d.request_id,
            log: d
                .log
                .into_iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    at: a.at,
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryLog {
    pub deliveries: Vec<DeliveryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<uuid::Uuid>,
}

/// An endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(get, path = "/api/v1/admin/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id"), LogParams), security(("bearer" = ["admin"])),
    responses((status = 200, body = DeliveryLog), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
) -> Result<Json<DeliveryLog>, ApiError> {
    let id: uuid::Uuid = parse_path_id(&id)?;
    let page = Page::<uuid::Uuid>::parse(params.limit, params.before, 50, 200, "delivery id")?;
    // A deleted endpoint's log stays readable, so look at deliveries, not the endpoint.
    let rows = state.store.deliveries(id, page.limit, page.before).await?;
    if rows.is_empty() && page.before.is_none() && state.store.webhook(id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let next = page.next(&rows, |r| r.id);
    Ok(Json(DeliveryLog {
        deliveries: rows.into_iter().map(Into::into).collect(),
        next,
    }))
}
