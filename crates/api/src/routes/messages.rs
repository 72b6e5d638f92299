//! `GET /v2/messages/{id}`, and cancelling one or many messages.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use qstash_core::message::{CancelRequest, MessageFilter};
use serde::Deserialize;

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::publish::read_body;
use crate::views::{self, BulkCancelled, Cancelled, ErrorBody, MessageView};
use crate::{ApiError, AppState};

/// Most messages one bulk cancel with `count` may touch.
const MAX_CANCEL_COUNT: usize = 500;

#[utoipa::path(
    get,
    path = "/v2/messages/{id}",
    tag = "messages",
    summary = "A message waiting or in flight",
    params(("id" = String, Path, description = "A message id (msg_...)")),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<views::MessageView>, ApiError> {
    match state.engine.reads().get_message(&user.id, &id).await? {
        Some(m) => Ok(Json(views::MessageView::of(&m))),
        None => Err(ApiError::NotFound(format!("message {id} not found"))),
    }
}

#[utoipa::path(
    delete,
    path = "/v2/messages/{id}",
    tag = "messages",
    summary = "Cancel a message",
    params(("id" = String, Path, description = "A message id (msg_...)")),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn cancel_one(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<views::Cancelled>, ApiError> {
    let request = CancelRequest {
        message_ids: vec![id.clone()],
        ..Default::default()
    };
    let result = state.engine.cancel(&user.id, request).await?;
    if result.cancelled == 0 {
        return Err(ApiError::NotFound(format!("message {id} not found")));
    }
    Ok(Json(views::Cancelled {
        cancelled: result.cancelled,
    }))
}

/// The query filters of a bulk cancel (WIRE.md §3.4) that take a list.
const LIST_FILTERS: [&str; 11] = [
    "messageIds",
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
];
const DATE_FILTERS: [&str; 2] = ["fromDate", "toDate"];
const PAGING_KEYS: [&str; 3] = ["count", "cursor", "qstash_token"];

/// No selection means "cancel everything", so a misspelt or empty filter
/// must be an error rather than silently widen the call to every message.
fn check_selection(q: &Query) -> Result<(), ApiError> {
    let filters = || LIST_FILTERS.iter().chain(&DATE_FILTERS);
    let known = |k: &str| filters().chain(&PAGING_KEYS).any(|f| *f == k);
    if let Some(key) = q.keys().find(|k| !known(k)) {
        let names: Vec<&str> = filters().copied().collect();
        return Err(ApiError::BadRequest(format!(
            "unknown filter {key:?}; known filters: {}",
            names.join(", ")
        )));
    }
    if let Some(key) = LIST_FILTERS
        .iter()
        .find(|k| q.get(k).is_some() && q.all(k).is_empty())
    {
        return Err(ApiError::BadRequest(format!(
            "{key} is empty: give a value or leave it out"
        )));
    }
    Ok(())
}

/// The legacy JSON body of a bulk cancel (the Python SDK sends it).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    /// Absent cancels by the filters (or everything); an empty list
    /// cancels nothing.
    message_ids: Option<Vec<String>>,
    url: Option<String>,
    topic_name: Option<String>,
    queue_name: Option<String>,
    schedule_id: Option<String>,
    /// WIRE.md §3.4 spells it `callerIP`; `callerIp` is accepted too.
    #[serde(alias = "callerIP")]
    caller_ip: Option<String>,
    from_date: Option<i64>,
    to_date: Option<i64>,
}

impl CancelBody {
    /// A NUL is in no id or filter value (and PostgreSQL cannot compare
    /// one), so a body holding one is refused, as the query is (no_nul.rs).
    fn refuse_nul(&self) -> Result<(), ApiError> {
        let texts = [
            ("url", &self.url),
            ("topicName", &self.topic_name),
            ("queueName", &self.queue_name),
            ("scheduleId", &self.schedule_id),
            ("callerIP", &self.caller_ip),
        ];
        let ids = self
            .message_ids
            .iter()
            .flatten()
            .map(|id| ("messageIds", id));
        let values = texts
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .chain(ids);
        for (key, value) in values {
            if value.contains('\0') {
                return Err(ApiError::BadRequest(format!("{key} holds a NUL character")));
            }
        }
        Ok(())
    }

    fn has_no_filter(&self) -> bool {
        self.url.is_none()
            && self.topic_name.is_none()
            && self.queue_name.is_none()
            && self.schedule_id.is_none()
            && self.caller_ip.is_none()
            && self.from_date.is_none()
            && self.to_date.is_none()
    }
}

