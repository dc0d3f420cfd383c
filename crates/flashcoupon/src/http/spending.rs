//! Spending over HTTP: use a coupon on an order, preview it, cancel a use
//! (the rules are in `crate::spending`). Somebody else's coupon is
//! `404 not_found`, as if it did not exist.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::CouponView;
use super::{ApiError, ErrorBody, Json, parse_path_id};
use crate::auth::{AdminUser, WritingUser};
use crate::domain::coupon::{CancelUseRequest, UseRejection, UseRequest};
use crate::domain::ids::CouponId;
use crate::spending::{self, SpendError, Spent};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(use_coupon))
        .routes(routes!(cancel_use))
        .routes(routes!(preview))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UseResponse {
    pub coupon: CouponView,
    pub discount_amount: i64,
    pub payable_amount: i64,
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
        (status = 409, body = ErrorBody, description = "already_used, expired, not_yet_valid, below_min_order or reserved"),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn use_coupon(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
    Path(id): Path<String>,
    Json(body): Json<UseRequest>,
) -> Result<Json<UseResponse>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let Spent { coupon, spend } = spending::use_coupon(&state, user.id, id, &body).await?;
    Ok(Json(UseResponse {
        coupon: CouponView::new(&coupon, state.clock.now()),
        discount_amount: spend.discount_amount,
        payable_amount: spend.order_amount - spend.discount_amount,
    }))
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
        (status = 409, body = ErrorBody, description = "already_used, expired, not_yet_valid, below_min_order or reserved"),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn preview(
    State(state): State<AppState>,
    WritingUser(user): WritingUser,
    Path(id): Path<String>,
    Json(body): Json<UseRequest>,
) -> Result<Json<PreviewResponse>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let (order_amount, discount_amount) = spending::preview(&state, user.id, id, &body).await?;
    Ok(Json(PreviewResponse {
        discount_amount,
        payable_amount: order_amount - discount_amount,
    }))
}

/// Cancel the use made by `order_id` (a shop action: an admin, or the shop's
/// order system; a shopper could otherwise spend one coupon on many orders);
/// the coupon is available again if still valid.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/cancel-use", tag = "spending", request_body = CancelUseRequest,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = CouponView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: not a shop account"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not_used")))]
pub async fn cancel_use(
    State(state): State<AppState>,
    _shop: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<CancelUseRequest>,
) -> Result<Json<CouponView>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let coupon = spending::cancel_use(&state, id, &body.order_id).await?;
    Ok(Json(CouponView::new(&coupon, state.clock.now())))
}

impl From<SpendError> for ApiError {
    fn from(e: SpendError) -> Self {
        match e {
            SpendError::NotFound => ApiError::NotFound,
            SpendError::Invalid(e) => e.into(),
            SpendError::Rejected(r) => use_rejection(r),
            SpendError::NotUsed => {
                ApiError::conflict("not_used", "this coupon is not used by that order")
            }
            SpendError::Store(e) => e.into(),
        }
    }
}
