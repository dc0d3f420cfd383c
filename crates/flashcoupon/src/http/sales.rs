//! Time sales and their orders: admins create and patch sales
//! (`selling::sales` keeps the record and the gate in step), anyone reads
//! them; buyers order one unit at a time (`selling::orders`), see, cancel
//! and, with `--test-payments`, pay their orders.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::{ApiError, ErrorBody, IdempotencyKey, Json, Query, parse_path_id};
use crate::admission::Stock;
use crate::auth::{AdminUser, AuthUser, Caller};
use crate::domain::account::Role;
use crate::domain::campaign::{CampaignStatus, campaign_status};
use crate::domain::ids::{CouponId, OrderId, SaleId, UserId};
use crate::domain::sale::{NewSale, Order, OrderStatus, Product, Sale, SalePatch};
use crate::domain::timestamp::Timestamp;
use crate::issuing::claim::refusal;
use crate::selling::orders::{self, Placed};
use crate::selling::{SellError, drop_of, sales};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, patch))
        .routes(routes!(place_order))
        .routes(routes!(my_orders))
        .routes(routes!(show_order))
        .routes(routes!(cancel_order))
        .routes(routes!(pay_order))
        .routes(routes!(summary))
        .routes(routes!(live))
}

/// A sale's stock and status, live (Server-Sent Events).
///
/// Public. Each `stock` event carries `sale_id`, `status`, `total_quantity`,
/// `remaining_quantity`, `sold_count`, `paused`, `starts_at`, `ends_at` and
/// `at` (the server's time when it was sent, or read a moment before): the
/// first at once, the next whenever something changed (the sale is read
/// every 250 ms while anyone watches it, one reader per instance whatever
/// the number of streams; fewer events when thousands watch: about 10,000
/// a second across a sale's streams, so 10,000 pages get one a second).
#[utoipa::path(get, path = "/api/v1/sales/{id}/live", tag = "sales",
    params(("id" = String, Path, description = "sale id")),
    responses((status = 200, content_type = "text/event-stream", description = "`stock` events"),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "unavailable: too many live connections")))]
pub async fn live(
    State(state): State<AppState>,
    super::ClientAddr(client): super::ClientAddr,
    Path(id): Path<String>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_core::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    let id: SaleId = parse_path_id(&id)?;
    let sale = state
        .catalog
        .sale(&*state.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let slot = state
        .connections
        .open(client, false)
        .map_err(|full| ApiError::Unavailable(full.to_string()))?;
    let watcher = state.sale_live.watch(&state, id, sale.starts_at);
    let events = super::live::stock_events(watcher, state.clock.clone());
    Ok(super::live::stream(events, state.notifier.stopping(), slot))
}

/// Orders of a sale by status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct OrderCountsView {
    pub pending_payment: u64,
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
    pub refunded: u64,
}

/// A sale's orders summed up from the record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SaleSummaryView {
    pub sale_id: SaleId,
    pub total_quantity: u32,
    pub remaining_quantity: u32,
    pub orders: OrderCountsView,
    /// Paid (and later refunded) orders: units that left the stock for good.
    pub units_sold: u64,
    /// What paid orders pay (refunded ones excluded).
    pub revenue: i64,
    /// Coupon discounts given on paid orders.
    pub discount_total: i64,
    /// Points spent on paid orders.
    pub points_total: i64,
    /// When the last unit was first taken; absent if it never was.
    pub sold_out_at: Option<Timestamp>,
    /// Minutes of the window (default: 31 days from the sale's start) with
    /// orders placed, ascending, whatever became of them.
    pub ordered_per_minute: Vec<super::summary::MinuteCount>,
    /// When these figures were read.
    pub as_of: Timestamp,
}

