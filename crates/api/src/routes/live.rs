//! `GET /v2/messages` (an extension of this server, for the console): the
//! caller's live messages (pending, delayed, retrying, in flight), newest
//! first, paged with `cursor` and `count`, with the filters of a bulk
//! cancel. `withTotal=true` adds how many match, by kind, so a bulk cancel
//! can be confirmed with its size.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use qstash_core::live::LiveKind;
use qstash_store::{LiveCounts, LiveCursor, MessageFilter};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::logs::count;
use crate::views;
use crate::{ApiError, AppState};

const DEFAULT_COUNT: usize = 25;
const MAX_COUNT: usize = 100;
/// Counting stops here; a larger set answers `"capped": true`.
pub const COUNT_CAP: u64 = 10_000;

const KEYS: [&str; 16] = [
    "url",
    "topicName",
    "queueName",
    "scheduleId",
    "label",
    "flowControlKey",
    "callerIp",
    "callerIP",
    "host",
    "path",
    "fromDate",
    "toDate",
    "cursor",
    "count",
    "withTotal",
    "qstash_token",
];

pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query());
    if let Some(key) = q.keys().find(|k| !KEYS.contains(k)) {
        return Err(ApiError::BadRequest(format!(
            "unknown filter {key:?}; known filters: {}",
            KEYS[..12].join(", ")
        )));
    }
    let filter = filter(&q)?;
    let cursor = match q.get("cursor").map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(LiveCursor::parse(c).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid cursor {c:?}: pass the cursor of a previous page"
            ))
        })?),
        None => None,
    };
    let count = count(&q, DEFAULT_COUNT, MAX_COUNT)?;
    let engine = &state.engine;
    let page = engine
        .live_messages(&user.id, filter.clone(), cursor, count)
        .await?;
    let now = engine.now();
    let messages: Vec<Value> = page
        .messages
        .iter()
        .map(|m| {
            let mut v = views::message(m);
            let kind = LiveKind::of(m, now).unwrap_or(LiveKind::Waiting);
            v["state"] = json!(kind.as_str());
            v["nextDeliveryTime"] = json!(m.due_at);
            v
        })
        .collect();
    let mut answer = json!({ "messages": messages });
    if let Some(c) = page.cursor {
        answer["cursor"] = json!(c.to_string());
    }
    match q.get("withTotal") {
        None | Some("false") => {}
        Some("true") => {
            let counts = engine.live_counts(&user.id, filter, COUNT_CAP).await?;
            answer["total"] = counts_view(&counts);
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "withTotal must be true or false, got {other:?}"
            )))
        }
    }
    Ok(Json(answer))
}

fn filter(q: &Query) -> Result<MessageFilter, ApiError> {
    Ok(MessageFilter {
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
    })
}

/// `{"all", "waiting", "delayed", "retrying", "inFlight", "capped"}`.
pub fn counts_view(c: &LiveCounts) -> Value {
    json!({
        "all": c.total(),
        "waiting": c.waiting,
        "delayed": c.delayed,
        "retrying": c.retrying,
        "inFlight": c.in_flight,
        "capped": c.capped,
    })
}
