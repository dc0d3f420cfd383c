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
use crate::auth::{Caller, ShopCaller, WritingUser, admin_in_record};
use crate::domain::account::Role;
use crate::domain::coupon::{OrderRef, UseRejection, UseRequest};
use crate::domain::ids::CouponId;
use crate::domain::timestamp::Timestamp;
use crate::spending::reservations::{self, Actor, ReserveRequest};
use crate::spending::{self, SpendError, Spent};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(use_coupon))
        .routes(routes!(cancel_use))
        .routes(routes!(preview))
        .routes(routes!(reserve))
        .routes(routes!(confirm))
        .routes(routes!(release))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReserveResponse {
    pub coupon: CouponView,
    pub discount_amount: i64,
    pub payable_amount: i64,
    /// The hold ends here unless confirmed or released first.
    pub expires_at: Timestamp,
}

/// The actor a caller is on a reservation: the owner, or the shop (a
/// service key; an admin, checked in the record, where `admin_too`).
async fn actor(state: &AppState, caller: Caller, admin_too: bool) -> Result<Actor, ApiError> {
    match caller {
        Caller::Service(_) => Ok(Actor::Shop),
        Caller::User(user) if admin_too && user.role == Role::Admin => {
            admin_in_record(state, user).await?;
            Ok(Actor::Shop)
        }
        Caller::User(user) => {
            state.limits.check_write(user.id)?;
            Ok(Actor::Owner(user.id))
        }
    }
}

/// Hold a coupon for an order until it is paid (its owner, or the shop's
/// back end with a service key). The same `order_id` again returns the
/// same answer.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/reserve", tag = "spending", request_body = ReserveRequest,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = ReserveResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "reserved, reservation_expired, already_used, expired, not_yet_valid or below_min_order"),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ReserveRequest>,
) -> Result<Json<ReserveResponse>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let actor = actor(&state, caller, false).await?;
    let held = reservations::reserve(&state, actor, id, &body).await?;
    let r = held.reservation;
    Ok(Json(ReserveResponse {
        coupon: CouponView::new(&held.coupon, state.clock.now()),
        discount_amount: r.discount_amount,
        payable_amount: r.order_amount - r.discount_amount,
        expires_at: r.expires_at,
    }))
}

/// The order was paid: the reserved coupon is used (a shop action: a
/// service key or an admin). After the hold ran out: `409
/// reservation_expired`, and nothing changes.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/confirm", tag = "spending", request_body = OrderRef,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = CouponView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: not an admin or a service key"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not_reserved or reservation_expired")))]
pub async fn confirm(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(id): Path<String>,
    Json(body): Json<OrderRef>,
) -> Result<Json<CouponView>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let coupon = reservations::confirm(&state, id, &body.order_id).await?;
    Ok(Json(CouponView::new(&coupon, state.clock.now())))
}

/// Give a reserved coupon back (its owner, a service key or an admin).
#[utoipa::path(post, path = "/api/v1/coupons/{id}/release", tag = "spending", request_body = OrderRef,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = CouponView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not_reserved"),
        (status = 429, body = ErrorBody, description = "rate_limited")))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<OrderRef>,
) -> Result<Json<CouponView>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let actor = actor(&state, caller, true).await?;
    let coupon = reservations::release(&state, actor, id, &body.order_id).await?;
    Ok(Json(CouponView::new(&coupon, state.clock.now())))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UseResponse {
    pub coupon: CouponView,
    pub discount_amount: i64,
    pub payable_amount: i64,
}

pub(super) fn use_rejection(r: UseRejection) -> ApiError {
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
        UseRejection::ReservationExpired => ApiError::conflict(
            "reservation_expired",
            "the reservation for this order ran out; the coupon was given back",
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
/// order system with a service key; a shopper could otherwise spend one
/// coupon on many orders);
/// the coupon is available again if still valid.
#[utoipa::path(post, path = "/api/v1/coupons/{id}/cancel-use", tag = "spending", request_body = OrderRef,
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = CouponView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: not an admin or a service key"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not_used")))]
pub async fn cancel_use(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(id): Path<String>,
    Json(body): Json<OrderRef>,
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
            SpendError::NotReserved => {
                ApiError::conflict("not_reserved", "this coupon is not reserved for that order")
            }
            e @ SpendError::SaleOrder => ApiError::conflict("sale_order", e.to_string()),
            SpendError::Store(e) => e.into(),
        }
    }
}
