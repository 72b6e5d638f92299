//! Upstash Workflow endpoints (issue 14; shared/spec/WORKFLOW.md): the
//! SDK's lazy fetch of a run's steps, finishing and cancelling runs, and
//! the run-level logs `client.logs` reads. The workflow features this
//! server does not have answer 501 with what is missing, never a silent
//! drop.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qstash_core::workflow::{steps_json, RunFilter, RunState, WaitRequest};
use qstash_store::EndIf;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::dlq::WorkflowSelection;
use crate::routes::publish::{header_pairs, read_body};
use crate::{ApiError, AppState};

/// Most runs one page of logs, or one bulk cancel, covers.
const MAX_COUNT: usize = 1000;

impl From<qstash_engine::WorkflowError> for ApiError {
    fn from(e: qstash_engine::WorkflowError) -> Self {
        use qstash_engine::WorkflowError as E;
        match e {
            E::UnknownRun(_) | E::Ended(..) => Self::BadRequest(e.to_string()),
            E::Invalid(_) => Self::BadRequest(e.to_string()),
            E::NotFound(_) => Self::NotFound(e.to_string()),
            E::Store(e) => e.into(),
        }
    }
}

/// `GET /v2/workflows/runs/{id}`: the run's log for the SDK's lazy fetch;
/// 404 once the run has ended.
pub async fn steps(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.engine.running_steps(&user.id, &run_id).await? {
        Some(steps) => Ok(Json(steps_json(&steps, None))),
        None => Err(ApiError::NotFound(format!(
            "workflow run {run_id} not found or no longer running"
        ))),
    }
}

/// `DELETE /v2/workflows/runs/{id}?cancel=true|false`: the SDK's last call
/// of a finished run (the body is its result), or a cancel. Repeating it
/// answers 200 again.
pub async fn end(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(run_id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(uri.query());
    let cancel = match query.get("cancel") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "cancel must be true or false, got {v:?}"
            )))
        }
    };
    let body = read_body(body, state.config.max_body_bytes).await?;
    let (target, result) = if cancel {
        (RunState::Canceled, None)
    } else {
        (RunState::Success, Some(body))
    };
    match state
        .engine
        .end_run(&user.id, &run_id, EndIf::Running, target, result, None)
        .await?
    {
        Some(_) => Ok(Json(json!({}))),
        None => Err(ApiError::NotFound(format!(
            "workflow run {run_id} not found"
        ))),
    }
}

/// The run filters of a bulk cancel and of the logs.
fn run_filter(query: &Query) -> Result<RunFilter, ApiError> {
    let mut ids = query.all("workflowRunIds");
    ids.extend(query.all("workflowRunId"));
    let state = match query.get("state") {
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state must be one of RUN_STARTED, RUN_SUCCESS, RUN_FAILED, RUN_CANCELED, got {s:?}"
            ))
        })?),
        None => None,
    };
    Ok(RunFilter {
        run_ids: ids,
        url: query.get("workflowUrl").map(String::from),
        url_exact: query.get("workflowUrlExactMatch") == Some("true"),
        label: query.get("label").map(String::from),
        state,
        from_date: query.millis("fromDate")?,
        to_date: query.millis("toDate")?,
    })
}

/// `DELETE /v2/workflows/runs?workflowRunIds=..|workflowUrl=..|label=..|
/// fromDate=..&toDate=..&count=..`: cancels up to `count` (100) running
/// runs that match; answers `{cancelled}`.
pub async fn cancel_many(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(uri.query());
    let mut filter = run_filter(&query)?;
    filter.state = Some(RunState::Running);
    // `count` caps one call, as the SDK documents ("cancels up to count
    // workflow runs per call"); cancelled runs no longer match, so the
    // caller repeats until `cancelled` is 0. A walk that ran out of its
    // scan budget goes on from its cursor, so 0 means none is left.
    let count = query.count(MAX_COUNT)?.unwrap_or(MAX_COUNT);
    let mut before = None;
    let mut cancelled = 0;
    while cancelled < count {
        let page = state
            .engine
            .workflow_runs(&user.id, filter.clone(), before.take(), count - cancelled)
            .await?;
        for run in &page.runs {
            let was = state
                .engine
                .end_run(
                    &user.id,
                    &run.run_id,
                    EndIf::Running,
                    RunState::Canceled,
                    None,
                    None,
                )
                .await?;
            if was == Some(RunState::Running) {
                cancelled += 1;
            }
        }
        match page.next {
            Some(next) if page.runs.is_empty() || cancelled < count => before = Some(next),
            _ => break,
        }
    }
    Ok(Json(json!({ "cancelled": cancelled })))
}

