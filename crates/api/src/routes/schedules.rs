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

use crate::auth::Caller;
use crate::routes::publish::{header_pairs, read_body};
use crate::views::{self, Empty, ErrorBody, ScheduleCreated, ScheduleView};
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
) -> Result<Json<Empty>, ApiError> {
    match target(&uri) {
        Target::Pause(id) => pause(&state, &user.id, id).await,
        Target::Resume(id) => resume(&state, &user.id, id).await,
        _ => Err(not_found(&uri)),
    }
}

/// What a POST below `/v2/schedules/` answers.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum PostAnswer {
    Created(ScheduleCreated),
    Done(Empty),
}

/// POST `{id}/pause` and `{id}/resume` (the OpenAPI's method), or create.
pub async fn post(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PostAnswer>, ApiError> {
    let done = |r: Result<Json<Empty>, ApiError>| r.map(|Json(e)| Json(PostAnswer::Done(e)));
    match target(&uri) {
        Target::Pause(id) => done(pause(&state, &user.id, id).await),
        Target::Resume(id) => done(resume(&state, &user.id, id).await),
        Target::Schedule(raw) | Target::Other(raw) => {
            let raw = raw.to_string();
            let Json(created) =
                create(state, user.id.clone(), peer, &raw, &uri, &headers, body).await?;
            Ok(Json(PostAnswer::Created(created)))
        }
    }
}

#[utoipa::path(
    method(post, patch),
    path = "/v2/schedules/{scheduleId}/pause",
    tag = "schedules",
    summary = "Pause a schedule (the SDKs send PATCH, the upstream OpenAPI says POST)",
    params(("scheduleId" = String, Path, description = "A schedule id")),
    responses(
        (status = 200, description = "Paused", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn pause(state: &AppState, user_id: &str, id: &str) -> Result<Json<Empty>, ApiError> {
    set_paused(state, user_id, id, true).await
}

#[utoipa::path(
    method(post, patch),
    path = "/v2/schedules/{scheduleId}/resume",
    tag = "schedules",
    summary = "Resume a paused schedule (the SDKs send PATCH, the upstream OpenAPI says POST)",
    params(("scheduleId" = String, Path, description = "A schedule id")),
    responses(
        (status = 200, description = "Resumed", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn resume(state: &AppState, user_id: &str, id: &str) -> Result<Json<Empty>, ApiError> {
    set_paused(state, user_id, id, false).await
}

async fn set_paused(
    state: &AppState,
    user_id: &str,
    id: &str,
    paused: bool,
) -> Result<Json<Empty>, ApiError> {
    match state
        .engine
        .set_schedule_paused(user_id, id, paused)
        .await?
    {
        Some(_) => Ok(Json(Empty {})),
        None => Err(schedule_not_found(id)),
    }
}

/// Creates the schedule, or replaces the one `Upstash-Schedule-Id` names.
#[utoipa::path(
    post,
    path = "/v2/schedules/{destination}",
    tag = "schedules",
    summary = "Create a schedule (or replace the one Upstash-Schedule-Id names)",
    params(("destination" = String, Path, description = "A URL (`https://...`) or a URL group name"),
        ("Upstash-Cron" = String, Header, description = "When it fires: a cron expression, `CRON_TZ=` allowed"),
        ("Upstash-Schedule-Id" = Option<String>, Header, description = "Replace this schedule (or create it with this id)"),
        ("Upstash-Delay" = Option<String>, Header, description = "Delay of each fire's message (`10s`, `1d10h`)"),
        ("Upstash-Retries" = Option<String>, Header, description = "Retries after a failed attempt"),
        ("Upstash-Method" = Option<String>, Header, description = "HTTP method of the deliveries"),
        ("Upstash-Queue-Name" = Option<String>, Header, description = "Enqueue each fire's message to this queue"),
        ("Upstash-Callback" = Option<String>, Header, description = "Where the destination's answer is sent")),
    request_body(content = String, description = "The body of every fire's message, forwarded as is", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored", body = ScheduleCreated),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn create(
    state: AppState,
    user_id: String,
    peer: SocketAddr,
    raw: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<ScheduleCreated>, ApiError> {
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
        caller_ip: Some(crate::client_ip::text(peer.ip())),
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
    Ok(Json(ScheduleCreated { schedule_id: id }))
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

#[cfg(test)]
mod tests {
    //! Pins the Schedule object's wire (WIRE.md §4.3) and the answers of
    //! create, pause and resume.

    use qstash_core::message::{MessageSpec, MessageState};
    use qstash_core::redact::Redaction;
    use serde_json::json;

    use super::*;

    fn schedule(spec: MessageSpec) -> Schedule {
        Schedule {
            id: "scd_1".into(),
            user_id: "u".into(),
            cron: "*/10 * * * *".into(),
            destination: "http://127.0.0.1:1/x".into(),
            spec,
            body: Vec::new(),
            queue_name: None,
            delay_secs: None,
            caller_ip: None,
            created_at: 1000,
            paused: false,
            next_fire: None,
            last_fire: None,
            last_messages: Vec::new(),
            last_error: None,
        }
    }

    #[test]
    fn a_bare_schedule_omits_every_optional_key() {
        let spec = MessageSpec {
            method: "POST".into(),
            max_retries: 3,
            ..Default::default()
        };
        let info = ScheduleInfo {
            schedule: schedule(spec),
            last_states: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(view(&info)).unwrap(),
            json!({
                "scheduleId": "scd_1", "cron": "*/10 * * * *",
                "destination": "http://127.0.0.1:1/x", "createdAt": 1000,
                "method": "POST", "header": {}, "retries": 3, "isPaused": false,
            })
        );
    }

    #[test]
    fn a_full_schedule_has_every_key_with_the_sdks_spelling() {
        let h = |k: &str, v: &str| [(k.to_string(), vec![v.to_string()])].into();
        let spec = MessageSpec {
            method: "GET".into(),
            header: h("Test-Header", "test-value"),
            max_retries: 5,
            retry_delay: Some("1000".into()),
            timeout_ms: Some(1500),
            callback: Some("http://127.0.0.1:1/cb".into()),
            failure_callback: Some("http://127.0.0.1:1/fcb".into()),
            callback_header: h("Upstash-Callback-Retries", "1"),
            failure_callback_header: h("Upstash-Failure-Callback-Retries", "2"),
            labels: vec!["a".into()],
            redact: Redaction::default(),
            flow_control: Some(qstash_core::flow_control::FlowControl {
                key: "k".into(),
                parallelism: None,
                rate: Some(4),
                period: 60,
            }),
            ..Default::default()
        };
        let mut s = schedule(spec);
        s.body = vec![0xff, 0x00];
        s.queue_name = Some("q".into());
        s.delay_secs = Some(10);
        s.caller_ip = Some("127.0.0.1".into());
        s.paused = true;
        s.last_fire = Some(7000);
        s.next_fire = Some(8000);
        s.last_messages = vec!["msg_1".into()];
        s.last_error = Some("url group gone".into());
        let info = ScheduleInfo {
            schedule: s,
            last_states: vec![("msg_1".into(), MessageState::Delivered)],
        };
        assert_eq!(
            serde_json::to_value(view(&info)).unwrap(),
            json!({
                "scheduleId": "scd_1", "cron": "*/10 * * * *",
                "destination": "http://127.0.0.1:1/x", "createdAt": 1000,
                "method": "GET", "header": {"Test-Header": ["test-value"]},
                "retries": 5, "isPaused": true, "delay": 10, "timeout": 2,
                "callback": "http://127.0.0.1:1/cb", "failureCallback": "http://127.0.0.1:1/fcb",
                "callbackHeader": {"Upstash-Callback-Retries": ["1"]},
                "failureCallbackHeader": {"Upstash-Failure-Callback-Retries": ["2"]},
                "queueName": "q", "callerIP": "127.0.0.1", "callerIp": "127.0.0.1",
                "retryDelayExpression": "1000", "label": "a", "labels": ["a"],
                "flowControlKey": "k", "rate": 4, "period": 60,
                "lastScheduleTime": 7000, "nextScheduleTime": 8000,
                "lastScheduleStates": {"msg_1": "SUCCESS"},
                "error": "url group gone", "bodyBase64": "/wA=",
            })
        );
    }

    #[test]
    fn create_answers_the_id_and_pause_an_empty_object() {
        let created = PostAnswer::Created(ScheduleCreated {
            schedule_id: "scd_1".into(),
        });
        assert_eq!(
            serde_json::to_value(created).unwrap(),
            json!({"scheduleId": "scd_1"})
        );
        let done = PostAnswer::Done(Empty {});
        assert_eq!(serde_json::to_value(done).unwrap(), json!({}));
    }
}
