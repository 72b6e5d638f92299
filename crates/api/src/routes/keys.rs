//! Signing keys: read and rotate.

use axum::extract::State;
use axum::Json;

use crate::auth::Caller;
use crate::views::{ErrorBody, Keys};
use crate::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/v2/keys",
    tag = "keys",
    summary = "The signing keys",
    responses(
        (status = 200, description = "The keys", body = Keys),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Keys>, ApiError> {
    state
        .engine
        .keys()
        .get(&user.id)
        .map(|k| Json(k.into()))
        .ok_or_else(|| ApiError::NotFound("no signing keys".into()))
}

#[utoipa::path(
    post,
    path = "/v2/keys/rotate",
    tag = "keys",
    summary = "Rotate the signing keys: next becomes current",
    responses(
        (status = 200, description = "The new keys", body = Keys),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Keys>, ApiError> {
    let keys = state.engine.keys().rotate(&user.id).await?;
    keys.map(|k| Json(k.into()))
        .ok_or_else(|| ApiError::NotFound("no signing keys".into()))
}
