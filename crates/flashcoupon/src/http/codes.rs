//! Codes: redeem one (shoppers), start a code job, watch it, and export a
//! campaign's codes as CSV (admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::csv;
use super::dashboard::campaign;
use super::extract::ClientAddr;
use super::issue::answer;
use super::views::CouponView;
use super::{ApiError, ErrorBody, IdempotencyKey, Json, parse_path_id};
use crate::auth::{AdminUser, AuthUser};
use crate::domain::ids::{CampaignId, JobId};
use crate::domain::timestamp::Timestamp;
use crate::issuing::codes::{self, JobError, RedeemError};
use crate::state::AppState;
use crate::store::{CodeLine, Job};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(redeem))
        .routes(routes!(start_job))
        .routes(routes!(job))
        .routes(routes!(campaign_jobs))
        .routes(routes!(export))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    /// A unique or shared code, any letter case: 1 to 64 of `A-Z 0-9 -`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^\s*[A-Za-z0-9-]{1,64}\s*$"
    )]
    pub code: String,
}

/// Redeem a code: claims one coupon of its campaign, with every promise of
/// the claim button (stock, per-user limit, window, pause, durability).
///
/// A unique code is redeemed once; a shared code claims from the
/// campaign's stock, first come first served. Every code that does not
/// exist gets the same `404`. Failed redemptions (unknown or used codes)
/// are limited per user and per address: then `429`, before any lookup.
#[utoipa::path(post, path = "/api/v1/codes/redeem", tag = "codes", request_body = RedeemBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1..128 printable ASCII characters",
        pattern = r"^[ \t]*[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?[ \t]*$")),
    security(("bearer" = [])),
    responses((status = 201, body = CouponView, description = "issued and durable (or the replay of the same Idempotency-Key)"),
        (status = 400, body = ErrorBody, description = "invalid_input: not the shape of a code"),
        (status = 404, body = ErrorBody, description = "not_found: no such code"),
        (status = 409, body = ErrorBody, description = "code_used, sold_out, limit_reached, not_open, ended or paused; idempotency_key_reused (the key answered another code)"),
        (status = 429, body = ErrorBody, description = "rate_limited"),
        (status = 503, body = ErrorBody, description = "unavailable: nothing was issued (or this same request is still being decided), retry")))]
pub async fn redeem(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(client): ClientAddr,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<RedeemBody>,
) -> Result<(StatusCode, Json<CouponView>), ApiError> {
    let now = || state.clock.now();
    match codes::redeem(&state, user.id, client, &body.code, key.as_deref()).await {
        Ok(outcome) => answer(Ok(outcome), now()),
        Err(RedeemError::Invalid(e)) => Err(e.into()),
        Err(RedeemError::NotFound) => Err(ApiError::NotFoundWhy("no such code".into())),
        Err(e @ RedeemError::CodeUsed(_)) => Err(ApiError::conflict("code_used", e.to_string())),
        Err(e @ RedeemError::KeyReused) => {
            Err(ApiError::conflict("idempotency_key_reused", e.to_string()))
        }
        Err(e @ RedeemError::InFlight) => Err(ApiError::Unavailable(e.to_string())),
        Err(RedeemError::RateLimited(wait)) => Err(wait.into()),
        Err(RedeemError::Claim(e)) => answer(Err(e), now()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCodeJob {
    /// How many codes, 1 to 10,000,000; never more, with the campaign's
    /// codes so far, than its `total_quantity`.
    #[serde(deserialize_with = "crate::domain::whole::number")]
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub count: i64,
    /// `#` is one random symbol of `23456789ABCDEFGHJKLMNPQRSTUVWXYZ` (5
    /// bits); other characters (`A-Z 0-9 -`) are kept. At least ten `#`.
    /// Default: twelve `#`.
    #[schema(
        min_length = 10,
        max_length = 64,
        pattern = r"^\s*([A-Za-z0-9-]*#){10}[A-Za-z0-9#-]*\s*$"
    )]
    pub pattern: Option<String>,
}

/// A background job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: JobId,
    /// `codes`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// Codes made so far.
    pub done: i64,
    pub total: i64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub campaign_id: CampaignId,
    pub pattern: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status.as_str().to_owned(),
            done: j.done,
            total: j.total,
            error: j.error,
            campaign_id: j.campaign_id,
            pattern: j.pattern,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobAccepted {
    pub job: JobView,
}

/// Generate unique codes for a `codes` campaign (admin), in the background.
///
/// Follow it at `GET /api/v1/admin/jobs/{id}`. It survives a restart (another
/// instance, or this one once back, takes it over) or says `failed`.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/codes", tag = "codes", request_body = NewCodeJob,
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = ["admin"])),
    responses((status = 202, body = JobAccepted, description = "the job started"),
        (status = 400, body = ErrorBody, description = "invalid_input: count or pattern"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "wrong_issuance: not a codes campaign")))]
