//! The dead-letter queue (WIRE.md §3.8): list, get, delete one or many,
//! retry one or many.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qstash_core::dlq::{DlqCursor, DlqEntry, DlqFilter, DlqOrder, DlqQuery};
use qstash_engine::dlq::DlqRetryError;
use serde::Deserialize;

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::logs::count;
use crate::routes::publish::read_body;
use crate::views::{
    self, Deleted, DlqMessageView, DlqPageView, ErrorBody, MessageView, RetriedMessage, RetriedPage,
};
use crate::{ApiError, AppState};

/// Default and maximum page size, as QStash.
const MAX_COUNT: usize = 100;

/// Query keys the DLQ understands; bulk delete and retry reject any other,
/// so a typo never widens a destructive call to the whole DLQ.
const KEYS: [&str; 21] = [
    "messageId",
    "url",
    "workflowUrl",
    "topicName",
    "scheduleId",
    "queueName",
    "fromDate",
    "toDate",
    "responseStatus",
    "callerIp",
    "callerIP",
    "label",
    "flowControlKey",
    "dlqIds",
    "cursor",
    "count",
    "order",
    "qstash_token",
    "source",
    "workflowRunId",
    "workflowCreatedAt",
];

/// The selection of a DLQ call. `strict` rejects unknown keys.
fn query(q: &Query, strict: bool, ids: Vec<String>) -> Result<DlqQuery, ApiError> {
    for key in ["host", "path"] {
        if q.get(key).is_some() {
            return Err(ApiError::BadRequest(format!(
                "the {key} filter is not supported by the DLQ; filter by url instead"
            )));
        }
    }
    if q.get("failureFunctionState").is_some() {
        return Err(ApiError::BadRequest(FAILURE_STATE_UNSUPPORTED.into()));
    }
    // `workflowUrl` (`client.dlq.list` of @upstash/workflow) is the url of
    // a workflow step; both at once would widen the selection to either.
    if q.get("url").is_some() && q.get("workflowUrl").is_some() {
        return Err(ApiError::BadRequest(
            "give url or workflowUrl, not both (they are the same filter)".into(),
        ));
    }
    if strict {
        if let Some(key) = q.keys().find(|k| !KEYS.contains(k)) {
            return Err(ApiError::BadRequest(format!(
                "unknown DLQ filter {key:?}; known filters: {}",
                KEYS[..13].join(", ")
            )));
        }
        // An empty filter would select everything.
        if let Some(key) = KEYS[..14]
            .iter()
            .find(|k| q.get(k).is_some() && q.all(k).is_empty())
        {
            return Err(ApiError::BadRequest(format!(
                "{key} is empty: give a value or leave it out"
            )));
        }
    }
    let mut response_status = Vec::new();
    for s in q.all("responseStatus") {
        response_status.push(s.parse::<u16>().map_err(|_| {
            ApiError::BadRequest(format!("responseStatus must be an HTTP status, got {s:?}"))
        })?);
    }
    let workflow_only = match q.get("source") {
        None => false,
        Some("workflow") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "source must be workflow (only messages of workflow runs), got {other:?}"
            )))
        }
    };
    let order = match q.get("order") {
        None | Some("earliestFirst") => DlqOrder::EarliestFirst,
        Some("latestFirst") => DlqOrder::LatestFirst,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order must be earliestFirst or latestFirst, got {other:?}"
            )))
        }
    };
    // A bulk call's cursor carries its sweep's bound; a list ignores it.
    let cursor = match cursor_param(q) {
        Some(c) => Some(parse_cursor(c)?.0),
        None => None,
    };
    let dlq_ids = [q.all("dlqIds"), ids].concat();
    // Named ids are all acted on unless a count says otherwise.
    let default = if dlq_ids.is_empty() {
        MAX_COUNT
    } else {
        dlq_ids.len()
    };
    let count = count(q, default, default.max(MAX_COUNT))?;
    Ok(DlqQuery {
        filter: DlqFilter {
            dlq_ids,
            message_id: q.all("messageId"),
            url: [q.all("url"), q.all("workflowUrl")].concat(),
            topic_name: q.all("topicName"),
            queue_name: q.all("queueName"),
            schedule_id: q.all("scheduleId"),
            label: q.all("label"),
            flow_control_key: q.all("flowControlKey"),
            caller_ip: [q.all("callerIp"), q.all("callerIP")].concat(),
            response_status,
            from_date: q.millis("fromDate")?,
            to_date: q.millis("toDate")?,
            workflow_only,
            workflow_run_id: q.all("workflowRunId"),
            workflow_created_at: q.millis("workflowCreatedAt")?,
        },
        cursor,
        count,
        order,
    })
}

fn cursor_param(q: &Query) -> Option<&str> {
    q.get("cursor").map(str::trim).filter(|c| !c.is_empty())
}

