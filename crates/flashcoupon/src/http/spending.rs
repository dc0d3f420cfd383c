//! Spending: use a coupon on an order, and cancel that use. Owner only: a
//! coupon of somebody else is `404 not_found`, as if it did not exist.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::views::CouponView;
use super::{ApiError, ErrorBody, Json, parse_path_id};
use crate::auth::AuthUser;
use crate::domain::coupon::{
    CancelUseRequest, Coupon, Spend, UseDecision, UseRejection, UseRequest, check_order_id,
};
use crate::domain::ids::CouponId;
use crate::notify::kinds;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/coupons/{id}/use", post(use_coupon))
        .route("/api/v1/coupons/{id}/cancel-use", post(cancel_use))
        .route("/api/v1/coupons/{id}/preview", post(preview))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UseResponse {
    pub coupon: CouponView,
    pub discount_amount: i64,
    pub payable_amount: i64,
}

async fn own_coupon(state: &AppState, user: &AuthUser, id: CouponId) -> Result<Coupon, ApiError> {
    state
        .store
        .get_coupon(id)
        .await?
        .filter(|c| c.user_id == user.id)
        .ok_or(ApiError::NotFound)
}

fn use_rejection(r: UseRejection) -> ApiError {
    match r {
        UseRejection::AlreadyUsed => ApiError::conflict(
            "already_used",
            "this coupon was already used on another order",
        ),
        UseRejection::Expired => ApiError::conflict("expired", "this coupon has expired"),
        UseRejection::NotYetValid => {
            ApiError::conflict("not_yet_valid", "this coupon cannot be used yet")
        }
        UseRejection::BelowMinOrder => {
            ApiError::conflict("below_min_order", "the order is below the coupon's minimum")
        }
        UseRejection::Reserved => ApiError::conflict(
            "reserved",
            "this coupon is reserved for a payment in progress",
        ),
    }
}

/// Spend a coupon on an order. The same `order_id` again returns the first answer.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/use", tag = "spending", request_body = UseRequest,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = UseResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already_used, expired, not_yet_valid, below_min_order or reserved")))]
pub async fn use_coupon(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<UseRequest>,
) -> Result<Json<UseResponse>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    body.validate()?;
    // Two rounds at most: if a concurrent spend wins the conditional update,
    // the second read decides (a replay for the same order, else already_used).
    for _ in 0..2 {
        let coupon = own_coupon(&state, &user, id).await?;
        let mut applied = false;
        let now = state.clock.now();
        let spend = match coupon.decide_use(&body.order_id, body.order_amount, now) {
            UseDecision::Reject(r) => return Err(use_rejection(r)),
            UseDecision::Replay(spend) => spend,
            UseDecision::Apply { discount_amount } => {
                let spend = Spend {
                    order_id: body.order_id.clone(),
                    order_amount: body.order_amount,
                    discount_amount,
                    used_at: now,
                };
                if !state.store.mark_used(id, &spend).await? {
                    continue;
                }
                applied = true;
                spend
            }
        };
        let coupon = own_coupon(&state, &user, id).await?;
        if applied {
            state.notifier.coupon_event(
                kinds::USED,
                &coupon,
                json!({"coupon_id": id, "order_id": spend.order_id, "order_amount": spend.order_amount,
                    "discount_amount": spend.discount_amount}),
                format!(
                    "🧾 Coupon {id} used on order {}: {} off {}.",
                    spend.order_id, spend.discount_amount, spend.order_amount
                ),
            );
        }
        return Ok(Json(UseResponse {
            coupon: CouponView::new(&coupon, now),
            discount_amount: spend.discount_amount,
            payable_amount: spend.order_amount - spend.discount_amount,
        }));
    }
    Err(use_rejection(UseRejection::AlreadyUsed))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreviewResponse {
    pub discount_amount: i64,
    pub payable_amount: i64,
}

/// What `use` would answer for this order, without spending anything: the
/// checkout page's preview. The same rules and errors as `use`; the order
/// that already spent the coupon previews its recorded discount.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/preview", tag = "spending", request_body = UseRequest,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = PreviewResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already_used, expired, not_yet_valid, below_min_order or reserved")))]
pub async fn preview(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<UseRequest>,
) -> Result<Json<PreviewResponse>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    body.validate()?;
    let coupon = own_coupon(&state, &user, id).await?;
    let (order_amount, discount_amount) =
        match coupon.decide_use(&body.order_id, body.order_amount, state.clock.now()) {
            UseDecision::Reject(r) => return Err(use_rejection(r)),
            UseDecision::Replay(spend) => (spend.order_amount, spend.discount_amount),
            UseDecision::Apply { discount_amount } => (body.order_amount, discount_amount),
        };
    Ok(Json(PreviewResponse {
        discount_amount,
        payable_amount: order_amount - discount_amount,
    }))
}

/// Cancel the use made by `order_id`; the coupon is available again if still valid.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/cancel-use", tag = "spending", request_body = CancelUseRequest,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = CouponView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not_used")))]
pub async fn cancel_use(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<CancelUseRequest>,
) -> Result<Json<CouponView>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    check_order_id(&body.order_id)?;
    let coupon = own_coupon(&state, &user, id).await?;
    if !coupon.can_cancel_use(&body.order_id) || !state.store.cancel_use(id, &body.order_id).await?
    {
        return Err(ApiError::conflict(
            "not_used",
            "this coupon is not used by that order",
        ));
    }
    let coupon = own_coupon(&state, &user, id).await?;
    state.notifier.coupon_event(
        kinds::USE_CANCELLED,
        &coupon,
        json!({"coupon_id": id, "order_id": body.order_id}),
        format!(
            "↩️ Coupon {id}: the use on order {} was cancelled.",
            body.order_id
        ),
    );
    Ok(Json(CouponView::new(&coupon, state.clock.now())))
}