pub async fn start_job(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<NewCodeJob>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let campaign: CampaignId = parse_path_id(&id)?;
    let job = codes::start_job(&state, campaign, body.count, body.pattern.as_deref())
        .await
        .map_err(|e| match e {
            JobError::NotFound => ApiError::NotFound,
            JobError::Invalid(e) => e.into(),
            e @ JobError::NotCodes(_) => ApiError::conflict("wrong_issuance", e.to_string()),
            JobError::Store(e) => e.into(),
        })?;
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job: job.into() })))
}

/// A background job's progress (admin).
#[utoipa::path(get, path = "/api/v1/admin/jobs/{id}", tag = "codes",
    params(("id" = String, Path, description = "job id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn job(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id: JobId = parse_path_id(&id)?;
    let job = state.store.get_job(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(job.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Newest first, at most 100.
    pub jobs: Vec<JobView>,
}

/// A campaign's code jobs, newest first (admin): what the console shows
/// after a reload, and how many codes were asked for so far.
#[utoipa::path(get, path = "/api/v1/admin/campaigns/{id}/jobs", tag = "codes",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = JobList), (status = 404, body = ErrorBody)))]
pub async fn campaign_jobs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<JobList>, ApiError> {
    let campaign = campaign(&state, &id).await?.id;
    let jobs = state.store.campaign_jobs(campaign, 100).await?;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(JobView::from).collect(),
    }))
}

/// Codes read per page of the export: memory stays flat however many.
const EXPORT_PAGE: u32 = 2_000;

/// A campaign's unique codes as CSV (admin), streamed in code order:
/// `code,state,coupon_id,user_id,redeemed_at`, `state` being `unused`,
/// `redeemed` (its coupon is in a wallet) or `used` (spent at checkout).
#[utoipa::path(get, path = "/api/v1/admin/campaigns/{id}/codes.csv", tag = "codes",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = ["admin"])),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let campaign = campaign(&state, &id).await?.id;
    let head = "code,state,coupon_id,user_id,redeemed_at";
    csv::streamed(
        format!("codes-{campaign}.csv"),
        head,
        None,
        move |after: Option<String>| {
            let state = state.clone();
            async move {
                let page = state
                    .store
                    .code_page(campaign, after.as_deref(), EXPORT_PAGE)
                    .await?;
                let next = (page.len() == EXPORT_PAGE as usize)
                    .then(|| page.last().map(|l| Some(l.code.clone())))
                    .flatten();
                let mut lines = String::new();
                for line in &page {
                    csv_line(&mut lines, line);
                }
                Ok((lines, next))
            }
        },
    )
    .await
}

/// One CSV line. Every field is of a known shape (codes are `A-Z 0-9 -`,
/// ids UUIDs), so none needs quoting.
fn csv_line(out: &mut String, line: &CodeLine) {
    use std::fmt::Write;
    match &line.coupon {
        None => {
            let _ = writeln!(out, "{},unused,,,", line.code);
        }
        Some((coupon, user, status, at)) => {
            let state = if status == "used" { "used" } else { "redeemed" };
            let _ = writeln!(out, "{},{state},{coupon},{user},{at}", line.code);
        }
    }
}
