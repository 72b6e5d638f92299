//! Signing keys: read and rotate.

use axum::extract::State;
use axum::Json;
use qstash_core::signing::SigningKeys;

use crate::auth::Caller;
use crate::{ApiError, AppState};

pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<SigningKeys>, ApiError> {
    state
        .engine
        .keys()
        .get(&user.id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no signing keys".into()))
}

pub async fn rotate(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<SigningKeys>, ApiError> {
    let keys = state.engine.keys().rotate(&user.id).await?;
    keys.map(Json)
        .ok_or_else(|| ApiError::NotFound("no signing keys".into()))
}
