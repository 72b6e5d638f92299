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
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::routes::publish::{header_pairs, read_body};
use crate::views::put_body;
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

pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let all = state.engine.reads().list_schedules(&user.id).await?;
    Ok(Json(Value::Array(all.iter().map(view).collect())))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Target::Schedule(id) = target(&uri) else {
        return Err(not_found(&uri));
    };
    match state.engine.reads().get_schedule(&user.id, id).await? {
        Some(info) => Ok(Json(view(&info))),
        None => Err(schedule_not_found(id)),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Target::Schedule(id) = target(&uri) else {
        return Err(not_found(&uri));
    };
    if state.engine.delete_schedule(&user.id, id).await? {
        Ok(Json(json!({})))
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
fn view(info: &ScheduleInfo) -> Value {
    let s = &info.schedule;
    let spec = &s.spec;
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    put("scheduleId", json!(s.id));
    put("cron", json!(s.cron));
    put("destination", json!(s.destination));
    put("createdAt", json!(s.created_at));
    put("method", json!(spec.method));
    put("header", json!(spec.redact.header_map(&spec.header)));
    put("retries", json!(spec.max_retries));
    put("isPaused", json!(s.paused));
    if let Some(d) = s.delay_secs {
        put("delay", json!(d));
    }
    if let Some(ms) = spec.timeout_ms {
        put("timeout", json!(ms.div_ceil(1000)));
    }
    if let Some(cb) = &spec.callback {
        put("callback", json!(cb));
    }
    if let Some(cb) = &spec.failure_callback {
        put("failureCallback", json!(cb));
    }
    if !spec.callback_header.is_empty() {
        put("callbackHeader", json!(spec.callback_header));
    }
    if !spec.failure_callback_header.is_empty() {
        put("failureCallbackHeader", json!(spec.failure_callback_header));
    }
    if let Some(q) = &s.queue_name {
        put("queueName", json!(q));
    }
    if let Some(ip) = &s.caller_ip {
        // The Python SDK reads callerIP, the JS type says callerIp.
        put("callerIP", json!(ip));
        put("callerIp", json!(ip));
    }
    if let Some(expr) = &spec.retry_delay {
        put("retryDelayExpression", json!(expr));
    }
    if let Some(first) = spec.labels.first() {
        put("label", json!(first));
        put("labels", json!(spec.labels));
    }
    if let Some(fc) = &spec.flow_control {
        put("flowControlKey", json!(fc.key));
        if let Some(p) = fc.parallelism {
            put("parallelism", json!(p));
        }
        if let Some(r) = fc.rate {
            put("rate", json!(r));
        }
        put("period", json!(fc.period));
    }
    if let Some(t) = s.last_fire {
        put("lastScheduleTime", json!(t));
    }
    if let Some(t) = s.next_fire {
        put("nextScheduleTime", json!(t));
    }
    if s.last_fire.is_some() {
        let states: Map<String, Value> = info
            .last_states
            .iter()
            .map(|(id, st)| (id.clone(), json!(FireState::of(*st).as_str())))
            .collect();
        put("lastScheduleStates", Value::Object(states));
    }
    if let Some(e) = &s.last_error {
        put("error", json!(e));
    }
    // Absent when there is none: a replace without a body drops it.
    if !s.body.is_empty() {
        put_body(&mut o, "body", &spec.redact.body(&s.body));
    }
    Value::Object(o)
}
