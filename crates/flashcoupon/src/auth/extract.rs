//! The caller, from `Authorization: Bearer …`: a shopper's or an admin's
//! token (`AuthUser`, `AdminUser`), or a shop back end's service key
//! (`Caller`, `ShopCaller` on the routes that take one).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::service_keys;
use crate::domain::account::Role;
use crate::domain::ids::UserId;
use crate::http::ApiError;
use crate::state::AppState;

/// A signed-in caller. Missing, malformed, expired or forged token: 401.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: UserId,
    pub role: Role,
}

/// A signed-in caller making a write other than a claim, within the
/// per-user write limit (else 429): what a shopper cannot use to slow a drop.
#[derive(Debug, Clone, Copy)]
pub struct WritingUser(pub AuthUser);

impl FromRequestParts<AppState> for WritingUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        state.limits.check_write(user.id)?;
        Ok(WritingUser(user))
    }
}

/// A signed-in admin: an admin's token, of an account that is an admin in
/// the record. A valid token of another role: 403.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

/// The bearer credential of a request, if it has one.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Who is calling a route that shops may call too: a signed-in user, or a
/// shop back end with a live service key (an unknown or deleted key: 401).
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    User(AuthUser),
    Service(uuid::Uuid),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = bearer(parts).ok_or(ApiError::Unauthorized)?;
        if service_keys::is_service_key(credential) {
            return match service_keys::verify(&state.store, credential, state.clock.now()).await? {
                Some(key) => Ok(Caller::Service(key.id)),
                None => Err(ApiError::Unauthorized),
            };
        }
        Ok(Caller::User(token_user(state, credential)?))
    }
}

/// The signed-in user a bearer token names: 401 for anything that is not a
/// well-signed, live token (a service key is not one: it is not even read).
fn token_user(state: &AppState, credential: &str) -> Result<AuthUser, ApiError> {
    let claims = state
        .authenticate(credential)
        .ok_or(ApiError::Unauthorized)?;
    Ok(AuthUser {
        id: claims.sub,
        role: claims.role,
    })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    /// A service key is not a shopper's or an admin's credential: 401,
    /// without looking it up, so a flood of made-up keys on the claim path
    /// costs no record read.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        token_user(state, bearer(parts).ok_or(ApiError::Unauthorized)?)
    }
}

/// A shop action (confirm a reservation, cancel a spend, post a payment
/// event): a service key, or an admin (checked in the record). Anyone else
/// signed in: 403.
#[derive(Debug, Clone, Copy)]
pub enum ShopCaller {
    Service(uuid::Uuid),
    Admin(AuthUser),
}

impl FromRequestParts<AppState> for ShopCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Service(id) => Ok(ShopCaller::Service(id)),
            Caller::User(user) => Ok(ShopCaller::Admin(admin_in_record(state, user).await?.0)),
        }
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        admin_in_record(state, user).await
    }
}

/// The token says admin; the record decides (admin requests are few, so
/// this read costs nothing that matters).
pub async fn admin_in_record(state: &AppState, user: AuthUser) -> Result<AdminUser, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    match state.store.user_role(user.id).await? {
        Some(Role::Admin) => Ok(AdminUser(user)),
        Some(_) => Err(ApiError::Forbidden),
        None => Err(ApiError::Unauthorized),
    }
}