/// `GET /v2/workflows/logs` (and the SDK's `/v2/workflows/events`): runs,
/// newest first, as `client.logs` reads them.
pub async fn logs(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(uri.query());
    let filter = run_filter(&query)?;
    let count = query.count(MAX_COUNT)?.unwrap_or(10);
    let before = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(parse_cursor(c)?),
        None => None,
    };
    let page = state
        .engine
        .workflow_runs(&user.id, filter, before, count)
        .await?;
    // A page may be short and still have a cursor: the walk's budget ran
    // out before `count` runs matched.
    let cursor = match &page.next {
        Some((at, id)) => format!("{at}_{id}"),
        None => String::new(),
    };
    let out = state.engine.workflow_run_logs(&user.id, &page.runs).await?;
    Ok(Json(json!({ "cursor": cursor, "runs": out })))
}

fn parse_cursor(c: &str) -> Result<(i64, String), ApiError> {
    c.split_once('_')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| ApiError::BadRequest(format!("cursor {c:?} is not one this server gave")))
}

/// `POST /v2/wait/{eventId}` (`context.waitForEvent`): the run waits for
/// the event until the body's timeout; the request's headers are those of
/// the step that resumes it.
pub async fn wait(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(event_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let request: WaitRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid wait request: {e}")))?;
    let mut stored = qstash_core::headers::HeaderMap::new();
    for (k, v) in header_pairs(&headers, &[])? {
        qstash_core::headers::insert(&mut stored, &k, &v);
    }
    let waiter = request
        .waiter(&user.id, &event_id, stored, state.engine.now())
        .map_err(ApiError::BadRequest)?;
    state
        .engine
        .policy()
        .check_url(&waiter.url)
        .map_err(ApiError::bad)?;
    state
        .engine
        .policy()
        .check_url(&waiter.timeout_url)
        .map_err(ApiError::bad)?;
    state.engine.add_waiter(waiter).await?;
    Ok(Json(json!({})))
}

/// `POST /v2/notify/{eventId}` and `/v2/notify/{runId}/{eventId}`: resumes
/// the event's waiters with the body as the event data; answers one entry
/// per waiter resumed.
pub async fn notify(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(rest): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (run_id, event_id) = match rest.split_once('/') {
        Some((run, event)) => (Some(run.to_string()), event.to_string()),
        None => (None, rest),
    };
    if event_id.is_empty() || event_id.contains('/') {
        return Err(ApiError::BadRequest(format!(
            "notify takes /v2/notify/{{eventId}} or /v2/notify/{{workflowRunId}}/{{eventId}}, got event {event_id:?}"
        )));
    }
    let event = read_body(body, state.config.max_body_bytes).await?;
    let resumed = state
        .engine
        .notify(&user.id, &event_id, run_id, event)
        .await?;
    Ok(Json(Value::Array(
        resumed
            .into_iter()
            .map(|(w, id)| json!({ "waiter": w.view(), "messageId": id }))
            .collect(),
    )))
}

/// `GET /v2/waiters/{eventId}`.
pub async fn waiters(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(event_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let waiters = state.engine.waiters(&user.id, &event_id).await?;
    Ok(Json(Value::Array(
        waiters.iter().map(|w| w.view()).collect(),
    )))
}

/// `POST /v2/workflows/dlq/resume?dlqIds=…` (`client.dlq.resume`): each
/// failed run continues from its failed step.
pub async fn dlq_resume(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    dlq_again(state, caller, uri, headers, false).await
}

/// `POST /v2/workflows/dlq/restart?dlqIds=…` (`client.dlq.restart`): each
/// failed run starts again from the beginning, as a new run.
pub async fn dlq_restart(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    dlq_again(state, caller, uri, headers, true).await
}

async fn dlq_again(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
    headers: HeaderMap,
    restart: bool,
) -> Result<Json<Value>, ApiError> {
    let raw = Query::parse(uri.query());
    let overrides: Vec<(String, String)> = header_pairs(&headers, &[])?
        .into_iter()
        .filter(|(k, _)| k.starts_with("upstash-"))
        .collect();
    // Checked once, before any selection: a bad header is a 400 that
    // changes nothing, by ids or by filter alike.
    state.engine.check_dlq_overrides(&overrides)?;
    let ids = by_ids(&raw)?;
    let again = async |ids: &[String]| {
        let engine = &state.engine;
        if restart {
            engine.restart_from_dlq(&user.id, ids, &overrides).await
        } else {
            engine.resume_from_dlq(&user.id, ids, &overrides).await
        }
    };
    let (runs, cursor) = if !ids.is_empty() {
        (again(&ids).await?, String::new())
    } else {
        // By filter: one page of the workflow DLQ. Entries that cannot be
        // resumed or restarted (a failure callback's own entry, a run no
        // longer failed) are passed over, not an error for the page.
        let selection = WorkflowSelection::parse(&raw, state.engine.now())?;
        let page = state
            .engine
            .reads()
            .list_dlq(&user.id, selection.query.clone())
            .await?;
        let mut runs = Vec::new();
        for entry in &page.entries {
            use qstash_engine::WorkflowError as E;
            match again(std::slice::from_ref(&entry.dlq_id)).await {
                Ok(done) => runs.extend(done),
                Err(E::Invalid(why) | E::NotFound(why)) => {
                    tracing::debug!(dlq = %entry.dlq_id, %why, "workflow DLQ entry passed over");
                }
                Err(E::UnknownRun(_) | E::Ended(..)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        (runs, selection.cursor(page.cursor))
    };
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| json!({ "workflowRunId": r.run_id, "workflowCreatedAt": r.created_at }))
        .collect();
    Ok(Json(json!({ "workflowRuns": runs, "cursor": cursor })))
}

/// The `dlqIds` a workflow DLQ action names (empty: it selects by
/// filter). Named ids with filters too would silently drop the filters:
/// a 400 (the SDK may send an empty `cursor` with ids).
fn by_ids(raw: &Query) -> Result<Vec<String>, ApiError> {
    let ids = raw.all("dlqIds");
    if raw.get("dlqIds").is_none() {
        return Ok(ids);
    }
    if ids.is_empty() {
        return Err(ApiError::BadRequest(
            "dlqIds is empty: give a value or leave it out".into(),
        ));
    }
    match raw
        .keys()
        .find(|k| !matches!(*k, "dlqIds" | "qstash_token" | "cursor"))
    {
        Some(key) => Err(ApiError::BadRequest(format!(
            "dlqIds cannot be combined with {key}: name the entries or filter them, not both"
        ))),
        None => Ok(ids),
    }
}

/// `DELETE /v2/workflows/dlq?dlqIds=…` or by filter (`client.dlq.delete`).
pub async fn dlq_delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let raw = Query::parse(uri.query());
    let ids = by_ids(&raw)?;
    let (query, selection) = if ids.is_empty() {
        let selection = WorkflowSelection::parse(&raw, state.engine.now())?;
        (selection.query.clone(), Some(selection))
    } else {
        let query = qstash_core::dlq::DlqQuery {
            filter: qstash_core::dlq::DlqFilter {
                dlq_ids: ids.clone(),
                ..Default::default()
            },
            count: ids.len(),
            ..Default::default()
        };
        (query, None)
    };
    let deleted = state.engine.delete_dlq(&user.id, query).await?;
    let cursor = selection
        .map(|s| s.cursor(deleted.cursor))
        .unwrap_or_default();
    Ok(Json(
        json!({ "deleted": deleted.deleted, "cursor": cursor }),
    ))
}

/// `POST /v2/workflows/dlq/callback/{dlqId}` (`client.dlq.retryFailureFunction`).
pub async fn dlq_callback(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(dlq_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state
        .engine
        .retry_failure_function(&user.id, &dlq_id)
        .await?;
    Ok(Json(
        json!({ "workflowRunId": run.run_id, "workflowCreatedAt": run.created_at }),
    ))
}

/// `/v2/workflows/hooks/{userId}/{runId}/{eventId}` (any method; no
/// token, see `auth::HOOKS_PREFIX`): the request, wrapped as the SDK's
/// `waitForWebhook` reads it, resumes the run waiting on the event; if
/// the run does not wait yet, the call is kept for its wait (in order).
/// 404 when the run is unknown or has ended.
pub async fn hook(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((_user, run_id, event_id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    use base64::Engine as _;
    let body = read_body(body, state.config.max_body_bytes).await?;
    let running = state
        .engine
        .workflow_run(&user.id, &run_id)
        .await?
        .is_some_and(|r| r.state == RunState::Running);
    if !running {
        return Err(ApiError::NotFound(format!(
            "no running workflow run {run_id} for this webhook"
        )));
    }
    let mut header = serde_json::Map::new();
    for (k, v) in &headers {
        let entry = header
            .entry(k.as_str().to_string())
            .or_insert_with(|| json!([]));
        if let (Some(list), Ok(v)) = (entry.as_array_mut(), v.to_str()) {
            list.push(json!(v));
        }
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let url = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    let event = json!({
        "method": method.as_str(),
        "header": header,
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
        "proto": proto,
        "host": host,
        "url": url,
    });
    let resumed = state
        .engine
        .notify(
            &user.id,
            &event_id,
            Some(run_id),
            event.to_string().into_bytes(),
        )
        .await?;
    match resumed.first() {
        Some((_, id)) => Ok(Json(json!({ "messageId": id }))),
        None => Ok(Json(json!({ "queued": true }))),
    }
}

/// Workflow features of the SDK this server does not have: a clear 501
/// naming the feature (README.md, "Upstash Workflow", lists them).
pub async fn not_supported(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let feature = if path.starts_with("/v2/workflows/dlq") {
        "this workflow DLQ action"
    } else {
        "this workflow endpoint"
    };
    let body = json!({
        "error": format!("{method} {path}: {feature} is not supported by this server yet (see README.md, Upstash Workflow)"),
    });
    (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response()
}
