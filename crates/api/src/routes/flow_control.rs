//! Flow-control keys (`/v2/flowControl`) and `/v2/globalParallelism`.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use qstash_core::flow_control::FlowKeyChange;
use qstash_core::flow_control::MAX_PERIOD_SECS;
use qstash_engine::FlowKeyInfo;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::query::Query;
use crate::{ApiError, AppState};

fn view(info: &FlowKeyInfo) -> Value {
    let (key, runtime) = (&info.key, &info.runtime);
    let l = &key.limits;
    json!({
        "flowControlKey": key.key,
        "waitListSize": info.waiting,
        "parallelismMax": l.parallelism.unwrap_or(0),
        "parallelismCount": runtime.in_flight,
        "rateMax": l.rate.unwrap_or(0),
        "rateCount": runtime.rate_count,
        "ratePeriod": l.period_secs,
        "ratePeriodStart": runtime.period_start / 1000,
        "isPaused": key.paused,
        "isPinnedParallelism": l.pinned_parallelism,
        "isPinnedRate": l.pinned_rate,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query());
    let search = q.get("search").unwrap_or("");
    let keys = state.engine.flow_keys_info(&user.id).await?;
    Ok(Json(Value::Array(
        keys.iter()
            .filter(|info| info.key.key.contains(search))
            .map(view)
            .collect(),
    )))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
    if key.trim().is_empty() {
        return Err(ApiError::BadRequest("the flow-control key is empty".into()));
    }
    state.engine.change_flow_key(user_id, key, change).await?;
    Ok(Json(json!({})))
}

pub async fn pause(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&state, &user.id, &key, FlowKeyChange::Pause).await
}

pub async fn resume(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&state, &user.id, &key, FlowKeyChange::Resume).await
}

pub async fn reset_rate(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
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

pub async fn pin(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
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

pub async fn unpin(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(key): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query());
    let unpin = FlowKeyChange::Unpin {
        parallelism: flag(&q, "parallelism")?,
        rate: flag(&q, "rate")?,
    };
    change(&state, &user.id, &key, unpin).await
}

pub async fn global_parallelism(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Json<Value> {
    let (max, count) = state.engine.global_parallelism(&user.id);
    Json(json!({ "parallelismMax": max, "parallelismCount": count }))
}
