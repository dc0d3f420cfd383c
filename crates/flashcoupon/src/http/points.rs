//! Points over HTTP (API.md "Points"): the caller's balance and history;
//! earn, spend, refund and holds for shops (a service key or an admin);
//! an admin's adjust and user lookup. The rules are in `crate::points`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging::Page;
use super::{ApiError, ErrorBody, Json, Query, parse_path_id};
use crate::auth::{AdminUser, AuthUser, ShopCaller};
use crate::domain::account::Email;
use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;
use crate::domain::whole;
use crate::points::{self, Entry, PointsError};
use crate::state::AppState;
use crate::store::{HoldState, PointEntry};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_points))
        .routes(routes!(my_history))
        .routes(routes!(user_points))
        .routes(routes!(user_history))
        .routes(routes!(earn))
        .routes(routes!(spend))
        .routes(routes!(refund))
        .routes(routes!(hold))
        .routes(routes!(confirm_hold))
        .routes(routes!(release_hold))
        .routes(routes!(adjust))
        .routes(routes!(lookup_user))
}

impl From<PointsError> for ApiError {
    fn from(e: PointsError) -> Self {
        match e {
            PointsError::Invalid(e) => e.into(),
            PointsError::UnknownUser => ApiError::NotFoundWhy("no such user".into()),
            e @ PointsError::Insufficient(_) => {
                ApiError::conflict("insufficient_points", e.to_string())
            }
            e @ PointsError::ReferenceConflict(_) => {
                ApiError::conflict("reference_conflict", e.to_string())
            }
            e @ (PointsError::NoSuchSpend(_) | PointsError::NoSuchHold(_)) => {
                ApiError::NotFoundWhy(e.to_string())
            }
            e @ PointsError::AlreadyRefunded => {
                ApiError::conflict("already_refunded", e.to_string())
            }
            e @ PointsError::HoldEnded(_) => ApiError::conflict("not_held", e.to_string()),
            e @ PointsError::HoldExpired => ApiError::conflict("hold_expired", e.to_string()),
            e @ PointsError::Busy => ApiError::Unavailable(e.to_string()),
            e @ PointsError::SaleOrder => ApiError::conflict("sale_order", e.to_string()),
            PointsError::Store(e) => e.into(),
        }
    }
}

/// One ledger entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    pub id: uuid::Uuid,
    /// `earn`, `spend`, `hold`, `release`, `expire`, `refund` or `adjust`.
    pub kind: String,
    /// Signed: earn, refund and release positive; spend, hold and expire
    /// negative; adjust either.
    pub amount: i64,
    /// The balance (holds excluded) after this entry.
    pub balance_after: i64,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub order_id: Option<String>,
    pub created_at: Timestamp,
    /// An earn: when what is left of it expires. A hold: when it runs out.
    pub expires_at: Option<Timestamp>,
    /// A refund: the spend it gives back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_of: Option<uuid::Uuid>,
}

impl From<&PointEntry> for EntryView {
    fn from(e: &PointEntry) -> Self {
        Self {
            id: e.id,
            kind: e.kind.as_str().to_owned(),
            amount: e.amount,
            balance_after: e.balance_after,
            reference: e.reference.clone(),
            reason: e.reason.clone(),
            order_id: e.order_id.clone(),
            created_at: e.created_at,
            expires_at: e.expires_at,
            refund_of: e.refund_of,
        }
    }
}

/// A whole number for a field whose bounds are within `u32`: one out of
/// `u32` becomes 0, which every such field refuses, naming itself.
fn narrow(n: Option<i64>) -> Option<u32> {
    n.map(|n| u32::try_from(n).unwrap_or(0))
}

