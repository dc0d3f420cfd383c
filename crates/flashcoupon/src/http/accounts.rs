//! Accounts: sign-up, log-in, and the admin's bulk user creation.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ClientAddr, ErrorBody, Json};
use crate::auth::AdminUser;
use crate::domain::account::{Email, Password, Role};
use crate::domain::ids::UserId;
use crate::domain::{InvalidInput, whole};
use crate::state::AppState;
use crate::store::StoreError;

pub const MAX_BULK_USERS: i64 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(bulk_users))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(schema_with = Email::schema)]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignupResponse {
    pub user_id: UserId,
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub user_id: UserId,
    pub token: String,
    pub role: Role,
}

/// Create a shopper account and sign it in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "accounts", request_body = Credentials,
    responses((status = 201, body = SignupResponse), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 409, body = ErrorBody, description = "email_taken"), (status = 429, body = ErrorBody, description = "rate_limited"),
        (status = 503, body = ErrorBody, description = "unavailable: too many sign-ins being hashed at once")))]
pub async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Json(body): Json<Credentials>,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    state.limits.check_auth(client)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let hash = state.passwords.hash(password.expose().to_owned()).await?;
    let id = UserId::generate();
    match state
        .store
        .insert_user(id, &email, &hash, Role::User, state.clock.now())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Unique(_)) => {
            return Err(ApiError::conflict(
                "email_taken",
                "an account with this e-mail already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    crate::issuing::triggers::signed_up(&state);
    let token = state.tokens.issue(id, Role::User, 0);
    Ok((
        StatusCode::CREATED,
        Json(SignupResponse { user_id: id, token }),
    ))
}

/// Exchange e-mail and password for a token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = Credentials,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody, description = "invalid_credentials"),
        (status = 429, body = ErrorBody, description = "rate_limited"),
        (status = 503, body = ErrorBody, description = "unavailable: too many sign-ins being hashed at once")))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Json(body): Json<Credentials>,
) -> Result<Json<LoginResponse>, ApiError> {
    state.limits.check_auth(client)?;
    // A malformed e-mail cannot belong to anyone: same answer as a wrong one.
    let user = match Email::parse(&body.email) {
        Ok(email) => state.store.find_user_by_email(&email).await?,
        Err(_) => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !state.passwords.verify(body.password, hash).await? {
        return Err(ApiError::InvalidCredentials);
    }
    let user = user.ok_or(ApiError::InvalidCredentials)?;
    let token = state.tokens.issue(user.id, user.role, user.token_epoch);
    Ok(Json(LoginResponse {
        user_id: user.id,
        token,
        role: user.role,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUsersRequest {
    /// 1..=10,000 users.
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub count: i64,
    /// Users are named `<email_prefix>-<n>@bulk.invalid`; letters, digits, `.`, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub email_prefix: String,
    /// Every user of the batch shares this password (hashed once).
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkUser {
    pub user_id: UserId,
    pub email: String,
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkUsersResponse {
    pub users: Vec<BulkUser>,
}

/// Admin only: create many shopper accounts at once and return their tokens.
///
/// The operators' fast path for load tests and rehearsals: the password is
/// hashed once and shared by the whole batch, so 10,000 users take a second
/// instead of minutes of argon2. All or none are created.
#[utoipa::path(post, path = "/api/v1/admin/users/bulk", tag = "accounts", request_body = BulkUsersRequest,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = BulkUsersResponse), (status = 400, body = ErrorBody, description = "invalid_input"),
        (status = 403, body = ErrorBody, description = "forbidden"), (status = 409, body = ErrorBody, description = "email_taken")))]
pub async fn bulk_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<BulkUsersRequest>,
) -> Result<(StatusCode, Json<BulkUsersResponse>), ApiError> {
    if !(1..=MAX_BULK_USERS).contains(&body.count) {
        return Err(
            InvalidInput::new("count", format!("must be between 1 and {MAX_BULK_USERS}")).into(),
        );
    }
    // Checked as sent, then lower-cased (some non-ASCII letters lower-case
    // to ASCII ones: the Kelvin sign to `k`).
    let prefix = &body.email_prefix;
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(InvalidInput::new(
            "email_prefix",
            "must be 1 to 64 letters, digits, '.', '_' or '-'",
        )
        .into());
    }
    let prefix = prefix.to_lowercase();
    let password = Password::parse(body.password)?;
    let users = (1..=body.count)
        .map(|n| {
            Email::parse(&format!("{prefix}-{n}@bulk.invalid")).map(|e| (UserId::generate(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hash = state.passwords.hash(password.expose().to_owned()).await?;
    match state
        .store
        .insert_users(&users, &hash, state.clock.now())
        .await
    {
        Ok(()) => {}
        Err(StoreError::Unique(_)) => {
            return Err(ApiError::conflict(
                "email_taken",
                "an account with one of these e-mails already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let users = users
        .into_iter()
        .map(|(id, email)| BulkUser {
            token: state.tokens.issue(id, Role::User, 0),
            user_id: id,
            email: email.as_str().to_owned(),
        })
        .collect();
    Ok((StatusCode::CREATED, Json(BulkUsersResponse { users })))
}
