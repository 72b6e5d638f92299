//! Queues (`/v2/queues`) and enqueue (`/v2/enqueue/{queue}/{destination}`).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use qstash_core::queue::QueueInfo;
use qstash_core::queue::{validate_parallelism, validate_queue_name};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::routes::publish::{accept, read_body};
use crate::{ApiError, AppState};

const ENQUEUE_PREFIX: &str = "/v2/enqueue/";

pub async fn enqueue(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Raw path: the destination must stay exactly as written.
    let rest = uri.path().strip_prefix(ENQUEUE_PREFIX).unwrap_or_default();
    let (queue, raw) = rest.split_once('/').unwrap_or((rest, ""));
    let queue = validate_queue_name(queue)
        .map_err(ApiError::bad)?
        .to_string();
    accept(
        &state,
        user.id,
        peer,
        raw,
        uri.query(),
        &headers,
        body,
        Some(queue),
    )
    .await
}

fn view(q: &QueueInfo) -> Value {
    json!({
        "name": q.name,
        "parallelism": q.parallelism,
        "createdAt": q.created_at,
        "updatedAt": q.updated_at,
        "lag": q.lag,
        "paused": q.paused,
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("queue {name:?} not found"))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert {
    queue_name: String,
    #[serde(default)]
    parallelism: Option<i64>,
    #[serde(default)]
    paused: Option<bool>,
}

pub async fn upsert(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let req: Upsert = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"queueName\", \"parallelism\", \"paused\"}}: {e}"
        ))
    })?;
    let name = validate_queue_name(&req.queue_name).map_err(ApiError::bad)?;
    let parallelism = validate_parallelism(req.parallelism.unwrap_or(1)).map_err(ApiError::bad)?;
    state
        .engine
        .upsert_queue(&user.id, name, parallelism, req.paused.unwrap_or(false))
        .await?;
    Ok(Json(json!({})))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.engine.reads().queue(&user.id, &name).await? {
        Some(q) => Ok(Json(view(&q))),
        None => Err(not_found(&name)),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let queues = state.engine.reads().queues(&user.id).await?;
    Ok(Json(Value::Array(queues.iter().map(view).collect())))
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.engine.delete_queue(&user.id, &name).await? {
        Some(cancelled) => Ok(Json(json!({ "cancelled": cancelled }))),
        None => Err(not_found(&name)),
    }
}

async fn set_paused(
    state: &AppState,
    user_id: &str,
    name: &str,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    validate_queue_name(name).map_err(ApiError::bad)?;
    if !state.engine.set_queue_paused(user_id, name, paused).await? {
        return Err(not_found(name));
    }
    Ok(Json(json!({})))
}

pub async fn pause(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &user.id, &name, true).await
}

pub async fn resume(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &user.id, &name, false).await
}
