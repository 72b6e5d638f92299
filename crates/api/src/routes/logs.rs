//! `GET /v2/events` (key `events`, what both SDKs call) and `GET /v2/logs`
//! (key `logs`, the OpenAPI name): the log of every state change, newest
//! first, with cursor paging.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use qstash_core::log::{LogCursor, LogFilter};
use qstash_core::message::LogState;

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::messages::MessageFilterParams;
use crate::views::{ErrorBody, EventsPage, LogEntryView, LogsPage};
use crate::{ApiError, AppState};

const DEFAULT_COUNT: usize = 100;
/// The Python SDK documents 1000 as the maximum; larger counts are capped.
const MAX_COUNT: usize = 1000;

/// The query filters of a log listing (WIRE.md §3.9), documented once.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogParams {
    /// Where the previous page ended.
    cursor: Option<String>,
    /// Entries per page (default 100, at most 1000).
    count: Option<u32>,
    /// Only this message (repeatable).
    #[param(rename = "messageId")]
    message_id: Option<Vec<String>>,
    /// Only these messages (repeatable).
    #[param(rename = "messageIds")]
    message_ids: Option<Vec<String>>,
    /// Only these states (repeatable): CREATED, ACTIVE, RETRY, ERROR,
    /// IN_PROGRESS, DELIVERED, FAILED, CANCEL_REQUESTED, CANCELED.
    state: Option<Vec<String>>,
    /// Only entries at or after (unix ms).
    #[param(rename = "fromDate")]
    from_date: Option<i64>,
    /// Only entries at or before (unix ms).
    #[param(rename = "toDate")]
    to_date: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v2/events",
    tag = "logs",
    summary = "The log of every state change, newest first (the SDKs' key, `events`)",
    params(LogParams, MessageFilterParams),
    responses(
        (status = 200, description = "A page", body = EventsPage),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn events(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<EventsPage>, ApiError> {
    let (events, cursor) = list(state, caller, uri).await?;
    Ok(Json(EventsPage { events, cursor }))
}

#[utoipa::path(
    get,
    path = "/v2/logs",
    tag = "logs",
    summary = "The log of every state change, newest first (the OpenAPI's key, `logs`)",
    params(LogParams, MessageFilterParams),
    responses(
        (status = 200, description = "A page", body = LogsPage),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn logs(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<LogsPage>, ApiError> {
    let (logs, cursor) = list(state, caller, uri).await?;
    Ok(Json(LogsPage { logs, cursor }))
}

/// A page of entries and the cursor of the next one.
async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<(Vec<LogEntryView>, Option<String>), ApiError> {
    let q = Query::parse(uri.query());
    let filter = LogFilter {
        message_ids: [q.all("messageId"), q.all("messageIds")].concat(),
        states: states(&q)?,
        url: q.all("url"),
        topic_name: q.all("topicName"),
        queue_name: q.all("queueName"),
        schedule_id: q.all("scheduleId"),
        label: q.all("label"),
        flow_control_key: q.all("flowControlKey"),
        caller_ip: [q.all("callerIp"), q.all("callerIP")].concat(),
        host: q.all("host"),
        path: q.all("path"),
        from_date: q.millis("fromDate")?,
        to_date: q.millis("toDate")?,
    };
    let cursor = match q.get("cursor").map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(LogCursor::parse(c).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid cursor {c:?}: pass the cursor of a previous page"
            ))
        })?),
        None => None,
    };
    let count = count(&q, DEFAULT_COUNT, MAX_COUNT)?;
    let page = state
        .engine
        .reads()
        .list_logs(&user.id, filter, cursor, count)
        .await?;
    let entries = page.entries.iter().map(LogEntryView::of).collect();
    Ok((entries, page.cursor.map(|c| c.to_string())))
}

/// `count` from 1 up; larger than `max` is capped.
pub fn count(q: &Query, default: usize, max: usize) -> Result<usize, ApiError> {
    match q.get("count") {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(ApiError::BadRequest(format!(
                "count must be a positive integer, got {v:?}"
            ))),
        },
    }
}

/// `state` values; `IN_PROGRESS` means ACTIVE, RETRY or ERROR.
fn states(q: &Query) -> Result<Vec<LogState>, ApiError> {
    let mut out = Vec::new();
    for s in q.all("state") {
        let upper = s.to_ascii_uppercase();
        match upper.as_str() {
            "IN_PROGRESS" => out.extend([LogState::Active, LogState::Retry, LogState::Error]),
            "CANCELLED" => out.push(LogState::Canceled),
            other => out.push(LogState::parse(other).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid state {s:?}: expected one of CREATED, ACTIVE, RETRY, ERROR, \
                     IN_PROGRESS, DELIVERED, FAILED, CANCEL_REQUESTED, CANCELED"
                ))
            })?),
        }
    }
    Ok(out)
}