fn parse_cursor(c: &str) -> Result<(DlqCursor, Option<i64>), ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "invalid cursor {c:?}: pass the cursor of a previous page"
        ))
    };
    let (id, bound) = match c.split_once('.') {
        Some((id, bound)) => (id, Some(bound.parse().map_err(|_| bad())?)),
        None => (c, None),
    };
    Ok((DlqCursor::parse(id).ok_or_else(bad)?, bound))
}

/// A bulk delete or retry pages through the entries that were in the DLQ
/// when its first page was asked for. Its cursor carries that moment
/// (`<dlqId>.<ms>`), so entries that arrive meanwhile, such as a retried
/// message failing again, cannot keep a `while (cursor)` loop going forever.
struct Sweep {
    bound: i64,
}

impl Sweep {
    /// Narrows `q` to the sweep's entries.
    fn begin(raw: &Query, q: &mut DlqQuery, now: i64) -> Result<Self, ApiError> {
        let from_cursor = match cursor_param(raw) {
            Some(c) => parse_cursor(c)?.1,
            None => None,
        };
        let bound = from_cursor.unwrap_or(now);
        q.filter.to_date = Some(q.filter.to_date.map_or(bound, |t| t.min(bound)));
        Ok(Sweep { bound })
    }

    fn cursor(&self, next: Option<String>) -> Option<String> {
        next.map(|id| format!("{id}.{}", self.bound))
    }
}

/// Query keys a workflow DLQ action by filter takes: the SDK's
/// `DLQActionFilterFields` (its `{all: true}` sends only `count` and
/// `cursor`).
const WORKFLOW_KEYS: [&str; 12] = [
    "fromDate",
    "toDate",
    "callerIp",
    "callerIP",
    "label",
    "flowControlKey",
    "workflowUrl",
    "workflowRunId",
    "workflowCreatedAt",
    "count",
    "cursor",
    "qstash_token",
];

const FAILURE_STATE_UNSUPPORTED: &str = "the failureFunctionState filter is not supported by this server (it keeps no failure-function state per DLQ entry); filter by workflowRunId, workflowUrl, workflowCreatedAt, label, flowControlKey, callerIp or dates";

/// The entries a workflow DLQ action by filter (`client.dlq.resume`,
/// `restart`, `delete` with `{filter}` or `{all: true}`) works on: one page
/// of the workflow DLQ (`count`, 100 by default and at most), oldest first,
/// of those that were there when the first page was asked for.
pub(crate) struct WorkflowSelection {
    pub query: DlqQuery,
    sweep: Sweep,
}

impl WorkflowSelection {
    pub fn parse(raw: &Query, now: i64) -> Result<Self, ApiError> {
        if raw.get("failureFunctionState").is_some() {
            return Err(ApiError::BadRequest(FAILURE_STATE_UNSUPPORTED.into()));
        }
        if let Some(key) = raw.keys().find(|k| !WORKFLOW_KEYS.contains(k)) {
            return Err(ApiError::BadRequest(format!(
                "unknown workflow DLQ filter {key:?}; known filters: {}",
                WORKFLOW_KEYS[..9].join(", ")
            )));
        }
        // An empty filter would widen the call.
        if let Some(key) = WORKFLOW_KEYS[..9]
            .iter()
            .find(|k| raw.get(k).is_some() && raw.all(k).is_empty())
        {
            return Err(ApiError::BadRequest(format!(
                "{key} is empty: give a value or leave it out"
            )));
        }
        let cursor = match cursor_param(raw) {
            Some(c) => Some(parse_cursor(c)?.0),
            None => None,
        };
        let mut query = DlqQuery {
            filter: DlqFilter {
                url: raw.all("workflowUrl"),
                label: raw.all("label"),
                flow_control_key: raw.all("flowControlKey"),
                caller_ip: [raw.all("callerIp"), raw.all("callerIP")].concat(),
                from_date: raw.millis("fromDate")?,
                to_date: raw.millis("toDate")?,
                workflow_only: true,
                workflow_run_id: raw.all("workflowRunId"),
                workflow_created_at: raw.millis("workflowCreatedAt")?,
                ..Default::default()
            },
            cursor,
            count: count(raw, MAX_COUNT, MAX_COUNT)?,
            order: DlqOrder::EarliestFirst,
        };
        let sweep = Sweep::begin(raw, &mut query, now)?;
        Ok(Self { query, sweep })
    }

    /// The cursor to answer: empty when the sweep is over.
    pub fn cursor(&self, next: Option<String>) -> String {
        self.sweep.cursor(next).unwrap_or_default()
    }
}

