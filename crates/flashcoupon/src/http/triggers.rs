//! Trigger events from a shop's back end: `POST /api/v1/trigger-events`
//! (the same as the queue `flashcoupon.triggers` will take), and what one did.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ErrorBody, Json};
use crate::auth::ShopCaller;
use crate::domain::ids::{UserId, parse_uuid};
use crate::domain::timestamp::Timestamp;
use crate::domain::{InvalidInput, coupon::check_reference};
use crate::issuing::triggers::{self, TriggerError};
use crate::state::AppState;
use crate::store::TriggerEvent;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_trigger_event))
        .routes(routes!(get_trigger_event))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTriggerEvent {
    /// The shop's id for this event, 1 to 128 characters: the same id again
    /// is a repeat and changes nothing.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub event_id: String,
    /// The custom event's name (`vip_day`, or `custom:vip_day`): campaigns
    /// with `"trigger": "custom:vip_day"` issue to the user.
    #[schema(
        min_length = 1,
        max_length = 71,
        pattern = r"^(custom:)?[a-z0-9_.-]{1,64}$"
    )]
    pub name: String,
    #[schema(format = "uuid")]
    pub user_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerEventView {
    pub event_id: String,
    /// `signup`, `first_order_paid` or `custom:<name>`.
    pub name: String,
    pub user_id: UserId,
    /// `signup`, `order` (a first paid order), `http` or `amqp`.
    pub source: String,
    /// `pending` until every campaign with the trigger decided, then `done`.
    pub status: String,
    pub received_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<Timestamp>,
    /// What it did, e.g. `issued 1, sold_out 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl From<TriggerEvent> for TriggerEventView {
    fn from(e: TriggerEvent) -> Self {
        Self {
            status: if e.done_at.is_some() {
                "done"
            } else {
                "pending"
            }
            .into(),
            event_id: e.event_id,
            name: e.name,
            user_id: e.user_id,
            source: e.source,
            received_at: e.received_at,
            done_at: e.done_at,
            outcome: e.outcome,
        }
    }
}

/// Take in a shop's event (a service key or an admin): every campaign with
/// the trigger `custom:<name>` issues the user one coupon, once per (user,
/// campaign), subject to its stock, window and limit. Worked in the
/// background; `GET` the event to see what it did.
#[utoipa::path(post, path = "/api/v1/trigger-events", tag = "codes", request_body = NewTriggerEvent,
    security(("bearer" = ["admin"])),
    responses((status = 202, body = TriggerEventView, description = "taken in (also a repeat of the same event)"),
        (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 403, body = ErrorBody, description = "forbidden: not an admin or a service key"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        (status = 409, body = ErrorBody, description = "event_id_conflict: the id was taken in before with another name or user")))]
pub async fn post_trigger_event(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Json(body): Json<NewTriggerEvent>,
) -> Result<(StatusCode, Json<TriggerEventView>), ApiError> {
    let user = parse_uuid(&body.user_id)
        .map(UserId)
        .ok_or_else(|| InvalidInput::new("user_id", "must be a user id (a UUID)"))?;
    triggers::take_custom(&state, &body.event_id, &body.name, user, "http")
        .await
        .map_err(|e| match e {
            TriggerError::Invalid(e) => e.into(),
            TriggerError::UnknownUser => ApiError::NotFoundWhy(format!("no user {user}")),
            e @ TriggerError::Conflict(_) => ApiError::conflict("event_id_conflict", e.to_string()),
            TriggerError::Store(e) => e.into(),
        })?;
    let event = state
        .store
        .get_trigger_event(&body.event_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Json(event.into())))
}

/// What a trigger event did (a service key or an admin).
#[utoipa::path(get, path = "/api/v1/trigger-events/{event_id}", tag = "codes",
    params(("event_id" = String, Path, description = "the event's id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = TriggerEventView), (status = 404, body = ErrorBody)))]
pub async fn get_trigger_event(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(event_id): Path<String>,
) -> Result<Json<TriggerEventView>, ApiError> {
    check_reference("event_id", &event_id).map_err(|_| ApiError::NotFound)?;
    let event = state
        .store
        .get_trigger_event(&event_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(event.into()))
}
