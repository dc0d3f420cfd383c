//! The admin's summaries (API.md "Statistics"): a campaign's coupons by
//! status with its curves and the claim answers of every instance, a
//! user's holdings, and an overview of every drop. Campaign summaries and
//! the overview come through [`Recent`] caches: dashboards polling them
//! during a drop cost the record one read per second, not one per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sales::OrderCountsView;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::admission::GateError;
use crate::auth::AdminUser;
use crate::claim_stats::{Outcome, Tally};
use crate::domain::InvalidInput;
use crate::domain::account::Role;
use crate::domain::campaign::{Campaign, CampaignStatus, Validity, campaign_status};
use crate::domain::ids::{CampaignId, SaleId, UserId};
use crate::domain::sale::OrderStatus;
use crate::domain::timestamp::{self, MILLIS_PER_DAY, Timestamp};
use crate::issuing::drop_of;
use crate::state::AppState;
use crate::stats::recent::Recent;
use crate::store::StoreError;
use crate::store::stats::RanOut;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(campaign_summary))
        .routes(routes!(user_summary))
        .routes(routes!(overview))
}

/// The widest window a summary's curves cover.
pub const MAX_WINDOW_MS: i64 = 31 * MILLIS_PER_DAY;

/// How long a computed summary is served as is, and how much longer the
/// previous one may be served while one request computes the next.
const FRESH: Duration = Duration::from_secs(1);
const STALE: Duration = Duration::from_secs(2);

/// Summaries computed recently, shared by every admin polling them.
#[derive(Debug)]
pub struct Summaries {
    campaigns: Recent<(CampaignId, Timestamp, Timestamp), Arc<CampaignSummary>>,
    overview: Recent<(), Arc<Overview>>,
}

impl Default for Summaries {
    fn default() -> Self {
        Self {
            campaigns: Recent::new(FRESH, STALE),
            overview: Recent::new(FRESH, STALE),
        }
    }
}

/// Claim answers by outcome, from every instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimCounts {
    pub issued: u64,
    pub replayed: u64,
    pub sold_out: u64,
    pub limit_reached: u64,
    pub not_open: u64,
    pub ended: u64,
    pub paused: u64,
    pub rate_limited: u64,
    pub unavailable: u64,
}

impl From<Tally> for ClaimCounts {
    fn from(t: Tally) -> Self {
        let at = |o: Outcome| t[o.index()];
        Self {
            issued: at(Outcome::Issued),
            replayed: at(Outcome::Replayed),
            sold_out: at(Outcome::SoldOut),
            limit_reached: at(Outcome::LimitReached),
            not_open: at(Outcome::NotOpen),
            ended: at(Outcome::Ended),
            paused: at(Outcome::Paused),
            rate_limited: at(Outcome::RateLimited),
            unavailable: at(Outcome::Unavailable),
        }
    }
}

/// A count in one minute (`at`: the minute's start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MinuteCount {
    pub at: Timestamp,
    pub count: u64,
}

/// A count in one UTC day (`date`: `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayCount {
    pub date: String,
    pub count: u64,
}

pub(super) fn minutes(curve: Vec<(Timestamp, u64)>) -> Vec<MinuteCount> {
    curve
        .into_iter()
        .map(|(at, count)| MinuteCount { at, count })
        .collect()
}

fn days(curve: Vec<(Timestamp, u64)>) -> Vec<DayCount> {
    curve
        .into_iter()
        .map(|(at, count)| DayCount {
            date: at.to_string()[..10].to_owned(),
            count,
        })
        .collect()
}

/// A campaign summed up: the record's coupons, every instance's claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CampaignSummary {
    pub campaign_id: CampaignId,
    pub total_quantity: u32,
    /// Coupons in the record, whatever their status now.
    pub issued: u64,
    pub available: u64,
    pub reserved: u64,
    pub used: u64,
    pub expired: u64,
    /// `used / issued` (0 when none was issued).
    pub use_rate: f64,
    /// Discounts and order amounts of used coupons.
    pub discount_total: i64,
    pub order_amount_total: i64,
    pub first_issued_at: Option<Timestamp>,
    /// When the coupon with the last seq was issued; absent if it never was.
    pub sold_out_at: Option<Timestamp>,
    /// Claim answers of every instance, at most a few seconds behind.
    pub claims: ClaimCounts,
    /// Minutes of the window with issues, ascending.
    pub issued_per_minute: Vec<MinuteCount>,
    /// UTC days of the window with uses, ascending.
    pub used_per_day: Vec<DayCount>,
    /// When these figures were read.
    pub as_of: Timestamp,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WindowParams {
    /// Start of the curves' window (default: the campaign's issue start).
    #[serde(default, deserialize_with = "timestamp::client_optional")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// End of the window, exclusive (default: 31 days after `from`, the widest).
    #[serde(default, deserialize_with = "timestamp::client_optional")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
}

