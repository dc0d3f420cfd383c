//! Campaigns: admins create and patch, anyone reads.
//!
//! Writes change the record and the gate together, under `campaign_writes`,
//! ordered so the gate never admits a seq the record would refuse: stock
//! grows in the record first, and shrinks in the gate first.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::Page;
use super::views::CampaignView;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::AdminUser;
use crate::domain::campaign::Campaign;
use crate::domain::campaign::{CampaignPatch, NewCampaign};
use crate::domain::ids::CampaignId;
use crate::events::Event;
use crate::issuing::{drop_of, terms_of};
use crate::state::AppState;
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/campaigns", get(list).post(create))
        .route("/api/v1/campaigns/{id}", get(show).patch(patch))
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
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub before: Option<String>,
}

/// Create a campaign (admin).
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = NewCampaign,
    security(("bearer" = [])),
    responses((status = 201, body = CampaignView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewCampaign>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    let now = state.clock.now();
    let campaign = body.parse(CampaignId::generate(), now)?;
    // Spawned, so a client hanging up cannot cancel it between the record and the gate.
    let view = detached(state.clone(), move |state| async move {
        let _writes = state.campaign_writes.lock().await;
        state.store.insert_campaign(&campaign).await?;
        // If this fails (Redis unreachable) the campaign is in the record
        // without a gate; the first claim or read rebuilds it from the record.
        state
            .gate
            .open(drop_of(campaign.id), &terms_of(&campaign))
            .await?;
        state.catalog.insert(campaign.clone());
        view(&state, &campaign).await
    })
    .await?;
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
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = [])),
    responses((status = 200, body = CampaignView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "quantity_below_issued")))]
pub async fn patch(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<CampaignPatch>,
) -> Result<Json<CampaignView>, ApiError> {
    let id: CampaignId = parse_path_id(&id)?;
    // Spawned, so a client hanging up cannot leave the gate and the record
    // half-changed (e.g. the gate's stock shrunk but the record's not).
    detached(state, move |state| apply_patch(state, id, body)).await
}

/// Run `work` on its own task and wait for it: dropping the request future
/// (the client went away) no longer cancels it half-way.
async fn detached<T, F, Fut>(state: AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(AppState) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
{
    tokio::spawn(work(state))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("campaign write task failed: {e}")))?
}

async fn apply_patch(
    state: AppState,
    id: CampaignId,
    body: CampaignPatch,
) -> Result<Json<CampaignView>, ApiError> {
    let _writes = state.campaign_writes.lock().await;
    let campaign = state
        .store
        .get_campaign(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let stock = state.gate.stock(drop_of(id)).await?;
    let new_total = body.validate(&campaign)?;
    let below_issued = |highest: u32| {
        ApiError::conflict(
            "quantity_below_issued",
            format!(
                "total_quantity cannot go below the {highest} coupons already issued or being issued"
            ),
        )
    };
    // Shrinking: close the gate first, so no claim takes a seq above the new total.
    let shrunk_from = match new_total {
        Some(total) if total < stock.total => Some(
            state
                .gate
                .set_total(drop_of(id), total)
                .await?
                .map_err(|e| below_issued(e.highest_seq))?,
        ),
        _ => None,
    };
    if let Err(err) = state
        .store
        .update_campaign(id, body.paused, body.issue_ends_at, new_total)
        .await
    {
        if let Some(old) = shrunk_from {
            let _ = state.gate.set_total(drop_of(id), old).await;
        }
        return Err(match err {
            StoreError::Constraint(_) => below_issued(stock.issued),
            other => other.into(),
        });
    }
    // Growing: the record allows it now, so the gate may hand out more.
    if let Some(total) = new_total
        && shrunk_from.is_none()
    {
        state
            .gate
            .set_total(drop_of(id), total)
            .await?
            .map_err(|e| below_issued(e.highest_seq))?;
    }
    if let Some(paused) = body.paused {
        state.gate.set_paused(drop_of(id), paused).await?;
    }
    if let Some(ends) = body.issue_ends_at {
        state.gate.set_ends_at(drop_of(id), ends).await?;
    }
    let campaign = state
        .store
        .get_campaign(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let view = view(&state, &campaign).await?;
    state.events.publish(Event::new(
        "campaign.updated",
        state.clock.now(),
        None,
        Some(id),
        serde_json::json!({"paused": view.paused, "total_quantity": view.total_quantity,
            "remaining_quantity": view.remaining_quantity}),
    ));
    Ok(Json(view))
}