/// `201` the first time, `200` with the first entry for a repeat.
fn answer(entry: Entry) -> (StatusCode, Json<EntryView>) {
    match entry {
        Entry::First(e) => (StatusCode::CREATED, Json((&e).into())),
        Entry::Repeat(e) => (StatusCode::OK, Json((&e).into())),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Expiring {
    pub amount: i64,
    pub expires_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PointsView {
    /// Points available now (holds excluded): the sum of every entry.
    pub balance: i64,
    /// Points set aside by open holds.
    pub held: i64,
    /// What is left of each earn, by expiry, earliest first (at most 20).
    pub expiring: Vec<Expiring>,
}

async fn balance(state: &AppState, user: UserId) -> Result<PointsView, ApiError> {
    let b = state
        .store
        .point_balance(user, state.record_now().await?)
        .await?;
    Ok(PointsView {
        balance: b.balance,
        held: b.held,
        expiring: b
            .expiring
            .into_iter()
            .map(|(amount, expires_at)| Expiring { amount, expires_at })
            .collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub entries: Vec<EntryView>,
    /// The `before` of the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<uuid::Uuid>,
}

async fn history(
    state: &AppState,
    user: UserId,
    params: HistoryParams,
) -> Result<History, ApiError> {
    let page = Page::<uuid::Uuid>::parse(params.limit, params.before, 50, 100, "entry id")?;
    let entries = state
        .store
        .point_history(user, page.limit, page.before)
        .await?;
    Ok(History {
        next: page.next(&entries, |e| e.id),
        entries: entries.iter().map(EntryView::from).collect(),
    })
}

/// The user a shop names in the path: a user id, or 404.
async fn named_user(state: &AppState, raw: &str) -> Result<UserId, ApiError> {
    let user: UserId = parse_path_id(raw)?;
    if !state.store.user_exists(user).await? {
        return Err(ApiError::NotFoundWhy("no such user".into()));
    }
    Ok(user)
}

/// The caller's points: the balance, what is held, what expires when.
#[utoipa::path(get, path = "/api/v1/me/points", tag = "points", security(("bearer" = [])),
    responses((status = 200, body = PointsView), (status = 401, body = ErrorBody)))]
pub async fn my_points(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<PointsView>, ApiError> {
    Ok(Json(balance(&state, user.id).await?))
}

/// The caller's ledger, newest first.
#[utoipa::path(get, path = "/api/v1/me/points/history", tag = "points", params(HistoryParams),
    security(("bearer" = [])),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_history(
    State(state): State<AppState>,
    user: AuthUser,
    Query(params): Query<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    Ok(Json(history(&state, user.id, params).await?))
}

/// A user's points (a service key or an admin).
#[utoipa::path(get, path = "/api/v1/users/{user_id}/points", tag = "points",
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 200, body = PointsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn user_points(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(user_id): Path<String>,
) -> Result<Json<PointsView>, ApiError> {
    let user = named_user(&state, &user_id).await?;
    Ok(Json(balance(&state, user).await?))
}

/// A user's ledger, newest first (a service key or an admin).
#[utoipa::path(get, path = "/api/v1/users/{user_id}/points/history", tag = "points",
    params(("user_id" = String, Path, description = "user id"), HistoryParams), security(("bearer" = ["admin"])),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn user_history(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(user_id): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let user = named_user(&state, &user_id).await?;
    Ok(Json(history(&state, user, params).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarnRequest {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole::number")]
    pub amount: i64,
    /// The caller's id for this earn, unique per user: the same request
    /// again answers the first entry.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub reference: String,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+$"
    )]
    pub reason: String,
    /// How long the points last (default 365).
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub valid_days: Option<i64>,
}

/// Add points to a user (a service key or an admin): a lot that expires
/// after `valid_days`. The user hears `points.earned`.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/earn", tag = "points", request_body = EarnRequest,
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "a repeat: the first entry"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "reference_conflict")))]
pub async fn earn(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(user_id): Path<String>,
    Json(body): Json<EarnRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let user = named_user(&state, &user_id).await?;
    let entry = points::earn(
        &state,
        user,
        body.amount,
        &body.reference,
        &body.reason,
        narrow(body.valid_days),
    )
    .await?;
    Ok(answer(entry))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendRequest {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole::number")]
    pub amount: i64,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub reference: String,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+$"
    )]
    pub reason: String,
}

/// Spend a user's points (a service key or an admin), from the
/// earliest-expiring earn first: all or nothing.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/spend", tag = "points", request_body = SpendRequest,
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "a repeat: the first entry"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "insufficient_points or reference_conflict")))]
pub async fn spend(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(user_id): Path<String>,
    Json(body): Json<SpendRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let user = named_user(&state, &user_id).await?;
    let entry = points::spend(&state, user, body.amount, &body.reference, &body.reason).await?;
    Ok(answer(entry))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The reference of the spend to give back.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub spend_reference: String,
    /// This refund's own reference.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub reference: String,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+$"
    )]
    pub reason: String,
}

/// Give a spend's points back (a service key or an admin), to the lots
/// they came from, with their old expiry; once per spend.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/refund", tag = "points", request_body = RefundRequest,
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "a repeat: the first entry"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such user, or no spend with that reference"),
        (status = 409, body = ErrorBody, description = "already_refunded or reference_conflict")))]
pub async fn refund(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(user_id): Path<String>,
    Json(body): Json<RefundRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let user = named_user(&state, &user_id).await?;
    let entry = points::refund(
        &state,
        user,
        &body.spend_reference,
        &body.reference,
        &body.reason,
    )
    .await?;
    Ok(answer(entry))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The order the points are held for: its payment event confirms or
    /// releases them. One hold per user and order.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub order_id: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "whole::number")]
    pub amount: i64,
    /// How long the hold lasts unless confirmed or released (default 900).
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub ttl_secs: Option<i64>,
}

