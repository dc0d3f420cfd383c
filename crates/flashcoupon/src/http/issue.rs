//! The hot path: `POST /api/v1/campaigns/{id}/issue`, and the caller's own
//! view of a campaign.

use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::views::CouponView;
use super::{ApiError, ErrorBody, IdempotencyKey, Json, parse_path_id};
use crate::admission::Rejection;
use crate::auth::AuthUser;
use crate::claim_stats::Outcome;
use crate::domain::ids::CampaignId;
use crate::issuing::claim::{ClaimError, ClaimOutcome, claim_coupon};
use crate::state::AppState;
use crate::store::CouponFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/campaigns/{id}/issue", post(issue))
        .route("/api/v1/campaigns/{id}/me", get(my_campaign))
}

fn rejection_error(r: Rejection) -> ApiError {
    match r {
        Rejection::SoldOut => ApiError::conflict("sold_out", "no coupons left"),
        Rejection::LimitReached => ApiError::conflict(
            "limit_reached",
            "you already hold as many as one person may",
        ),
        Rejection::NotOpen => ApiError::conflict("not_open", "issuing has not started yet"),
        Rejection::Ended => ApiError::conflict("ended", "issuing has ended"),
        Rejection::Paused => ApiError::conflict("paused", "issuing is paused"),
    }
}

fn outcome_label(result: &Result<ClaimOutcome, ApiError>) -> &'static str {
    match result {
        Ok(ClaimOutcome::Issued(_)) => "issued",
        Ok(ClaimOutcome::Replayed(_)) => "replayed",
        Ok(ClaimOutcome::Rejected(Rejection::SoldOut)) => "sold_out",
        Ok(ClaimOutcome::Rejected(Rejection::LimitReached)) => "limit_reached",
        Ok(ClaimOutcome::Rejected(Rejection::NotOpen)) => "not_open",
        Ok(ClaimOutcome::Rejected(Rejection::Ended)) => "ended",
        Ok(ClaimOutcome::Rejected(Rejection::Paused)) => "paused",
        Err(ApiError::NotFound) => "not_found",
        Err(ApiError::RateLimited { .. }) => "rate_limited",
        Err(ApiError::Unavailable(_)) => "unavailable",
        Err(_) => "error",
    }
}

/// Claim one coupon, first come first served.
///
/// Answers 201 only once the coupon is durable. The same `Idempotency-Key`
/// from the same user returns the first answer again and never a second coupon.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/issue", tag = "issuing",
    params(("id" = String, Path, description = "campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1..128 printable characters")),
    security(("bearer" = [])),
    responses((status = 201, body = CouponView, description = "issued and durable"),
        (status = 404, body = ErrorBody, description = "not_found"),
        (status = 409, body = ErrorBody, description = "sold_out, limit_reached, not_open, ended or paused"),
        (status = 429, body = ErrorBody, description = "rate_limited"),
        (status = 503, body = ErrorBody, description = "unavailable: nothing was issued, retry")))]
pub async fn issue(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<(StatusCode, Json<CouponView>), ApiError> {
    let started = Instant::now();
    let result = async {
        let campaign: CampaignId = parse_path_id(&id)?;
        state.limits.check_claim(user.id)?;
        claim_coupon(&state, campaign, user.id, key.as_deref())
            .await
            .map_err(|e| match e {
                ClaimError::NoSuchCampaign => ApiError::NotFound,
                ClaimError::Unavailable(why) => ApiError::Unavailable(why),
                ClaimError::Store(e) => e.into(),
            })
    }
    .await;
    let took = started.elapsed();
    let label = outcome_label(&result);
    state.metrics.issue_latency.observe(took.as_secs_f64());
    state
        .metrics
        .issue_outcomes
        .with_label_values(&[label])
        .inc();
    let now = state.clock.now();
    if let Ok(campaign) = id.parse::<CampaignId>() {
        // Only campaigns that exist (the claim looked them up) get a
        // dashboard entry, so made-up ids cannot grow the table.
        if let Some(outcome) = Outcome::from_label(label)
            && state.catalog.contains(campaign)
        {
            state.claim_stats.record(campaign, outcome, took, now);
        }
        tell_failure(&state, user, campaign, &result);
    }
    match result? {
        ClaimOutcome::Issued(c) | ClaimOutcome::Replayed(c) => {
            Ok((StatusCode::CREATED, Json(CouponView::new(&c, now))))
        }
        ClaimOutcome::Rejected(r) => Err(rejection_error(r)),
    }
}

/// A claim refused by the campaign, or one that could not be decided, is
/// also pushed to the user's sockets and inbox (`coupon.claim_failed`).
/// Rate limits and unknown campaigns are not: they describe the request.
fn tell_failure(
    state: &AppState,
    user: AuthUser,
    campaign: CampaignId,
    result: &Result<ClaimOutcome, ApiError>,
) {
    let rejected;
    let error = match result {
        Ok(ClaimOutcome::Rejected(r)) => {
            rejected = rejection_error(*r);
            &rejected
        }
        Err(e @ ApiError::Unavailable(_)) => e,
        _ => return,
    };
    state
        .notifier
        .claim_failed(user.id, campaign, error.code(), &error.to_string());
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