/// A sale's orders by status, units sold, revenue, discounts and points
/// given, and orders per minute (admin).
#[utoipa::path(get, path = "/api/v1/admin/sales/{id}/summary", tag = "sales",
    params(("id" = String, Path, description = "sale id"), super::summary::WindowParams),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = SaleSummaryView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(params): Query<super::summary::WindowParams>,
) -> Result<Json<SaleSummaryView>, ApiError> {
    let id: SaleId = parse_path_id(&id)?;
    let sale = state.store.get_sale(id).await?.ok_or(ApiError::NotFound)?;
    let (from, to) = params.window(sale.starts_at)?;
    let as_of = state.clock.now();
    let stock = state.gate.stock(drop_of(id)).await?;
    let (s, ordered) = tokio::try_join!(
        state.store.sale_summary(id),
        state.store.ordered_per_minute(id, from, to),
    )?;
    Ok(Json(SaleSummaryView {
        sale_id: id,
        total_quantity: stock.total,
        remaining_quantity: stock.remaining,
        orders: super::summary::order_counts(&s.orders),
        units_sold: s.units_sold,
        revenue: s.revenue,
        discount_total: s.discount_total,
        points_total: s.points_total,
        sold_out_at: s.sold_out_at,
        ordered_per_minute: super::summary::minutes(ordered),
        as_of,
    }))
}

/// A sale with its live numbers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SaleView {
    pub id: SaleId,
    pub name: String,
    pub product: Product,
    pub sale_price: i64,
    pub total_quantity: u32,
    pub per_user_limit: u32,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub payment_ttl_secs: u32,
    pub paused: bool,
    /// Units that orders hold (pending payment or paid) or are taking now.
    pub sold_count: u32,
    /// Units left to order.
    pub remaining_quantity: u32,
    /// `upcoming`, `open`, `sold_out`, `ended` or `paused`.
    pub status: CampaignStatus,
    pub created_at: Timestamp,
}

impl SaleView {
    pub fn new(s: &Sale, stock: &Stock, now: Timestamp) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            product: s.product.clone(),
            sale_price: s.sale_price,
            total_quantity: stock.total,
            per_user_limit: s.per_user_limit,
            starts_at: s.starts_at,
            ends_at: stock.ends_at,
            payment_ttl_secs: s.payment_ttl_secs,
            paused: stock.paused,
            sold_count: stock.total - stock.remaining,
            remaining_quantity: stock.remaining,
            status: campaign_status(
                now,
                s.starts_at,
                stock.ends_at,
                stock.paused,
                stock.remaining,
            ),
            created_at: s.created_at,
        }
    }
}

