//! Campaigns: admins create and patch (`issuing::campaigns` keeps the record
//! and the gate in step), anyone reads.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::views::CampaignView;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::AdminUser;
use crate::domain::campaign::Campaign;
use crate::domain::campaign::{CampaignPatch, NewCampaign};
use crate::domain::ids::CampaignId;
use crate::issuing::campaigns::{self, CampaignWriteError};
use crate::issuing::drop_of;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, patch))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<CampaignId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub before: Option<String>,
}

/// Create a campaign (admin).
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = NewCampaign,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = CampaignView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "code_taken: a shared code in use by a campaign that has not ended")))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewCampaign>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    let campaign = body.parse(CampaignId::generate(), state.clock.now())?;
    let (campaign, stock) = campaigns::create(&state, campaign).await?;
    let view = CampaignView::new(&campaign, &stock, state.clock.now());
    Ok((StatusCode::CREATED, Json(view)))
}

/// List campaigns, newest first.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(ListParams),
    responses((status = 200, body = CampaignList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<CampaignList>, ApiError> {
    let page = Page::<CampaignId>::parse(params.limit, params.before, 50, 200, "campaign id")?;
    let campaigns = state.store.list_campaigns(page.limit, page.before).await?;
    let next = page.next(&campaigns, |c| c.id);
    let mut views = Vec::with_capacity(campaigns.len());
    for c in &campaigns {
        views.push(view(&state, c).await?);
    }
    Ok(Json(CampaignList {
        campaigns: views,
        next,
    }))
}

/// One campaign, with live stock.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let id: CampaignId = parse_path_id(&id)?;
    let campaign = state
        .store
        .get_campaign(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(view(&state, &campaign).await?))
}

/// The stored campaign with its live numbers from the gate.
async fn view(state: &AppState, campaign: &Campaign) -> Result<CampaignView, ApiError> {
    let stock = state.gate.stock(drop_of(campaign.id)).await?;
    Ok(CampaignView::new(campaign, &stock, state.clock.now()))
}

/// Pause or resume, move the end of issuing, or change the stock (admin).
#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", request_body = CampaignPatch,
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = CampaignView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "quantity_below_issued")))]
pub async fn patch(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<CampaignPatch>,
) -> Result<Json<CampaignView>, ApiError> {
    let id: CampaignId = parse_path_id(&id)?;
    let (campaign, stock) = campaigns::patch(&state, id, body).await?;
    Ok(Json(CampaignView::new(
        &campaign,
        &stock,
        state.clock.now(),
    )))
}

impl From<CampaignWriteError> for ApiError {
    fn from(e: CampaignWriteError) -> Self {
        match e {
            CampaignWriteError::NotFound => ApiError::NotFound,
            CampaignWriteError::Invalid(e) => e.into(),
            e @ (CampaignWriteError::BelowIssued(_) | CampaignWriteError::BelowCodes) => {
                ApiError::conflict("quantity_below_issued", e.to_string())
            }
            e @ CampaignWriteError::CodeTaken(_) => {
                ApiError::conflict("code_taken", format!("code: {e}"))
            }
            CampaignWriteError::Gate(e) => e.into(),
            CampaignWriteError::Store(e) => e.into(),
            CampaignWriteError::Task(e) => {
                ApiError::Internal(anyhow::anyhow!("campaign write task failed: {e}"))
            }
        }
    }
}
