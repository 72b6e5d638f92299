//! `GET /v2/messages` (an extension of this server, for the console): the
//! caller's live messages (pending, delayed, retrying, in flight), newest
//! first, paged with `cursor` and `count`, with the filters of a bulk
//! cancel. `withTotal=true` adds how many match, by kind, so a bulk cancel
//! can be confirmed with its size.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use qstash_core::live::LiveKind;
use qstash_store::{LiveCursor, MessageFilter};

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::logs::count;
use crate::routes::messages::MessageFilterParams;
use crate::views::{CountsView, ErrorBody, LiveMessageView, LivePage, MessageView};
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

/// The filters of the live list (those of a bulk cancel) and its paging.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LiveParams {
    /// Where the previous page ended.
    cursor: Option<String>,
    /// Messages per page (default 25, at most 100).
    count: Option<u32>,
    /// `true` adds how many messages match, by kind.
    #[param(rename = "withTotal")]
    with_total: Option<bool>,
    /// Only messages created at or after (unix ms).
    #[param(rename = "fromDate")]
    from_date: Option<i64>,
    /// Only messages created at or before (unix ms).
    #[param(rename = "toDate")]
    to_date: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v2/messages",
    tag = "messages",
    summary = "Live messages (waiting, delayed, retrying, in flight), newest first (an extension of this server)",
    params(LiveParams, MessageFilterParams),
    responses(
        (status = 200, description = "A page", body = LivePage),
        (status = "4XX", description = "The request is wrong (an unknown filter is a 400), unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<LivePage>, ApiError> {
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
    let messages = page
        .messages
        .iter()
        .map(|m| LiveMessageView {
            message: MessageView::of(m),
            state: LiveKind::of(m, now).unwrap_or(LiveKind::Waiting).as_str(),
            next_delivery_time: m.due_at,
        })
        .collect();
    let total = match q.get("withTotal") {
        None | Some("false") => None,
        Some("true") => {
            let counts = engine.live_counts(&user.id, filter, COUNT_CAP).await?;
            Some(CountsView::from(&counts))
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "withTotal must be true or false, got {other:?}"
            )))
        }
    };
    Ok(Json(LivePage {
        messages,
        cursor: page.cursor.map(|c| c.to_string()),
        total,
    }))
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