/// One order: one unit of a sale.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: OrderId,
    pub sale_id: SaleId,
    pub user_id: UserId,
    /// The unit's rank 1..total among the units orders hold.
    pub seq: u32,
    pub unit_price: i64,
    pub coupon_id: Option<CouponId>,
    pub coupon_discount: i64,
    pub points_used: i64,
    /// What the buyer pays: unit price − coupon discount − points.
    pub payable_amount: i64,
    /// `pending_payment`, `paid`, `expired`, `cancelled` or `refunded`.
    pub status: OrderStatus,
    /// A pending order is given back to the stock at this instant if unpaid.
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        Self {
            id: o.id,
            sale_id: o.sale_id,
            user_id: o.user_id,
            seq: o.seq,
            unit_price: o.unit_price,
            coupon_id: o.coupon_id,
            coupon_discount: o.coupon_discount,
            points_used: o.points_used,
            payable_amount: o.payable_amount,
            status: o.status,
            expires_at: o.expires_at,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SaleList {
    pub sales: Vec<SaleView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderView>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<OrderId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderListParams {
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub before: Option<String>,
}

impl From<SellError> for ApiError {
    fn from(e: SellError) -> Self {
        match e {
            SellError::NoSuchSale | SellError::NoSuchOrder => ApiError::NotFoundWhy(e.to_string()),
            SellError::Invalid(e) => e.into(),
            e @ SellError::BelowSold(_) => {
                ApiError::conflict("quantity_below_issued", e.to_string())
            }
            SellError::RateLimited(wait) => wait.into(),
            SellError::Unavailable(why) => ApiError::Unavailable(why),
            e @ SellError::OrderExpired => ApiError::conflict("order_expired", e.to_string()),
            e @ SellError::NotPending(_) => ApiError::conflict("order_not_pending", e.to_string()),
            e @ SellError::NoSuchCoupon => ApiError::NotFoundWhy(e.to_string()),
            SellError::Coupon(r) => super::spending::use_rejection(r),
            e @ SellError::InsufficientPoints(_) => {
                ApiError::conflict("insufficient_points", e.to_string())
            }
            e @ SellError::TestPaymentsOff => {
                ApiError::conflict("test_payments_off", e.to_string())
            }
            SellError::Store(e) => e.into(),
            SellError::Task(why) => ApiError::Internal(anyhow::anyhow!(why)),
        }
    }
}

async fn view(state: &AppState, sale: &Sale) -> Result<SaleView, ApiError> {
    let stock = state.gate.stock(drop_of(sale.id)).await?;
    Ok(SaleView::new(sale, &stock, state.clock.now()))
}

/// Create a time sale (admin).
#[utoipa::path(post, path = "/api/v1/sales", tag = "sales", request_body = NewSale,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = SaleView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewSale>,
) -> Result<(StatusCode, Json<SaleView>), ApiError> {
    let sale = body.parse(SaleId::generate(), state.clock.now())?;
    let (sale, stock) = sales::create(&state, sale).await?;
    Ok((
        StatusCode::CREATED,
        Json(SaleView::new(&sale, &stock, state.clock.now())),
    ))
}

/// Every sale, newest first, with live stock.
#[utoipa::path(get, path = "/api/v1/sales", tag = "sales",
    responses((status = 200, body = SaleList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<SaleList>, ApiError> {
    let all = state.store.all_sales().await?;
    let mut views = Vec::with_capacity(all.len());
    for s in &all {
        views.push(view(&state, s).await?);
    }
    Ok(Json(SaleList { sales: views }))
}

/// One sale, with live stock.
#[utoipa::path(get, path = "/api/v1/sales/{id}", tag = "sales",
    params(("id" = String, Path, description = "sale id")),
    responses((status = 200, body = SaleView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SaleView>, ApiError> {
    let id: SaleId = parse_path_id(&id)?;
    let sale = state.store.get_sale(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(view(&state, &sale).await?))
}

/// Pause or resume, move the end, or change the stock (never below a unit
/// an order holds) (admin).
#[utoipa::path(patch, path = "/api/v1/sales/{id}", tag = "sales", request_body = SalePatch,
    params(("id" = String, Path, description = "sale id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = SaleView), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "quantity_below_issued")))]
pub async fn patch(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<SalePatch>,
) -> Result<Json<SaleView>, ApiError> {
    let id: SaleId = parse_path_id(&id)?;
    let (sale, stock) = sales::patch(&state, id, body).await?;
    Ok(Json(SaleView::new(&sale, &stock, state.clock.now())))
}

/// What to pay an order with besides money (both optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// One of the caller's available coupons: reserved for the order, its
    /// discount computed on the sale price.
    pub coupon_id: Option<CouponId>,
    /// Points to hold for the order: 1 up to the price after the coupon.
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub points: Option<i64>,
}

/// Order one unit, first come first served.
///
/// Answers 201 only once the order is durable; it then waits for its
/// payment until `expires_at`. The same `Idempotency-Key` from the same
/// buyer returns the first order again and never takes a second unit.
#[utoipa::path(post, path = "/api/v1/sales/{id}/orders", tag = "sales",
    request_body(content = Option<OrderRequest>, description = "optional"),
    params(("id" = String, Path, description = "sale id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1..128 printable ASCII characters",
            pattern = r"^[ \t]*[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?[ \t]*$")),
    security(("bearer" = [])),
    responses((status = 201, body = OrderView, description = "placed and durable"),
        (status = 400, body = ErrorBody, description = "invalid_input (e.g. points over the price)"),
        (status = 404, body = ErrorBody, description = "not_found: no such sale, or no such coupon of the caller's"),
        (status = 409, body = ErrorBody, description = "sold_out, limit_reached, not_open, ended or paused; \
the coupon's errors (already_used, reserved, expired, not_yet_valid, below_min_order); insufficient_points"),
        (status = 429, body = ErrorBody, description = "rate_limited"),
        (status = 503, body = ErrorBody, description = "unavailable: nothing was taken; retry")))]
pub async fn place_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: Option<Json<serde_json::Value>>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let id: SaleId = parse_path_id(&id)?;
    // No body, `null` or `{}`: an order paid with money alone. Only an
    // object names what else pays (serde would read `[null, null]` as one).
    let body: OrderRequest = match body.map(|Json(b)| b) {
        None | Some(serde_json::Value::Null) => OrderRequest::default(),
        Some(b @ serde_json::Value::Object(_)) => {
            serde_json::from_value(b).map_err(|e| ApiError::InvalidInput(format!("body: {e}")))?
        }
        Some(_) => {
            return Err(ApiError::InvalidInput(
                "body: must be a JSON object (coupon_id, points) or null".into(),
            ));
        }
    };
    let extras = orders::Extras {
        coupon_id: body.coupon_id,
        points: body.points,
    };
    match orders::place(&state, id, user.id, key.as_deref(), extras).await? {
        Placed::New(o) | Placed::Replayed(o) => {
            Ok((StatusCode::CREATED, Json(OrderView::from(&o))))
        }
        Placed::Rejected(r) => {
            let (code, message) = refusal(r);
            let message = match code {
                "sold_out" => "no units left",
                "limit_reached" => "you already hold as many orders of this sale as one person may",
                "not_open" => "the sale has not started yet",
                "ended" => "the sale has ended",
                "paused" => "the sale is paused",
                _ => message,
            };
            Err(ApiError::conflict(code, message))
        }
    }
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/me/orders", tag = "sales", params(OrderListParams),
    security(("bearer" = [])),
    responses((status = 200, body = OrderList), (status = 400, body = ErrorBody)))]
pub async fn my_orders(
    State(state): State<AppState>,
    user: AuthUser,
    Query(params): Query<OrderListParams>,
) -> Result<Json<OrderList>, ApiError> {
    let page = Page::<OrderId>::parse(params.limit, params.before, 50, 100, "order id")?;
    let rows = state
        .store
        .user_orders(user.id, page.limit, page.before)
        .await?;
    let next = page.next(&rows, |o| o.id);
    Ok(Json(OrderList {
        orders: rows.iter().map(OrderView::from).collect(),
        next,
    }))
}

/// One order (its buyer, an admin or a shop's service key).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "sales",
    params(("id" = String, Path, description = "order id")), security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)))]