impl WindowParams {
    /// `[from, to)`: 400 if inverted or wider than [`MAX_WINDOW_MS`].
    pub(super) fn window(
        &self,
        default_from: Timestamp,
    ) -> Result<(Timestamp, Timestamp), ApiError> {
        let from = self.from.unwrap_or(default_from);
        let to = self.to.unwrap_or(from.plus_millis(MAX_WINDOW_MS));
        if to <= from {
            return Err(InvalidInput::new("to", "must be after from").into());
        }
        if to.0 - from.0 > MAX_WINDOW_MS {
            return Err(InvalidInput::new("to", "the window is at most 31 days").into());
        }
        Ok((from, to))
    }
}

/// A campaign's coupons by status, use, curves and the claim answers of
/// every instance (admin).
#[utoipa::path(get, path = "/api/v1/admin/campaigns/{id}/summary", tag = "admin",
    params(("id" = String, Path, description = "campaign id"), WindowParams), security(("bearer" = ["admin"])),
    responses((status = 200, body = CampaignSummary), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn campaign_summary(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(params): Query<WindowParams>,
) -> Result<Json<CampaignSummary>, ApiError> {
    let campaign = super::dashboard::campaign(&state, &id).await?;
    let id = campaign.id;
    let (from, to) = params.window(campaign.issue_starts_at)?;
    let summary = state
        .summaries
        .campaigns
        .get((id, from, to), || {
            let state = state.clone();
            async move { summarize(&state, &campaign, from, to).await }
        })
        .await?;
    Ok(Json(CampaignSummary::clone(&summary)))
}

async fn summarize(
    state: &AppState,
    campaign: &Campaign,
    from: Timestamp,
    to: Timestamp,
) -> Result<Arc<CampaignSummary>, StoreError> {
    let id = campaign.id;
    let now = state.clock.now();
    let store = &state.store;
    let ran_out = ran_out(campaign, now);
    let (figures, claims, issued, used) = tokio::try_join!(
        store.campaign_figures(id, ran_out, now),
        store.claim_counts(Some(id)),
        store.issued_per_minute(id, from, to),
        store.used_per_day(id, from, to),
    )?;
    Ok(Arc::new(CampaignSummary {
        campaign_id: id,
        total_quantity: campaign.total_quantity,
        issued: figures.issued,
        available: figures.available,
        reserved: figures.reserved,
        used: figures.used,
        expired: figures.expired,
        use_rate: if figures.issued == 0 {
            0.0
        } else {
            figures.used as f64 / figures.issued as f64
        },
        discount_total: figures.discount_total,
        order_amount_total: figures.order_amount_total,
        first_issued_at: figures.first_issued_at,
        sold_out_at: figures.sold_out_at,
        claims: claims.get(&id).copied().map(Into::into).unwrap_or_default(),
        issued_per_minute: minutes(issued),
        used_per_day: days(used),
        as_of: now,
    }))
}

/// How far issue times may stray outside the campaign's issue window: each
/// is its instance's clock (a skewed one included) at admission.
const ISSUE_CLOCK_MARGIN_MS: i64 = 3_600_000;

/// Which coupons are past their validity at `now`. For a validity in days,
/// those issued by `now - days`: none while that is before the issue window,
/// all once it is after it (with a margin for instances' clocks), and an
/// exact count in between (only then does the summary read every coupon).
fn ran_out(campaign: &Campaign, now: Timestamp) -> RanOut {
    match campaign.terms.validity {
        Validity::Days(days) => {
            let by = now.plus_millis(-(days as i64) * MILLIS_PER_DAY);
            if by.0 < campaign.issue_starts_at.0 - ISSUE_CLOCK_MARGIN_MS {
                RanOut::None
            } else if by.0
                >= campaign
                    .issue_ends_at
                    .0
                    .saturating_add(ISSUE_CLOCK_MARGIN_MS)
            {
                RanOut::All
            } else {
                RanOut::IssuedBy(by)
            }
        }
        Validity::Window { until, .. } if now >= until => RanOut::All,
        Validity::Window { .. } => RanOut::None,
    }
}

/// A user's coupons by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CouponCountsView {
    pub available: u64,
    pub reserved: u64,
    pub used: u64,
    pub expired: u64,
}

/// A user's points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PointsView {
    pub balance: i64,
    /// Held for orders not paid yet.
    pub held: i64,
}

/// A user summed up: what their wallet, points and orders show.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserStatsSummary {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub coupons: CouponCountsView,
    pub points: PointsView,
    pub orders: OrderCountsView,
}

