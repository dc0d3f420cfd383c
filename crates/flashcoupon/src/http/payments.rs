//! Payment events over HTTP: `POST /api/v1/payment-events`, the same
//! events and the same effect as the queue `flashcoupon.payments` (the
//! rules are in `crate::payments`), for shops without a broker.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ErrorBody, Json};
use crate::auth::ShopCaller;
use crate::domain::timestamp::Timestamp;
use crate::payments::{self, PaymentError, PaymentEvent, Processed, Source};
use crate::state::AppState;
use crate::store::InboundRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_payment_event))
}

/// A payment event as taken in: the first time's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentEventView {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub order_id: String,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
    /// `http` or `amqp`: how it first arrived.
    pub source: String,
    /// What it did, e.g. `confirmed 1 reservation(s)`.
    pub outcome: String,
}

impl From<InboundRecord> for PaymentEventView {
    fn from(r: InboundRecord) -> Self {
        Self {
            event_id: r.event_id,
            kind: r.event_type,
            order_id: r.order_id,
            occurred_at: r.occurred_at,
            received_at: r.received_at,
            source: r.source,
            outcome: r.outcome,
        }
    }
}

/// Tell flashcoupon what happened to an order (a service key, or an admin):
/// `payment.succeeded` confirms its reservations, `payment.failed` and
/// `order.cancelled` release them, `order.refunded` cancels its spends. A
/// payment after the reservation expired confirms nothing and is published
/// as `payment.after_expiry`. The same `event_id` again (also one that came
/// by the broker) answers `200` with the first time's record and changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/payment-events", tag = "payments", request_body = PaymentEvent,
    security(("bearer" = ["admin"])),
    responses((status = 202, body = PaymentEventView, description = "taken in now"),
        (status = 200, body = PaymentEventView, description = "a repeat: the first time's record"),
        (status = 403, body = ErrorBody, description = "forbidden: not an admin or a service key"),
        (status = 404, body = ErrorBody, description = "not_found: no reservation or spend of this order"),
        (status = 409, body = ErrorBody, description = "event_id_conflict: the id was taken in before for another type or order"),
        (status = 503, body = ErrorBody, description = "unavailable: retry")))]
pub async fn post_payment_event(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Json(event): Json<PaymentEvent>,
) -> Result<(StatusCode, Json<PaymentEventView>), ApiError> {
    let taken = payments::take(&state, &event, Source::Http).await;
    let result = match &taken {
        Ok(Processed::First(_)) => "applied",
        Ok(Processed::Repeat(_)) => "repeat",
        Err(_) => "refused",
    };
    state
        .metrics
        .payment_events
        .with_label_values(&["http", result])
        .inc();
    Ok(match taken? {
        Processed::First(r) => (StatusCode::ACCEPTED, Json(r.into())),
        Processed::Repeat(r) => (StatusCode::OK, Json(r.into())),
    })
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::Invalid(e) => e.into(),
            PaymentError::UnknownOrder(order) => ApiError::NotFoundWhy(format!(
                "no reservation or spend is known for order {order:?}"
            )),
            e @ PaymentError::EventIdReused { .. } => {
                ApiError::conflict("event_id_conflict", e.to_string())
            }
            e @ PaymentError::Busy => ApiError::Unavailable(e.to_string()),
            PaymentError::Store(e) => e.into(),
        }
    }
}