/// A DlqMessage (WIRE.md §4.2): the message, redacted as everywhere, plus
/// the DLQ id and the last response.
fn entry(e: &DlqEntry) -> DlqMessageView {
    let workflow = e.message.spec.workflow.as_ref();
    let (response_body, response_body_base64) = match std::str::from_utf8(&e.response.body) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(views::base64(&e.response.body))),
    };
    DlqMessageView {
        message: MessageView::of(&e.message),
        dlq_id: e.dlq_id.clone(),
        response_status: e.response.status,
        response_header: e.response.header.clone(),
        response_body,
        response_body_base64,
        error: e.error.clone(),
        workflow_run_id: workflow.map(|t| t.run_id.clone()),
        workflow_url: workflow.map(|t| t.url.clone().unwrap_or_else(|| e.message.spec.url.clone())),
    }
}

#[utoipa::path(
    get,
    path = "/v2/dlq",
    tag = "dlq",
    summary = "A page of the dead-letter queue, newest first",
    params(("cursor" = Option<String>, Query, description = "Where the previous page ended"),
        ("count" = Option<u32>, Query, description = "Entries per page (at most 100)"),
        ("messageId" = Option<String>, Query, description = "Only this message"),
        ("url" = Option<String>, Query, description = "Only this destination"),
        ("fromDate" = Option<i64>, Query, description = "Only entries at or after (unix ms)"),
        ("toDate" = Option<i64>, Query, description = "Only entries at or before (unix ms)"),
        ("responseStatus" = Option<u16>, Query, description = "Only this last status")),
    responses(
        (status = 200, description = "A page", body = DlqPageView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<DlqPageView>, ApiError> {
    let q = query(&Query::parse(uri.query()), false, vec![])?;
    let page = state.engine.reads().list_dlq(&user.id, q).await?;
    Ok(Json(DlqPageView {
        messages: page.entries.iter().map(entry).collect(),
        cursor: page.cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/v2/dlq/{dlqId}",
    tag = "dlq",
    summary = "A DLQ entry",
    params(("dlqId" = String, Path, description = "A DLQ entry id")),
    responses(
        (status = 200, description = "The entry", body = DlqMessageView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<DlqMessageView>, ApiError> {
    match state.engine.reads().get_dlq(&user.id, &id).await? {
        Some(e) => Ok(Json(entry(&e))),
        None => Err(not_found(&id)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("dlq message {id} not found"))
}

fn by_id(id: &str) -> DlqQuery {
    DlqQuery {
        filter: DlqFilter {
            dlq_ids: vec![id.to_string()],
            ..Default::default()
        },
        count: 1,
        ..Default::default()
    }
}

#[utoipa::path(
    delete,
    path = "/v2/dlq/{dlqId}",
    tag = "dlq",
    summary = "Delete a DLQ entry",
    params(("dlqId" = String, Path, description = "A DLQ entry id")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn delete_one(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let result = state.engine.delete_dlq(&user.id, by_id(&id)).await?;
    if result.deleted == 0 {
        return Err(not_found(&id));
    }
    Ok(Json(Deleted {
        deleted: result.deleted,
        cursor: None,
    }))
}

/// The legacy JSON body of a bulk delete or retry (the Python SDK sends
/// it). Unknown fields are refused: `{"dlqIDs": [...]}` must not be read as
/// "no ids", which means every entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdsBody {
    dlq_ids: Vec<String>,
}

/// What a bulk call's body selects: nothing (no body), or the ids it names.
enum BodyIds {
    Absent,
    Ids(Vec<String>),
}

fn body_ids(bytes: &[u8]) -> Result<BodyIds, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(BodyIds::Absent);
    }
    let body: IdsBody = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body: {e}; expected {{\"dlqIds\": [\"<dlqId>\", ...]}}"
        ))
    })?;
    // No id holds a NUL, and PostgreSQL cannot compare one (no_nul.rs
    // refuses it in the query).
    if body.dlq_ids.iter().any(|id| id.contains('\0')) {
        return Err(ApiError::BadRequest("dlqIds holds a NUL character".into()));
    }
    Ok(BodyIds::Ids(body.dlq_ids))
}

impl BodyIds {
    /// `{"dlqIds": []}` names no entry: it acts on none, never on all.
    fn names_none(&self) -> bool {
        matches!(self, BodyIds::Ids(ids) if ids.is_empty())
    }

    fn into_ids(self) -> Vec<String> {
        match self {
            BodyIds::Absent => Vec::new(),
            BodyIds::Ids(ids) => ids,
        }
    }
}

/// `DELETE /v2/dlq`: ids from the query or a JSON body, or filters with
/// `count` and `cursor`; no selection at all deletes a page of everything.
#[utoipa::path(
    delete,
    path = "/v2/dlq",
    tag = "dlq",
    summary = "Delete the entries named or matched (a page at a time)",
    params(("dlqIds" = Option<Vec<String>>, Query, description = "These entries"),
        ("cursor" = Option<String>, Query, description = "Where the previous page ended"),
        ("count" = Option<u32>, Query, description = "Entries per page (at most 100)"),
        ("messageId" = Option<String>, Query, description = "Only this message"),
        ("url" = Option<String>, Query, description = "Only this destination"),
        ("fromDate" = Option<i64>, Query, description = "Only entries at or after (unix ms)"),
        ("toDate" = Option<i64>, Query, description = "Only entries at or before (unix ms)"),
        ("responseStatus" = Option<u16>, Query, description = "Only this last status")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn delete_many(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
    body: Body,
) -> Result<Json<Deleted>, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let legacy = body_ids(&bytes)?;
    let raw = Query::parse(uri.query());
    if legacy.names_none() && raw.get("dlqIds").is_none() {
        return Ok(Json(Deleted {
            deleted: 0,
            cursor: None,
        }));
    }
    let mut q = query(&raw, true, legacy.into_ids())?;
    let sweep = Sweep::begin(&raw, &mut q, state.engine.now())?;
    let result = state.engine.delete_dlq(&user.id, q).await?;
    Ok(Json(Deleted {
        deleted: result.deleted,
        cursor: sweep.cursor(result.cursor),
    }))
}

/// The retry request's `Upstash-*` headers, which override the settings of
/// the failed message.
fn overrides(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("upstash-"))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn retry_error(e: DlqRetryError) -> ApiError {
    match e {
        DlqRetryError::Header(e) => ApiError::bad(e),
        DlqRetryError::Plan(e) => e.into(),
        DlqRetryError::Store(e) => e.into(),
    }
}

/// `POST /v2/dlq/retry/{dlqId}`: 201 with the new message id.
#[utoipa::path(
    post,
    path = "/v2/dlq/retry/{dlqId}",
    tag = "dlq",
    summary = "Publish a DLQ entry again (Upstash-* headers override its settings)",
    params(("dlqId" = String, Path, description = "A DLQ entry id")),
    responses(
        (status = 201, description = "The new message", body = RetriedMessage),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn retry_one(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(entry) = state.engine.reads().get_dlq(&user.id, &id).await? else {
        return Err(not_found(&id));
    };
    let retried = state
        .engine
        .retry_dlq(
            &user.id,
            vec![entry],
            &overrides(&headers),
            Some(crate::client_ip::text(peer.ip())),
        )
        .await
        .map_err(retry_error)?;
    match retried.into_iter().next().and_then(|r| r.message_id) {
        Some(message_id) => {
            Ok((StatusCode::CREATED, Json(RetriedMessage { message_id })).into_response())
        }
        // Retried or deleted by another request meanwhile.
        None => Err(not_found(&id)),
    }
}

/// `POST /v2/dlq/retry?dlqIds=…` or with filters, `count` and `cursor`.
#[utoipa::path(
    post,
    path = "/v2/dlq/retry",
    tag = "dlq",
    summary = "Publish the entries named or matched again (a page at a time)",
    params(("dlqIds" = Option<Vec<String>>, Query, description = "These entries"),
        ("cursor" = Option<String>, Query, description = "Where the previous page ended"),
        ("count" = Option<u32>, Query, description = "Entries per page (at most 100)"),
        ("messageId" = Option<String>, Query, description = "Only this message"),
        ("url" = Option<String>, Query, description = "Only this destination"),
        ("fromDate" = Option<i64>, Query, description = "Only entries at or after (unix ms)"),
        ("toDate" = Option<i64>, Query, description = "Only entries at or before (unix ms)"),
        ("responseStatus" = Option<u16>, Query, description = "Only this last status")),
    responses(
        (status = 201, description = "The new messages", body = RetriedPage),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn retry_many(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let legacy = body_ids(&bytes)?;
    let raw = Query::parse(uri.query());
    if legacy.names_none() && raw.get("dlqIds").is_none() {
        let none = RetriedPage {
            responses: Vec::new(),
            cursor: None,
        };
        return Ok((StatusCode::CREATED, Json(none)).into_response());
    }
    let mut q = query(&raw, true, legacy.into_ids())?;
    let sweep = Sweep::begin(&raw, &mut q, state.engine.now())?;
    let page = state.engine.reads().list_dlq(&user.id, q).await?;
    let retried = state
        .engine
        .retry_dlq(
            &user.id,
            page.entries,
            &overrides(&headers),
            Some(crate::client_ip::text(peer.ip())),
        )
        .await
        .map_err(retry_error)?;
    let answer = RetriedPage {
        responses: retried
            .into_iter()
            .filter_map(|r| r.message_id)
            .map(|message_id| RetriedMessage { message_id })
            .collect(),
        cursor: sweep.cursor(page.cursor),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
