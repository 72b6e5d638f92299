//! Flow-control keys (`/v2/flowControl`) and `/v2/globalParallelism`.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use qstash_core::flow_control::FlowKeyChange;
use qstash_core::flow_control::MAX_PERIOD_SECS;
use qstash_engine::FlowKeyInfo;

use crate::auth::Caller;
use crate::query::Query;
use crate::views::{Empty, ErrorBody, FlowKeyView, GlobalParallelism};
use crate::{ApiError, AppState};

fn view(info: &FlowKeyInfo) -> FlowKeyView {
    let (key, runtime) = (&info.key, &info.runtime);
    let l = &key.limits;
    FlowKeyView {
        flow_control_key: key.key.clone(),
        wait_list_size: info.waiting,
        parallelism_max: l.parallelism.unwrap_or(0),
        parallelism_count: runtime.in_flight,
        rate_max: l.rate.unwrap_or(0),
        rate_count: runtime.rate_count,
        rate_period: l.period_secs,
        rate_period_start: runtime.period_start / 1000,
        is_paused: key.paused,
        is_pinned_parallelism: l.pinned_parallelism,
        is_pinned_rate: l.pinned_rate,
    }
}

#[utoipa::path(
    get,
    path = "/v2/flowControl",
    tag = "flow control",
    summary = "Every flow-control key",
    params(("search" = Option<String>, Query, description = "Only keys containing this")),
    responses(
        (status = 200, description = "The keys", body = Vec<FlowKeyView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Vec<FlowKeyView>>, ApiError> {
    let q = Query::parse(uri.query());
    let search = q.get("search").unwrap_or("");
    let keys = state.engine.flow_keys_info(&user.id).await?;
    Ok(Json(
        keys.iter()
            .filter(|info| info.key.key.contains(search))
            .map(view)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/v2/flowControl/{key}",
    tag = "flow control",
    summary = "A flow-control key",
    params(("key" = String, Path, description = "A flow-control key")),
    responses(
        (status = 200, description = "The key", body = FlowKeyView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<FlowKeyView>, ApiError> {
    match state.engine.flow_key_info(&user.id, &key).await? {
        Some(info) => Ok(Json(view(&info))),
        None => Err(ApiError::NotFound(format!(
            "flow-control key {key:?} not found"
        ))),
    }
}

async fn change(
    state: &AppState,
    user_id: &str,
    key: &str,
    change: FlowKeyChange,
) -> Result<Json<Empty>, ApiError> {
    if key.trim().is_empty() {
        return Err(ApiError::BadRequest("the flow-control key is empty".into()));
    }
    state.engine.change_flow_key(user_id, key, change).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/v2/flowControl/{key}/pause",
    tag = "flow control",
    summary = "Pause a key",
    params(("key" = String, Path, description = "A flow-control key")),
    responses(
        (status = 200, description = "Paused", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    change(&state, &user.id, &key, FlowKeyChange::Pause).await
}

#[utoipa::path(
    post,
    path = "/v2/flowControl/{key}/resume",
    tag = "flow control",
    summary = "Resume a key",
    params(("key" = String, Path, description = "A flow-control key")),
    responses(
        (status = 200, description = "Resumed", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    change(&state, &user.id, &key, FlowKeyChange::Resume).await
}

#[utoipa::path(
    post,
    path = "/v2/flowControl/{key}/resetRate",
    tag = "flow control",
    summary = "Start a new rate period now",
    params(("key" = String, Path, description = "A flow-control key")),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn reset_rate(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    change(&state, &user.id, &key, FlowKeyChange::ResetRate).await
}

fn positive(q: &Query, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be an integer from 1 to {max}, got {v:?}"
            ))),
        })
        .transpose()
}

#[utoipa::path(
    post,
    path = "/v2/flowControl/{key}/pin",
    tag = "flow control",
    summary = "Pin limits over what publishes say",
    params(("key" = String, Path, description = "A flow-control key"),
        ("parallelism" = Option<u32>, Query, description = "Most in flight"),
        ("rate" = Option<u32>, Query, description = "Most starts per period"),
        ("period" = Option<u64>, Query, description = "Seconds of a rate period")),
    responses(
        (status = 200, description = "Pinned", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn pin(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
    uri: Uri,
) -> Result<Json<Empty>, ApiError> {
    let q = Query::parse(uri.query());
    let parallelism = positive(&q, "parallelism", u32::MAX as u64)?.map(|n| n as u32);
    let rate = positive(&q, "rate", u32::MAX as u64)?.map(|n| n as u32);
    let period_secs = positive(&q, "period", MAX_PERIOD_SECS)?;
    if parallelism.is_none() && rate.is_none() && period_secs.is_none() {
        return Err(ApiError::BadRequest(
            "pin needs parallelism, rate or period".into(),
        ));
    }
    let pin = FlowKeyChange::Pin {
        parallelism,
        rate,
        period_secs,
    };
    change(&state, &user.id, &key, pin).await
}

fn flag(q: &Query, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

#[utoipa::path(
    post,
    path = "/v2/flowControl/{key}/unpin",
    tag = "flow control",
    summary = "Unpin limits",
    params(("key" = String, Path, description = "A flow-control key"),
        ("parallelism" = Option<bool>, Query, description = "Unpin parallelism"),
        ("rate" = Option<bool>, Query, description = "Unpin the rate")),
    responses(
        (status = 200, description = "Unpinned", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn unpin(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
    uri: Uri,
) -> Result<Json<Empty>, ApiError> {
    let q = Query::parse(uri.query());
    let unpin = FlowKeyChange::Unpin {
        parallelism: flag(&q, "parallelism")?,
        rate: flag(&q, "rate")?,
    };
    change(&state, &user.id, &key, unpin).await
}

#[utoipa::path(
    get,
    path = "/v2/globalParallelism",
    tag = "flow control",
    summary = "The caller's queued and flow-controlled deliveries in flight, and their cap",
    responses(
        (status = 200, description = "Max and count", body = GlobalParallelism),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn global_parallelism(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Json<GlobalParallelism> {
    let (max, count) = state.engine.global_parallelism(&user.id);
    Json(GlobalParallelism {
        parallelism_max: max,
        parallelism_count: count,
    })
}
