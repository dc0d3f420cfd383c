//! Admin: service keys for shop back ends (create: shown once; list; delete).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ErrorBody, Json, parse_path_id};
use crate::auth::{AdminUser, service_keys};
use crate::domain::InvalidInput;
use crate::domain::timestamp::Timestamp;
use crate::state::AppState;
use crate::store::ServiceKeyRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceKey {
    /// Which back end holds it, e.g. "order service": 1 to 100 characters
    /// (not all spaces), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
}

impl NewServiceKey {
    /// Checked as every name people read is (`domain::display_name`): a
    /// control character anywhere is refused, also one the trim would take
    /// off the ends (the schema's pattern says so).
    fn name(&self) -> Result<String, InvalidInput> {
        crate::domain::display_name("name", &self.name, 100)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceKeyView {
    pub id: uuid::Uuid,
    pub name: String,
    pub created_at: Timestamp,
    /// Within a minute; absent if never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
}

impl From<ServiceKeyRecord> for ServiceKeyView {
    fn from(k: ServiceKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A new key, with the key itself: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedServiceKey {
    pub id: uuid::Uuid,
    pub name: String,
    /// `fck_` and 64 hex digits: send it as `Authorization: Bearer <key>`.
    pub key: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceKeyList {
    pub api_keys: Vec<ServiceKeyView>,
}

/// Create a service key for a shop back end. The key is in this answer
/// only; the record keeps its hash.
#[utoipa::path(post, path = "/api/v1/admin/api-keys", tag = "service keys",
    request_body = NewServiceKey, security(("bearer" = ["admin"])),
    responses((status = 201, body = CreatedServiceKey),
        (status = 400, body = ErrorBody, description = "invalid_input")))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewServiceKey>,
) -> Result<(StatusCode, Json<CreatedServiceKey>), ApiError> {
    let record = ServiceKeyRecord {
        id: uuid::Uuid::now_v7(),
        name: body.name()?,
        created_at: state.clock.now(),
        last_used_at: None,
    };
    let key = service_keys::generate();
    state
        .store
        .insert_service_key(&record, &service_keys::hash(&key))
        .await?;
    tracing::info!(id = %record.id, name = %record.name, "service key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedServiceKey {
            id: record.id,
            name: record.name,
            key,
            created_at: record.created_at,
        }),
    ))
}

/// The live service keys (names and dates; never the keys).
#[utoipa::path(get, path = "/api/v1/admin/api-keys", tag = "service keys",
    security(("bearer" = ["admin"])), responses((status = 200, body = ServiceKeyList)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<ServiceKeyList>, ApiError> {
    let keys = state.store.service_keys().await?;
    Ok(Json(ServiceKeyList {
        api_keys: keys.into_iter().map(ServiceKeyView::from).collect(),
    }))
}

/// Delete a service key: refused from the next request on, on every instance.
#[utoipa::path(delete, path = "/api/v1/admin/api-keys/{id}", tag = "service keys",
    params(("id" = String, Path, description = "service key id")), security(("bearer" = ["admin"])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: uuid::Uuid = parse_path_id(&id)?;
    if !state
        .store
        .delete_service_key(id, state.clock.now())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    tracing::info!(%id, "service key deleted");
    Ok(StatusCode::NO_CONTENT)
}
