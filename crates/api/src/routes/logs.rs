//! `GET /v2/events` (key `events`, what both SDKs call) and `GET /v2/logs`
//! (key `logs`, the OpenAPI name): the log of every state change, newest
//! first, with cursor paging.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qstash_core::log::{LogCursor, LogEntry, LogFilter};
use qstash_core::message::LogState;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::query::Query;
use crate::{ApiError, AppState};

const DEFAULT_COUNT: usize = 100;
/// The Python SDK documents 1000 as the maximum; larger counts are capped.
const MAX_COUNT: usize = 1000;

pub async fn events(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    list(state, caller, uri, "events").await
}

pub async fn logs(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    list(state, caller, uri, "logs").await
}

async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
    key: &str,
) -> Result<Json<Value>, ApiError> {
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
    let entries: Vec<Value> = page.entries.iter().map(entry).collect();
    let mut answer = json!({ key: entries });
    if let Some(c) = page.cursor {
        answer["cursor"] = json!(c.to_string());
    }
    Ok(Json(answer))
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

/// One LogEntry (WIRE.md §4.6): the state change plus the message, with
/// its header and body redacted as everywhere else.
fn entry(e: &LogEntry) -> Value {
    let m = &e.message;
    let s = &m.spec;
    let mut o = Map::new();
    o.insert("time".into(), json!(e.time));
    o.insert("messageId".into(), json!(m.id));
    o.insert("state".into(), json!(e.state.as_str()));
    let mut opt = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(key.into(), v);
        }
    };
    opt("error", e.error.as_ref().map(|v| json!(v)));
    opt("nextDeliveryTime", e.next_delivery_time.map(|v| json!(v)));
    opt("topicName", s.topic_name.as_ref().map(|v| json!(v)));
    opt("endpointName", s.endpoint_name.as_ref().map(|v| json!(v)));
    opt("queueName", s.queue_name.as_ref().map(|v| json!(v)));
    opt("scheduleId", s.schedule_id.as_ref().map(|v| json!(v)));
    opt("callback", s.callback.as_ref().map(|v| json!(v)));
    opt(
        "failureCallback",
        s.failure_callback.as_ref().map(|v| json!(v)),
    );
    opt(
        "callbackHeaders",
        (!s.callback_header.is_empty()).then(|| json!(s.callback_header)),
    );
    opt(
        "failureCallbackHeaders",
        (!s.failure_callback_header.is_empty()).then(|| json!(s.failure_callback_header)),
    );
    opt("timeout", s.timeout_ms.map(|v| json!(v)));
    // The Python SDK reads retryDelayExpr, the OpenAPI says retryDelayExpression.
    opt("retryDelayExpr", s.retry_delay.as_ref().map(|v| json!(v)));
    opt(
        "retryDelayExpression",
        s.retry_delay.as_ref().map(|v| json!(v)),
    );
    opt("callerIP", s.caller_ip.as_ref().map(|v| json!(v)));
    opt("label", s.labels.first().map(|v| json!(v)));
    opt("labels", (!s.labels.is_empty()).then(|| json!(s.labels)));
    if let Some(r) = &e.response {
        o.insert("responseStatus".into(), json!(r.status));
        o.insert("responseHeader".into(), json!(r.header));
        o.insert("responseBody".into(), json!(STANDARD.encode(&r.body)));
    }
    if let Some(fc) = &s.flow_control {
        o.insert("flowControlKey".into(), json!(fc.key));
        if let Some(p) = fc.parallelism {
            o.insert("parallelism".into(), json!(p));
        }
        if let Some(r) = fc.rate {
            o.insert("rate".into(), json!(r));
        }
        o.insert("period".into(), json!(fc.period));
    }
    o.insert("url".into(), json!(s.url));
    o.insert("method".into(), json!(s.method));
    o.insert("maxRetries".into(), json!(s.max_retries));
    o.insert("header".into(), json!(s.redact.header_map(&s.header)));
    o.insert(
        "body".into(),
        json!(STANDARD.encode(s.redact.body(&m.body))),
    );
    o.insert("createdAt".into(), json!(m.created_at));
    o.insert("notBefore".into(), json!(m.not_before));
    Value::Object(o)
}
