//! Queues (`/v2/queues`) and enqueue (`/v2/enqueue/{queue}/{destination}`).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use qstash_core::queue::{validate_parallelism, validate_queue_name};
use serde::Deserialize;

use crate::auth::Caller;
use crate::routes::publish::{accept, read_body};
use crate::views::{Cancelled, Empty, ErrorBody, PublishAnswer, Published, QueueView};
use crate::{ApiError, AppState};

const ENQUEUE_PREFIX: &str = "/v2/enqueue/";

#[utoipa::path(
    post,
    path = "/v2/enqueue/{queue}/{destination}",
    tag = "queues",
    summary = "Publish a message to a queue",
    params(("queue" = String, Path, description = "A queue name (created if missing)"),
        ("destination" = String, Path, description = "A URL or a URL group name"),
        ("Upstash-Delay" = Option<String>, Header, description = "Delay before the first attempt (`10s`, `1d10h`)"),
        ("Upstash-Retries" = Option<String>, Header, description = "Retries after a failed attempt"),
        ("Upstash-Method" = Option<String>, Header, description = "HTTP method of the delivery"),
        ("Upstash-Deduplication-Id" = Option<String>, Header, description = "Publishes with the same id store one message"),
        ("Upstash-Callback" = Option<String>, Header, description = "Where the destination's answer is sent")),
    request_body(content = String, description = "The message body, forwarded as is", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = PublishAnswer),
        (status = 202, description = "Deduplicated: the earlier message", body = Published),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
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
        user.id.clone(),
        peer,
        raw,
        uri.query(),
        &headers,
        body,
        Some(queue),
    )
    .await
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("queue {name:?} not found"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upsert {
    queue_name: String,
    #[serde(default)]
    parallelism: Option<i64>,
    #[serde(default)]
    paused: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/v2/queues",
    tag = "queues",
    summary = "Create or update a queue",
    request_body = Upsert,
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn upsert(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body,
) -> Result<Json<Empty>, ApiError> {
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
    Ok(Json(Empty {}))
}

#[utoipa::path(
    get,
    path = "/v2/queues/{name}",
    tag = "queues",
    summary = "A queue",
    params(("name" = String, Path, description = "A queue name")),
    responses(
        (status = 200, description = "The queue", body = QueueView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    match state.engine.reads().queue(&user.id, &name).await? {
        Some(q) => Ok(Json(QueueView::from(&q))),
        None => Err(not_found(&name)),
    }
}

#[utoipa::path(
    get,
    path = "/v2/queues",
    tag = "queues",
    summary = "Every queue",
    responses(
        (status = 200, description = "The queues", body = Vec<QueueView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    let queues = state.engine.reads().queues(&user.id).await?;
    Ok(Json(queues.iter().map(QueueView::from).collect()))
}

#[utoipa::path(
    delete,
    path = "/v2/queues/{name}",
    tag = "queues",
    summary = "Delete a queue and cancel its messages",
    params(("name" = String, Path, description = "A queue name")),
    responses(
        (status = 200, description = "Deleted", body = Cancelled),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    match state.engine.delete_queue(&user.id, &name).await? {
        Some(cancelled) => Ok(Json(Cancelled { cancelled })),
        None => Err(not_found(&name)),
    }
}

async fn set_paused(
    state: &AppState,
    user_id: &str,
    name: &str,
    paused: bool,
) -> Result<Json<Empty>, ApiError> {
    validate_queue_name(name).map_err(ApiError::bad)?;
    if !state.engine.set_queue_paused(user_id, name, paused).await? {
        return Err(not_found(name));
    }
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/v2/queues/{name}/pause",
    tag = "queues",
    summary = "Pause a queue",
    params(("name" = String, Path, description = "A queue name")),
    responses(
        (status = 200, description = "Paused", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    set_paused(&state, &user.id, &name, true).await
}

#[utoipa::path(
    post,
    path = "/v2/queues/{name}/resume",
    tag = "queues",
    summary = "Resume a queue",
    params(("name" = String, Path, description = "A queue name")),
    responses(
        (status = 200, description = "Resumed", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    set_paused(&state, &user.id, &name, false).await
}
