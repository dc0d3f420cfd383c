//! `AuthUser` and `AdminUser`: the caller, from `Authorization: Bearer <JWT>`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

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

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or(ApiError::Unauthorized)?;
        let claims = state
            .authenticate(token.trim())
            .ok_or(ApiError::Unauthorized)?;
        Ok(AuthUser {
            id: claims.sub,
            role: claims.role,
        })
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::Forbidden);
        }
        // The token says admin; the record decides (admin requests are few,
        // so this read costs nothing that matters).
        match state.store.user_role(user.id).await? {
            Some(Role::Admin) => Ok(AdminUser(user)),
            Some(_) => Err(ApiError::Forbidden),
            None => Err(ApiError::Unauthorized),
        }
    }
}
