//! What the admin console's campaign dashboard reads: live claim statistics
//! and the winners in `seq` order, as JSON pages or one CSV download.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::views::{CampaignView, CouponView};
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::AdminUser;
use crate::claim_stats::{CampaignStats, WINDOW_SECS};
use crate::domain::campaign::Campaign;
use crate::domain::coupon::{Coupon, CouponStatus};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::issuing::drop_of;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(winners))
        .routes(routes!(winners_csv))
}

/// The campaign a path names: 404 if it names none.
pub(super) async fn campaign(state: &AppState, id: &str) -> Result<Campaign, ApiError> {
    let id: CampaignId = parse_path_id(id)?;
    state
        .store
        .get_campaign(id)
        .await?
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// How many seconds of per-second counts, 1..=600 (default 300).
    #[param(minimum = 1, maximum = 600)]
    pub seconds: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardView {
    /// The campaign with its live stock (issued vs remaining, for all instances).
    pub campaign: CampaignView,
    /// Claims answered by this instance: per second, totals, latency.
    pub claims: CampaignStats,
    /// `instance`: in scale-out mode each instance counts the claims it answered.
    pub scope: &'static str,
    /// Checkout, from the record (all instances): coupons held for an
    /// order now, and coupons used.
    pub checkout: CheckoutCounts,
    /// Code guessing on this instance since it started (all campaigns: an
    /// unknown code belongs to none).
    pub code_guesses: CodeGuesses,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CodeGuesses {
    /// Redemptions of unknown or used codes.
    pub failed: u64,
    /// Redemptions refused for too many failures (429).
    pub refused: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutCounts {
    pub reserved: i64,
    pub used: i64,
}

/// A campaign's live dashboard numbers (admin).
#[utoipa::path(get, path = "/api/v1/admin/campaigns/{id}/stats", tag = "admin",
    params(("id" = String, Path, description = "campaign id"), StatsParams), security(("bearer" = ["admin"])),
    responses((status = 200, body = DashboardView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(params): Query<StatsParams>,
) -> Result<Json<DashboardView>, ApiError> {
    let seconds = params.seconds.unwrap_or(300);
    if !(1..=WINDOW_SECS as u32).contains(&seconds) {
        return Err(crate::domain::InvalidInput::new(
            "seconds",
            format!("must be between 1 and {WINDOW_SECS}"),
        )
        .into());
    }
    let campaign = campaign(&state, &id).await?;
    let stock = state.gate.stock(drop_of(campaign.id)).await?;
    let (reserved, used) = state.store.checkout_counts(campaign.id).await?;
    let now = state.clock.now();
    Ok(Json(DashboardView {
        campaign: CampaignView::new(&campaign, &stock, now),
        claims: state.claim_stats.read(campaign.id, seconds as usize, now),
        scope: "instance",
        checkout: CheckoutCounts { reserved, used },
        code_guesses: {
            let count = |result| {
                state
                    .metrics
                    .code_redemptions
                    .with_label_values(&[result])
                    .get()
            };
            CodeGuesses {
                failed: count("not_found") + count("code_used"),
                refused: count("rate_limited"),
            }
        },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WinnerParams {
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page: winners after this `seq`
    /// (0 to 1,000,000,000, the largest stock).
    #[param(pattern = r"^([0-9]{1,9}|1000000000)$")]
    pub after: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WinnerView {
    pub seq: u32,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    pub email: String,
    pub issued_at: Timestamp,
    pub status: CouponStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl WinnerView {
    fn new(coupon: &Coupon, email: String, now: Timestamp) -> Self {
        let c = CouponView::new(coupon, now);
        Self {
            seq: c.seq,
            coupon_id: c.id,
            user_id: c.user_id,
            email,
            issued_at: c.issued_at,
            status: c.status,
            used_at: c.used_at,
            order_id: c.order_id,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WinnerList {
    pub winners: Vec<WinnerView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
}

/// The campaign's coupons in `seq` order, with their owners (admin).
///
/// While a drop runs, a coupon can become durable a moment after one with a
/// higher `seq` (they were in different group commits), so a client that
/// follows the drop live should page on from the last `seq` it holds without
/// a gap, not from the highest; once claims have settled the list is dense.
#[utoipa::path(get, path = "/api/v1/admin/campaigns/{id}/winners", tag = "admin",
    params(("id" = String, Path, description = "campaign id"), WinnerParams), security(("bearer" = ["admin"])),
    responses((status = 200, body = WinnerList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn winners(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(params): Query<WinnerParams>,
) -> Result<Json<WinnerList>, ApiError> {
    let page = Page::<u32>::parse_cursor(params.limit, params.after, "after", 100, 1000, "seq")?;
    let campaign = campaign(&state, &id).await?;
    let rows = state
        .store
        .winners(campaign.id, page.before.unwrap_or(0), page.limit)
        .await?;
    let now = state.clock.now();
    let next = page.next(&rows, |(c, _)| c.seq);
    Ok(Json(WinnerList {
        winners: rows
            .into_iter()
            .map(|(c, email)| WinnerView::new(&c, email, now))
            .collect(),
        next,
    }))
}

/// Rows read from the record per CSV chunk.
const CSV_PAGE: u32 = 1000;

/// Every winner as CSV (admin): `seq,coupon_id,user_id,email,issued_at,status,used_at,order_id`.
#[utoipa::path(get, path = "/api/v1/admin/campaigns/{id}/winners.csv", tag = "admin",
    params(("id" = String, Path, description = "campaign id")), security(("bearer" = ["admin"])),
    responses((status = 200, content_type = "text/csv", description = "one line per coupon, in seq order"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn winners_csv(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let campaign = campaign(&state, &id).await?;
    let filename = format!("winners-{}.csv", campaign.id);
    let head = "seq,coupon_id,user_id,email,issued_at,status,used_at,order_id";
    super::csv::streamed(filename, head, 0, move |after| {
        let state = state.clone();
        async move {
            let rows = state.store.winners(campaign.id, after, CSV_PAGE).await?;
            let mut lines = String::new();
            let next = csv_page(&mut lines, rows, state.clock.now());
            Ok((lines, next))
        }
    })
    .await
}

/// Append a page of rows as CSV lines; the `seq` to read after, if the page was full.
fn csv_page(out: &mut String, rows: Vec<(Coupon, String)>, now: Timestamp) -> Option<u32> {
    let next = (rows.len() == CSV_PAGE as usize)
        .then(|| rows.last().map(|(c, _)| c.seq))
        .flatten();
    for (c, email) in rows {
        out.push_str(&csv_line(&WinnerView::new(&c, email, now)));
    }
    next
}

fn csv_line(w: &WinnerView) -> String {
    let status = serde_json::to_value(w.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let fields = [
        w.seq.to_string(),
        w.coupon_id.to_string(),
        w.user_id.to_string(),
        w.email.clone(),
        w.issued_at.to_string(),
        status,
        w.used_at.map(|t| t.to_string()).unwrap_or_default(),
        w.order_id.clone().unwrap_or_default(),
    ];
    let mut line = fields.map(|f| super::csv::field(&f)).join(",");
    line.push('\n');
    line
}
