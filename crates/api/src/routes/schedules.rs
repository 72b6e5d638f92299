//! `/v2/schedules`: create (or replace), get, list, delete, pause, resume.
//!
//! Everything under `/v2/schedules/` is one route: a create carries its
//! destination raw in the path (`/v2/schedules/https://host/x`), which may
//! itself end in `/pause`, so the handlers tell the operations apart by the
//! shape of the raw path (ids never contain `/`).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use qstash_core::destination::{Destination, ParsedDestination};
use qstash_core::publish::PublishOptions;
use qstash_core::schedule::ScheduleInfo;
use qstash_core::schedule::{schedule_id, validate_schedule_id, CronExpr, FireState, Schedule};
use qstash_engine::schedules::fire_request;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::routes::publish::{header_pairs, read_body};
use crate::views::{self, Empty, ErrorBody, ScheduleView};
use crate::{ApiError, AppState};

const PREFIX: &str = "/v2/schedules/";

/// What a path below `/v2/schedules/` names.
enum Target<'a> {
    Schedule(&'a str),
    Pause(&'a str),
    Resume(&'a str),
    /// Anything else: a destination (POST only).
    Other(&'a str),
}

fn target(uri: &Uri) -> Target<'_> {
    let rest = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let single = |s: &str| !s.is_empty() && !s.contains('/');
    match rest.rsplit_once('/') {
        Some((id, "pause")) if single(id) => Target::Pause(id),
        Some((id, "resume")) if single(id) => Target::Resume(id),
        _ if single(rest) => Target::Schedule(rest),
        _ => Target::Other(rest),
    }
}

#[utoipa::path(
    get,
    path = "/v2/schedules",
    tag = "schedules",
    summary = "Every schedule, oldest first",
    responses(
        (status = 200, description = "The schedules", body = Vec<ScheduleView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    let all = state.engine.reads().list_schedules(&user.id).await?;
    Ok(Json(all.iter().map(view).collect()))
}

#[utoipa::path(
    get,
    path = "/v2/schedules/{scheduleId}",
    tag = "schedules",
    summary = "A schedule",
    params(("scheduleId" = String, Path, description = "A schedule id")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<ScheduleView>, ApiError> {
    let Target::Schedule(id) = target(&uri) else {
        return Err(not_found(&uri));
    };
    match state.engine.reads().get_schedule(&user.id, id).await? {
        Some(info) => Ok(Json(view(&info))),
        None => Err(schedule_not_found(id)),
    }
}

#[utoipa::path(
    delete,
    path = "/v2/schedules/{scheduleId}",
    tag = "schedules",
    summary = "Delete a schedule",
    params(("scheduleId" = String, Path, description = "A schedule id")),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Empty>, ApiError> {
    let Target::Schedule(id) = target(&uri) else {
        return Err(not_found(&uri));
    };
    if state.engine.delete_schedule(&user.id, id).await? {
        Ok(Json(Empty {}))
    } else {
        Err(schedule_not_found(id))
    }
}

/// PATCH `{id}/pause` and `{id}/resume`, as both SDKs send them.
pub async fn patch(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    match target(&uri) {
        Target::Pause(id) => set_paused(&state, &user.id, id, true).await,
        Target::Resume(id) => set_paused(&state, &user.id, id, false).await,
        _ => Err(not_found(&uri)),
    }
}

/// POST `{id}/pause` and `{id}/resume` (the OpenAPI's method), or create.
pub async fn post(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    match target(&uri) {
        Target::Pause(id) => set_paused(&state, &user.id, id, true).await,
        Target::Resume(id) => set_paused(&state, &user.id, id, false).await,
        Target::Schedule(raw) | Target::Other(raw) => {
            let raw = raw.to_string();
            create(state, user.id, peer, &raw, &uri, &headers, body).await
        }
    }
}

async fn set_paused(
    state: &AppState,
    user_id: &str,
    id: &str,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    match state
        .engine
        .set_schedule_paused(user_id, id, paused)
        .await?
    {
        Some(_) => Ok(Json(json!({}))),
        None => Err(schedule_not_found(id)),
    }
}

async fn create(
    state: AppState,
    user_id: String,
    peer: SocketAddr,
    raw: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let parsed = ParsedDestination::parse(raw, uri.query()).map_err(ApiError::bad)?;
    let pairs = header_pairs(headers, &parsed.query_settings)?;
    let now = state.engine.now();
    let options =
        PublishOptions::from_headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now)
            .map_err(ApiError::bad)?;
    let cron = CronExpr::parse_firing(options.cron.as_deref().unwrap_or(""), now)
        .map_err(ApiError::bad)?;
    let id = match &options.schedule_id {
        Some(id) => {
            validate_schedule_id(id).map_err(ApiError::BadRequest)?;
            id.clone()
        }
        None => schedule_id(),
    };
    if let Some(queue) = &options.queue_name {
        // The one rule for queue names, the same as enqueue's.
        qstash_core::queue::validate_queue_name(queue)
            .map_err(|e| ApiError::bad(e).within("invalid Upstash-Queue-Name header"))?;
    }
    let body = read_body(body, state.config.max_body_bytes).await?;
    let mut spec = options.spec;
    spec.schedule_id = Some(id.clone());
    let schedule = Schedule {
        id: id.clone(),
        user_id,
        cron: cron.as_str().to_string(),
        destination: match parsed.destination {
            Destination::Url(url) => url,
            Destination::UrlGroup(name) => name,
        },
        spec,
        body,
        queue_name: options.queue_name,
        delay_secs: options.delay_secs,
        caller_ip: Some(peer.ip().to_string()),
        created_at: now,
        paused: false,
        next_fire: cron.next_after(now),
        last_fire: None,
        last_messages: Vec::new(),
        last_error: None,
    };
    // Plan one fire now, so a destination that cannot take messages (an
    // unknown URL group, a queue that cannot be used) is refused here,
    // with nothing stored, instead of failing at every tick.
    state.engine.plan(&fire_request(&schedule, now)).await?;
    state.engine.put_schedule(schedule).await?;
    Ok(Json(json!({ "scheduleId": id })))
}

fn schedule_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("schedule {id} not found"))
}

fn not_found(uri: &Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}

/// The Schedule object (WIRE.md §4.3), redacted like every read path.
fn view(info: &ScheduleInfo) -> ScheduleView {
    let s = &info.schedule;
    let spec = &s.spec;
    let non_empty = |h: &views::Headers| (!h.is_empty()).then(|| h.clone());
    let fc = spec.flow_control.as_ref();
    // Absent when there is none: a replace without a body drops it.
    let body = (!s.body.is_empty()).then(|| spec.redact.body(&s.body));
    let (body, body_base64) = match body.as_deref().map(std::str::from_utf8) {
        Some(Ok(text)) => (Some(text.to_string()), None),
        Some(Err(_)) => (None, body.as_deref().map(views::base64)),
        None => (None, None),
    };
    ScheduleView {
        schedule_id: s.id.clone(),
        cron: s.cron.clone(),
        destination: s.destination.clone(),
        created_at: s.created_at,
        method: spec.method.clone(),
        header: spec.redact.header_map(&spec.header),
        retries: spec.max_retries,
        is_paused: s.paused,
        delay: s.delay_secs,
        timeout: spec.timeout_ms.map(|ms| ms.div_ceil(1000)),
        callback: spec.callback.clone(),
        failure_callback: spec.failure_callback.clone(),
        callback_header: non_empty(&spec.callback_header),
        failure_callback_header: non_empty(&spec.failure_callback_header),
        queue_name: s.queue_name.clone(),
        caller_ip_upper: s.caller_ip.clone(),
        caller_ip: s.caller_ip.clone(),
        retry_delay_expression: spec.retry_delay.clone(),
        label: spec.labels.first().cloned(),
        labels: (!spec.labels.is_empty()).then(|| spec.labels.clone()),
        flow_control_key: fc.map(|f| f.key.clone()),
        parallelism: fc.and_then(|f| f.parallelism),
        rate: fc.and_then(|f| f.rate),
        period: fc.map(|f| f.period),
        last_schedule_time: s.last_fire,
        next_schedule_time: s.next_fire,
        last_schedule_states: s.last_fire.map(|_| {
            info.last_states
                .iter()
                .map(|(id, st)| (id.clone(), FireState::of(*st).as_str().to_string()))
                .collect()
        }),
        error: s.last_error.clone(),
        body,
        body_base64,
    }
}