/// Hold a user's points for an order (a service key or an admin), until
/// its payment event (`payment.succeeded` spends them; `payment.failed` or
/// `order.cancelled` gives them back) or `ttl_secs` (given back). The same
/// order again answers the first hold.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/holds", tag = "points", request_body = HoldRequest,
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "a repeat: the first hold"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "insufficient_points; reference_conflict (the order holds another amount); hold_expired or not_held (a repeat of a hold that has ended)")))]
pub async fn hold(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path(user_id): Path<String>,
    Json(body): Json<HoldRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let user = named_user(&state, &user_id).await?;
    let entry = points::hold(
        &state,
        user,
        &body.order_id,
        body.amount,
        narrow(body.ttl_secs),
    )
    .await?;
    Ok(answer(entry))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryList {
    /// The entries this call wrote (none if the hold had already ended
    /// this way).
    pub entries: Vec<EntryView>,
}

async fn end_hold(
    state: &AppState,
    user_id: &str,
    order_id: &str,
    to: HoldState,
) -> Result<Json<EntryList>, ApiError> {
    let user = named_user(state, user_id).await?;
    // An order id that could never have been held names nothing: 404,
    // as for any other id in a path.
    if crate::domain::coupon::check_order_id(order_id).is_err() {
        return Err(PointsError::NoSuchHold(order_id.to_owned()).into());
    }
    let entries = points::end_hold(state, user, order_id, to).await?;
    Ok(Json(EntryList {
        entries: entries.iter().map(EntryView::from).collect(),
    }))
}

/// Confirm a hold: the order was paid and its points are spent (what a
/// `payment.succeeded` does).
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/holds/{order_id}/confirm", tag = "points",
    params(("user_id" = String, Path, description = "user id"), ("order_id" = String, Path, description = "the order")),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = EntryList), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such user, or no hold for the order"),
        (status = 409, body = ErrorBody, description = "hold_expired or not_held (released)")))]
pub async fn confirm_hold(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path((user_id, order_id)): Path<(String, String)>,
) -> Result<Json<EntryList>, ApiError> {
    end_hold(&state, &user_id, &order_id, HoldState::Confirmed).await
}

/// Release a hold: its points go back (what a `payment.failed` does).
#[utoipa::path(post, path = "/api/v1/users/{user_id}/points/holds/{order_id}/release", tag = "points",
    params(("user_id" = String, Path, description = "user id"), ("order_id" = String, Path, description = "the order")),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = EntryList), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such user, or no hold for the order"),
        (status = 409, body = ErrorBody, description = "not_held (confirmed)")))]
pub async fn release_hold(
    State(state): State<AppState>,
    _shop: ShopCaller,
    Path((user_id, order_id)): Path<(String, String)>,
) -> Result<Json<EntryList>, ApiError> {
    end_hold(&state, &user_id, &order_id, HoldState::Released).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// Points to add (positive) or take (negative), never zero.
    #[schema(schema_with = signed_amount_schema)]
    #[serde(deserialize_with = "whole::number")]
    pub amount: i64,
    /// Why: shown to the user in their history.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+$"
    )]
    pub reason: String,
    /// This adjustment's id: the same again answers the first entry.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub reference: String,
    /// Added points last this long (default 365).
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub valid_days: Option<i64>,
}

/// A non-zero amount within 10¹² either way: two ranges, since JSON Schema
/// has no "not zero" that generators read well.
fn signed_amount_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let range = |min: i64, max: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(min))
            .maximum(Some(max))
    };
    utoipa::openapi::schema::Schema::OneOf(
        OneOfBuilder::new()
            .item(range(-points::MAX_AMOUNT, -1))
            .item(range(1, points::MAX_AMOUNT))
            .description(Some(
                "Points to add (positive) or take (negative), never zero.",
            ))
            .build(),
    )
}

/// An admin's correction of a user's points, with a reason.
#[utoipa::path(post, path = "/api/v1/admin/users/{user_id}/points/adjust", tag = "points", request_body = AdjustRequest,
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = ["admin"])),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "a repeat: the first entry"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "insufficient_points or reference_conflict")))]
pub async fn adjust(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
    Json(body): Json<AdjustRequest>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let user = named_user(&state, &user_id).await?;
    let entry = points::adjust(
        &state,
        user,
        body.amount,
        &body.reference,
        &body.reason,
        narrow(body.valid_days),
    )
    .await?;
    Ok(answer(entry))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupParams {
    pub email: String,
}

/// By hand: the derive drops `required` from a field with its own schema.
impl IntoParams for LookupParams {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        vec![
            ParameterBuilder::new()
                .name("email")
                .parameter_in(ParameterIn::Query)
                .required(utoipa::openapi::Required::True)
                .description(Some("The account's e-mail address, exactly."))
                .schema(Some(Email::schema()))
                .build(),
        ]
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    pub id: UserId,
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
}

/// Find an account by e-mail (an admin), e.g. to look at its points.
#[utoipa::path(get, path = "/api/v1/admin/users/lookup", tag = "points", params(LookupParams),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = UserSummary), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn lookup_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(params): Query<LookupParams>,
) -> Result<Json<UserSummary>, ApiError> {
    let email = Email::parse(&params.email)?;
    let user = state
        .store
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::NotFoundWhy("no account has that e-mail".into()))?;
    Ok(Json(UserSummary {
        id: user.id,
        email: email.as_str().to_owned(),
        role: user.role.as_str().to_owned(),
    }))
}
