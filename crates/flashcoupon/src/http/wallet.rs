//! Wallets: the caller's coupons, or a user's for themself or an admin.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::views::{CouponList, CouponView};
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::AuthUser;
use crate::domain::account::Role;
use crate::domain::coupon::CouponStatus;
use crate::domain::ids::{CouponId, UserId};
use crate::state::AppState;
use crate::store::CouponFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_coupons))
        .routes(routes!(user_coupons))
        .routes(routes!(show))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WalletParams {
    /// Only coupons with this status.
    pub status: Option<CouponStatus>,
    /// Page size, 1..=500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub before: Option<String>,
}

async fn wallet(
    state: &AppState,
    user: UserId,
    params: WalletParams,
) -> Result<CouponList, ApiError> {
    let page = Page::<CouponId>::parse(params.limit, params.before, 100, 500, "coupon id")?;
    let now = state.clock.now();
    let filter = CouponFilter {
        campaign: None,
        status: params.status,
    };
    let coupons = state
        .store
        .list_coupons(user, filter, now, page.limit, page.before)
        .await?;
    Ok(CouponList {
        next: page.next(&coupons, |c| c.id),
        coupons: coupons.iter().map(|c| CouponView::new(c, now)).collect(),
    })
}

/// The caller's coupons, newest first.
#[utoipa::path(get, path = "/api/v1/me/coupons", tag = "wallet", params(WalletParams), security(("bearer" = [])),
    responses((status = 200, body = CouponList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_coupons(
    State(state): State<AppState>,
    user: AuthUser,
    Query(params): Query<WalletParams>,
) -> Result<Json<CouponList>, ApiError> {
    Ok(Json(wallet(&state, user.id, params).await?))
}

/// A user's coupons: the user themself, or an admin. Anyone else gets 404.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/coupons", tag = "wallet",
    params(("user_id" = String, Path, description = "user id"), WalletParams), security(("bearer" = [])),
    responses((status = 200, body = CouponList), (status = 404, body = ErrorBody)))]
pub async fn user_coupons(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<String>,
    Query(params): Query<WalletParams>,
) -> Result<Json<CouponList>, ApiError> {
    let user: UserId = parse_path_id(&user_id)?;
    if caller.id != user && caller.role != Role::Admin {
        return Err(ApiError::NotFound);
    }
    if caller.id != user && !state.store.user_exists(user).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Json(wallet(&state, user, params).await?))
}

/// One of the caller's coupons (an admin may read any).
#[utoipa::path(get, path = "/api/v1/coupons/{id}", tag = "wallet",
    params(("id" = String, Path, description = "coupon id")), security(("bearer" = [])),
    responses((status = 200, body = CouponView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CouponView>, ApiError> {
    let id: CouponId = parse_path_id(&id)?;
    let coupon = state
        .store
        .get_coupon(id)
        .await?
        .filter(|c| c.user_id == caller.id || caller.role == Role::Admin)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(CouponView::new(&coupon, state.clock.now())))
}