/// A user's coupons by status, points and orders by status (admin).
#[utoipa::path(get, path = "/api/v1/admin/users/{user_id}/summary", tag = "admin",
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = UserStatsSummary), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn user_summary(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
) -> Result<Json<UserStatsSummary>, ApiError> {
    let user: UserId = parse_path_id(&user_id)?;
    let card = state
        .store
        .user_card(user)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.clock.now();
    let (coupons, points, orders) = tokio::try_join!(
        state.store.user_coupons(user, now),
        state.store.point_balance(user, now),
        state.store.user_orders_by_status(user),
    )?;
    Ok(Json(UserStatsSummary {
        user_id: user,
        email: card.email,
        role: card.role,
        created_at: card.created_at,
        coupons: CouponCountsView {
            available: coupons.available,
            reserved: coupons.reserved,
            used: coupons.used,
            expired: coupons.expired,
        },
        points: PointsView {
            balance: points.balance,
            held: points.held,
        },
        orders: order_counts(&orders),
    }))
}

pub(super) fn order_counts(orders: &HashMap<OrderStatus, u64>) -> OrderCountsView {
    let count = |status| orders.get(&status).copied().unwrap_or(0);
    OrderCountsView {
        pending_payment: count(OrderStatus::PendingPayment),
        paid: count(OrderStatus::Paid),
        expired: count(OrderStatus::Expired),
        cancelled: count(OrderStatus::Cancelled),
        refunded: count(OrderStatus::Refunded),
    }
}

/// How many of the newest campaigns and sales the overview lists.
pub const OVERVIEW_ROWS: u32 = 100;

/// One campaign in the overview.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignRow {
    pub id: CampaignId,
    pub name: String,
    pub status: CampaignStatus,
    pub total_quantity: u32,
    /// Durable in the record (the gate's count).
    pub issued: u32,
    pub remaining: u32,
    pub claims: ClaimCounts,
}

/// One sale in the overview.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SaleRow {
    pub id: SaleId,
    pub name: String,
    pub status: CampaignStatus,
    pub total_quantity: u32,
    /// Units orders hold (pending payment or paid) or are taking now.
    pub held: u32,
    pub remaining: u32,
    pub orders: OrderCountsView,
}

/// Every drop at a glance (the newest [`OVERVIEW_ROWS`] of each kind).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    pub as_of: Timestamp,
    pub campaigns: Vec<CampaignRow>,
    pub sales: Vec<SaleRow>,
    /// Claim answers of every instance on every campaign.
    pub claims: ClaimCounts,
}

#[derive(Debug, thiserror::Error)]
enum OverviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gate(#[from] GateError),
}

impl From<OverviewError> for ApiError {
    fn from(e: OverviewError) -> Self {
        match e {
            OverviewError::Store(e) => e.into(),
            OverviewError::Gate(e) => e.into(),
        }
    }
}

/// Campaigns and sales with their stock, claims and orders (admin).
#[utoipa::path(get, path = "/api/v1/admin/overview", tag = "admin",
    security(("bearer" = ["admin"])),
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn overview(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<Overview>, ApiError> {
    let overview = state
        .summaries
        .overview
        .get((), || {
            let state = state.clone();
            async move { look_over(&state).await }
        })
        .await?;
    Ok(Json(Overview::clone(&overview)))
}

async fn look_over(state: &AppState) -> Result<Arc<Overview>, OverviewError> {
    let now = state.clock.now();
    let (campaigns, mut sales, claims, orders) = tokio::try_join!(
        state.store.list_campaigns(OVERVIEW_ROWS, None),
        state.store.all_sales(),
        state.store.claim_counts(None),
        state.store.orders_by_sale(),
    )?;
    let mut campaign_rows = Vec::with_capacity(campaigns.len());
    let mut total = [0; crate::claim_stats::OUTCOMES];
    for tally in claims.values() {
        for (t, n) in total.iter_mut().zip(tally) {
            *t += n;
        }
    }
    for c in &campaigns {
        let stock = state.gate.stock(drop_of(c.id)).await?;
        campaign_rows.push(CampaignRow {
            id: c.id,
            name: c.name.clone(),
            status: campaign_status(
                now,
                c.issue_starts_at,
                stock.ends_at,
                stock.paused,
                stock.remaining,
            ),
            total_quantity: stock.total,
            issued: stock.issued,
            remaining: stock.remaining,
            claims: claims
                .get(&c.id)
                .copied()
                .map(Into::into)
                .unwrap_or_default(),
        });
    }
    // Newest first, like the campaigns.
    sales.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    sales.truncate(OVERVIEW_ROWS as usize);
    let mut sale_rows = Vec::with_capacity(sales.len());
    for s in &sales {
        let stock = state.gate.stock(crate::selling::drop_of(s.id)).await?;
        sale_rows.push(SaleRow {
            id: s.id,
            name: s.name.clone(),
            status: campaign_status(
                now,
                s.starts_at,
                stock.ends_at,
                stock.paused,
                stock.remaining,
            ),
            total_quantity: stock.total,
            held: stock.total - stock.remaining,
            remaining: stock.remaining,
            orders: order_counts(&orders.get(&s.id).cloned().unwrap_or_default()),
        });
    }
    Ok(Arc::new(Overview {
        as_of: now,
        campaigns: campaign_rows,
        sales: sale_rows,
        claims: total.into(),
    }))
}