/// The message filters of a bulk cancel, the live list and the logs,
/// documented once (`qstash_core::message::MessageFilter`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MessageFilterParams {
    /// Only these destinations (repeatable).
    url: Option<Vec<String>>,
    /// Only these URL groups (repeatable).
    #[param(rename = "topicName")]
    topic_name: Option<Vec<String>>,
    /// Only these queues (repeatable).
    #[param(rename = "queueName")]
    queue_name: Option<Vec<String>>,
    /// Only these schedules (repeatable).
    #[param(rename = "scheduleId")]
    schedule_id: Option<Vec<String>>,
    /// Only these labels (repeatable).
    label: Option<Vec<String>>,
    /// Only these flow-control keys (repeatable).
    #[param(rename = "flowControlKey")]
    flow_control_key: Option<Vec<String>>,
    /// Only these publisher addresses (repeatable; `callerIP` too).
    #[param(rename = "callerIp")]
    caller_ip: Option<Vec<String>>,
    /// Only these destination hosts (repeatable).
    host: Option<Vec<String>>,
    /// Only these destination paths (repeatable).
    path: Option<Vec<String>>,
}

/// The query of a bulk cancel (WIRE.md §3.4), documented once.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CancelParams {
    /// These messages (repeatable).
    #[param(rename = "messageIds")]
    message_ids: Option<Vec<String>>,
    /// At most this many (1 to 500); a `cursor` then says more match.
    count: Option<u32>,
    /// Only messages created at or after (unix ms).
    #[param(rename = "fromDate")]
    from_date: Option<i64>,
    /// Only messages created at or before (unix ms).
    #[param(rename = "toDate")]
    to_date: Option<i64>,
}

/// Both forms: query (`messageIds=…` repeated, or filters with `count`) and
/// the legacy JSON body. No ids and no filter cancel everything; unknown
/// or empty filters are a 400.
#[utoipa::path(
    delete,
    path = "/v2/messages",
    tag = "messages",
    summary = "Cancel the messages named or matched; no ids and no filter cancel every message",
    params(CancelParams, MessageFilterParams),
    request_body(content = Option<CancelBody>, description = "The legacy form: ids and filters in a JSON body", content_type = "application/json"),
    responses(
        (status = 200, description = "Cancelled", body = BulkCancelled),
        (status = "4XX", description = "The request is wrong (an unknown or empty filter is a 400), unauthenticated or over a limit; nothing was cancelled", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was cancelled", body = ErrorBody),
    )
)]
pub async fn cancel_many(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
    body: Body,
) -> Result<Json<BulkCancelled>, ApiError> {
    let q = Query::parse(uri.query());
    check_selection(&q)?;
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let legacy: CancelBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    legacy.refuse_nul()?;
    // `cancel_many([])` names no message: it cancels none, not all.
    let names_none = legacy.message_ids.as_ref().is_some_and(Vec::is_empty)
        && legacy.has_no_filter()
        && q.keys().all(|k| k == "qstash_token");
    if names_none {
        return Ok(Json(BulkCancelled {
            cancelled: 0,
            cursor: None,
        }));
    }
    let one = |v: Option<String>| v.into_iter().collect::<Vec<_>>();
    let mut filter = MessageFilter {
        url: q.all("url"),
        topic_name: q.all("topicName"),
        queue_name: q.all("queueName"),
        schedule_id: q.all("scheduleId"),
        label: q.all("label"),
        flow_control_key: q.all("flowControlKey"),
        caller_ip: [q.all("callerIp"), q.all("callerIP")].concat(),
        host: q.all("host"),
        path: q.all("path"),
        from_date: q.millis("fromDate")?.or(legacy.from_date),
        to_date: q.millis("toDate")?.or(legacy.to_date),
    };
    filter.url.extend(one(legacy.url));
    filter.topic_name.extend(one(legacy.topic_name));
    filter.queue_name.extend(one(legacy.queue_name));
    filter.schedule_id.extend(one(legacy.schedule_id));
    filter.caller_ip.extend(one(legacy.caller_ip));
    let request = CancelRequest {
        message_ids: [q.all("messageIds"), legacy.message_ids.unwrap_or_default()].concat(),
        filter,
        count: q.count(MAX_CANCEL_COUNT)?,
    };
    let result = state.engine.cancel(&user.id, request).await?;
    Ok(Json(BulkCancelled {
        cancelled: result.cancelled,
        cursor: result.more_after,
    }))
}
