//! "Notify me" subscriptions (to campaigns and to time sales) and the inbox
//! of notifications.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::{AuthUser, WritingUser};
use crate::domain::InvalidInput;
use crate::domain::ids::{CampaignId, SaleId, UserId, parse_uuid};
use crate::domain::timestamp::Timestamp;
use crate::state::AppState;
use crate::store::Topic;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscription, subscribe, unsubscribe))
        .routes(routes!(sale_subscription, sale_subscribe, sale_unsubscribe))
        .routes(routes!(inbox))
        .routes(routes!(mark_read))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    pub campaign_id: CampaignId,
    pub subscribed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribed_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SaleSubscriptionView {
    pub sale_id: SaleId,
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

async fn existing_sale(state: &AppState, id: &str) -> Result<SaleId, ApiError> {
    let id: SaleId = parse_path_id(id)?;
    state.store.get_sale(id).await?.ok_or(ApiError::NotFound)?;
    Ok(id)
}

/// What a subscription toggle does, for campaigns and sales alike.
#[derive(Clone, Copy)]
enum Toggle {
    Read,
    On,
    Off,
}

/// Apply `toggle` to the caller's subscription to `topic`; since when they
/// are subscribed afterwards (`None`: not subscribed).
async fn toggle(
    state: &AppState,
    user: UserId,
    topic: Topic,
    toggle: Toggle,
) -> Result<Option<Timestamp>, ApiError> {
    match toggle {
        Toggle::Read => {}
        Toggle::On => {
            state
                .store
                .subscribe(user, topic, state.clock.now())
                .await?;
        }
        Toggle::Off => {
            state.store.unsubscribe(user, topic).await?;
            return Ok(None);
        }
    }
    Ok(state.store.subscription(user, topic).await?)
}

async fn campaign_toggle(
    state: AppState,
    user: UserId,
    id: String,
    t: Toggle,
) -> Result<Json<SubscriptionView>, ApiError> {
    let campaign_id = existing_campaign(&state, &id).await?;
    let since = toggle(&state, user, Topic::Campaign(campaign_id), t).await?;
    Ok(Json(SubscriptionView {
        campaign_id,
        subscribed: since.is_some(),
        subscribed_at: since,
    }))
}

async fn sale_toggle(
    state: AppState,
    user: UserId,
    id: String,
    t: Toggle,
) -> Result<Json<SaleSubscriptionView>, ApiError> {
    let sale_id = existing_sale(&state, &id).await?;
    let since = toggle(&state, user, Topic::Sale(sale_id), t).await?;
    Ok(Json(SaleSubscriptionView {
        sale_id,
        subscribed: since.is_some(),
        subscribed_at: since,
    }))
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
    campaign_toggle(state, user.id, id, Toggle::Read).await
}

/// "Notify me": `campaign.opening_soon`, `campaign.opened` and `campaign.sold_out`
/// for this campaign. Idempotent.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn subscribe(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    campaign_toggle(state, user.id, id, Toggle::On).await
}

/// Stop notifying. Idempotent.
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    campaign_toggle(state, user.id, id, Toggle::Off).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Is the caller subscribed to this time sale?
#[utoipa::path(get, path = "/api/v1/sales/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "sale id")), security(("bearer" = [])),
    responses((status = 200, body = SaleSubscriptionView), (status = 404, body = ErrorBody)))]
pub async fn sale_subscription(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<SaleSubscriptionView>, ApiError> {
    sale_toggle(state, user.id, id, Toggle::Read).await
}

/// "Notify me" for a time sale: `sale.opening_soon`, `sale.opened` and
/// `sale.sold_out`. Idempotent.
#[utoipa::path(put, path = "/api/v1/sales/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "sale id")), security(("bearer" = [])),
    responses((status = 200, body = SaleSubscriptionView), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn sale_subscribe(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
    Path(id): Path<String>,
) -> Result<Json<SaleSubscriptionView>, ApiError> {
    sale_toggle(state, user.id, id, Toggle::On).await
}

/// Stop notifying about this sale. Idempotent.
#[utoipa::path(delete, path = "/api/v1/sales/{id}/subscription", tag = "notifications",
    params(("id" = String, Path, description = "sale id")), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn sale_unsubscribe(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    sale_toggle(state, user.id, id, Toggle::Off).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
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
    #[serde(default, deserialize_with = "notification_ids")]
    #[schema(min_items = 1, max_items = 500)]
    pub ids: Option<Vec<uuid::Uuid>>,
    /// …or all of them (`true`). Exactly one of the two.
    pub all: Option<bool>,
}

/// Ids as the inbox writes them, as `format: uuid` says: hyphenated.
fn notification_ids<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<uuid::Uuid>>, D::Error> {
    let Some(raw) = Option::<Vec<String>>::deserialize(d)? else {
        return Ok(None);
    };
    raw.iter()
        .map(|id| {
            parse_uuid(id)
                .ok_or_else(|| serde::de::Error::custom(format!("{id:?} is not a notification id")))
        })
        .collect::<Result<_, _>>()
        .map(Some)
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
    responses((status = 200, body = MarkedRead), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn mark_read(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
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