pub async fn show_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id: OrderId = parse_path_id(&id)?;
    let order = orders::get(&state, id).await?;
    let allowed = match caller {
        Caller::Service(_) => true,
        Caller::User(u) if u.id == order.user_id => true,
        Caller::User(u) if u.role == Role::Admin => {
            crate::auth::admin_in_record(&state, u).await.is_ok()
        }
        Caller::User(_) => false,
    };
    if !allowed {
        return Err(SellError::NoSuchOrder.into());
    }
    Ok(Json(OrderView::from(&order)))
}

/// Cancel one's own order before it is paid: its unit goes back to the stock.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "sales",
    params(("id" = String, Path, description = "order id")), security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "order_expired, order_not_pending")))]
pub async fn cancel_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id: OrderId = parse_path_id(&id)?;
    let order = orders::cancel(&state, id, user.id).await?;
    Ok(Json(OrderView::from(&order)))
}

/// Pay one's own order at once (`--test-payments` only: demos and load
/// tests; otherwise orders are paid by the shop's payment events).
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", tag = "sales",
    params(("id" = String, Path, description = "order id")), security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "order_expired, order_not_pending, test_payments_off")))]
pub async fn pay_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let id: OrderId = parse_path_id(&id)?;
    let order = orders::pay(&state, id, user.id).await?;
    Ok(Json(OrderView::from(&order)))
}
