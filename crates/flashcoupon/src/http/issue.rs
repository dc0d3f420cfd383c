//! The hot path: `POST /api/v1/campaigns/{id}/issue`, and the caller's own
//! view of a campaign.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::CouponView;
use super::{ApiError, ErrorBody, IdempotencyKey, Json, parse_path_id};
use crate::auth::AuthUser;
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;
use crate::issuing::claim::{ClaimError, ClaimOutcome, ClaimResult, Door, claim, refusal};
use crate::state::AppState;
use crate::store::CouponFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue))
        .routes(routes!(my_campaign))
}

/// How a claim's answer reads over HTTP (also a code redemption's).
pub(super) fn answer(
    result: ClaimResult,
    now: Timestamp,
) -> Result<(StatusCode, Json<CouponView>), ApiError> {
    match result {
        Ok(ClaimOutcome::Issued(c) | ClaimOutcome::Replayed(c)) => {
            Ok((StatusCode::CREATED, Json(CouponView::new(&c, now))))
        }
        Ok(ClaimOutcome::Rejected(r)) => {
            let (code, message) = refusal(r);
            Err(ApiError::conflict(code, message))
        }
        Err(ClaimError::NoSuchCampaign) => Err(ApiError::NotFound),
        Err(ClaimError::NotClaimable(why)) => Err(ApiError::conflict("not_claimable", why)),
        Err(ClaimError::RateLimited(wait)) => Err(wait.into()),
        Err(ClaimError::Unavailable(why)) => Err(ApiError::Unavailable(why)),
        Err(ClaimError::Store(e)) => Err(e.into()),
    }
}

/// Claim one coupon, first come first served.
///
/// Answers 201 only once the coupon is durable. The same `Idempotency-Key`
/// from the same user returns the first answer again and never a second coupon.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/issue", tag = "issuing",
    params(("id" = String, Path, description = "campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1..128 printable ASCII characters",
            // HTTP drops the spaces and tabs around a header value before
            // the server reads it, so the pattern allows them there.
            pattern = r"^[ \t]*[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?[ \t]*$")),
    security(("bearer" = [])),
    responses((status = 201, body = CouponView, description = "issued and durable"),
        (status = 404, body = ErrorBody, description = "not_found"),
        (status = 409, body = ErrorBody, description = "sold_out, limit_reached, not_open, ended or paused; not_claimable (issued by code or by a trigger)"),
        (status = 429, body = ErrorBody, description = "rate_limited"),
        (status = 503, body = ErrorBody, description = "unavailable: nothing was issued, retry")))]
pub async fn issue(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<(StatusCode, Json<CouponView>), ApiError> {
    let campaign: CampaignId = parse_path_id(&id)?;
    let result = claim(&state, campaign, user.id, key.as_deref(), Door::Button).await;
    answer(result, state.clock.now())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MyCampaign {
    /// Coupons of this campaign the caller holds.
    pub issued: u32,
    /// The per-user limit.
    pub limit: u32,
    pub coupons: Vec<CouponView>,
}

/// What the caller holds of one campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/me", tag = "issuing",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 200, body = MyCampaign), (status = 404, body = ErrorBody)))]
pub async fn my_campaign(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<MyCampaign>, ApiError> {
    let id: CampaignId = parse_path_id(&id)?;
    let campaign = state
        .catalog
        .get(&*state.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.clock.now();
    let filter = CouponFilter {
        campaign: Some(id),
        status: None,
    };
    let coupons = state
        .store
        .list_coupons(user.id, filter, now, campaign.per_user_limit, None)
        .await?;
    Ok(Json(MyCampaign {
        issued: coupons.len() as u32,
        limit: campaign.per_user_limit,
        coupons: coupons.iter().map(|c| CouponView::new(c, now)).collect(),
    }))
}
