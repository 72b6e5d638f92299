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
use qstash_core::workflow::{RunFilter, RunState, WaitRequest};
use qstash_store::EndIf;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::dlq::WorkflowSelection;
use crate::routes::publish::{header_pairs, read_body};
use crate::views::{
    Cancelled, Empty, ErrorBody, HookAnswer, HookQueued, HookResumed, NotifiedView, RunsPage,
    StepView, WaiterView, WorkflowDlqDeleted, WorkflowRunRef, WorkflowRunsView,
};
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
#[utoipa::path(
    get,
    path = "/v2/workflows/runs/{workflowRunId}",
    tag = "workflow",
    summary = "A running run's log (the SDK's lazy fetch)",
    params(("workflowRunId" = String, Path, description = "A run id (wfr_...)")),
    responses(
        (status = 200, description = "The log, oldest first", body = Vec<StepView>),
        (status = "4XX", description = "Unknown or ended run (404), or the request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn steps(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(run_id): Path<String>,
) -> Result<Json<Vec<StepView>>, ApiError> {
    match state.engine.running_steps(&user.id, &run_id).await? {
        Some(steps) => Ok(Json(steps.iter().map(StepView::from).collect())),
        None => Err(ApiError::NotFound(format!(
            "workflow run {run_id} not found or no longer running"
        ))),
    }
}

/// `DELETE /v2/workflows/runs/{id}?cancel=true|false`: the SDK's last call
/// of a finished run (the body is its result), or a cancel. Repeating it
/// answers 200 again.
#[utoipa::path(
    delete,
    path = "/v2/workflows/runs/{workflowRunId}",
    tag = "workflow",
    summary = "Finish a run (the body is its result) or cancel it; repeatable",
    params(("workflowRunId" = String, Path, description = "A run id (wfr_...)"),
        ("cancel" = Option<bool>, Query, description = "`true` cancels the run instead of finishing it")),
    request_body(content = String, description = "The run's result", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Ended", body = Empty),
        (status = "4XX", description = "Unknown run (404), or the request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn end(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(run_id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<Json<Empty>, ApiError> {
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
        Some(_) => Ok(Json(Empty {})),
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

/// The run filters of a bulk cancel and of the logs, documented once.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RunParams {
    /// These runs (repeatable).
    #[param(rename = "workflowRunIds")]
    workflow_run_ids: Option<Vec<String>>,
    /// This run (repeatable).
    #[param(rename = "workflowRunId")]
    workflow_run_id: Option<Vec<String>>,
    /// Runs whose URL starts with this (is this, with
    /// `workflowUrlExactMatch=true`).
    #[param(rename = "workflowUrl")]
    workflow_url: Option<String>,
    #[param(rename = "workflowUrlExactMatch")]
    workflow_url_exact_match: Option<bool>,
    /// Runs with this label.
    label: Option<String>,
    /// RUN_STARTED, RUN_SUCCESS, RUN_FAILED or RUN_CANCELED.
    state: Option<String>,
    /// Runs created at or after (unix ms).
    #[param(rename = "fromDate")]
    from_date: Option<i64>,
    /// Runs created at or before (unix ms).
    #[param(rename = "toDate")]
    to_date: Option<i64>,
    /// At most this many runs (1 to 1000).
    count: Option<u32>,
}

/// `DELETE /v2/workflows/runs?workflowRunIds=..|workflowUrl=..|label=..|
/// fromDate=..&toDate=..&count=..`: cancels up to `count` (100) running
/// runs that match; answers `{cancelled}`.
#[utoipa::path(
    delete,
    path = "/v2/workflows/runs",
    tag = "workflow",
    summary = "Cancel up to `count` running runs that match (repeat until it answers 0)",
    params(RunParams),
    responses(
        (status = 200, description = "How many runs were cancelled", body = Cancelled),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full", body = ErrorBody),
    )
)]
pub async fn cancel_many(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<Cancelled>, ApiError> {
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
    Ok(Json(Cancelled {
        cancelled: cancelled as u64,
    }))
}

/// `GET /v2/workflows/logs`: runs, newest first, as `client.logs` reads
/// them.
#[utoipa::path(
    get,
    path = "/v2/workflows/logs",
    tag = "workflow",
    summary = "Runs, newest first, with their steps (`client.logs`)",
    params(RunParams, ("cursor" = Option<String>, Query, description = "Where the previous page ended")),
    responses(
        (status = 200, description = "A page (`count` defaults to 10)", body = RunsPage),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn logs(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<RunsPage>, ApiError> {
    run_page(state, caller, uri).await.map(Json)
}

/// `GET /v2/workflows/events`: the same, at the path the SDK calls.
#[utoipa::path(
    get,
    path = "/v2/workflows/events",
    tag = "workflow",
    summary = "The same as /v2/workflows/logs, at the path the SDK calls",
    params(RunParams, ("cursor" = Option<String>, Query, description = "Where the previous page ended")),
    responses(
        (status = 200, description = "A page (`count` defaults to 10)", body = RunsPage),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn events(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<RunsPage>, ApiError> {
    run_page(state, caller, uri).await.map(Json)
}

async fn run_page(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<RunsPage, ApiError> {
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
    let runs = state.engine.workflow_run_logs(&user.id, &page.runs).await?;
    Ok(RunsPage { cursor, runs })
}

fn parse_cursor(c: &str) -> Result<(i64, String), ApiError> {
    c.split_once('_')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| ApiError::BadRequest(format!("cursor {c:?} is not one this server gave")))
}

/// The body of a wait (documentation of `WaitRequest`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WaitBody {
    /// Where the run resumes when the event comes.
    url: String,
    /// Seconds, or a duration (`7d`); a week when absent, a year at most.
    #[schema(value_type = Option<serde_json::Value>)]
    timeout: Option<Value>,
    /// Where the run resumes on timeout (`url` when absent).
    #[schema(rename = "timeoutUrl")]
    timeout_url: Option<String>,
    #[schema(rename = "timeoutHeaders")]
    timeout_headers: Option<std::collections::HashMap<String, Vec<String>>>,
    /// The SDK's step document (a JSON object).
    #[schema(value_type = serde_json::Value)]
    step: Value,
}

/// `POST /v2/wait/{eventId}` (`context.waitForEvent`): the run waits for
/// the event until the body's timeout; the request's headers are those of
/// the step that resumes it.
#[utoipa::path(
    post,
    path = "/v2/wait/{eventId}",
    tag = "workflow",
    summary = "A run waits for an event (`context.waitForEvent`)",
    params(("eventId" = String, Path, description = "The event"),
        ("Upstash-Workflow-RunId" = String, Header, description = "The waiting run")),
    request_body = WaitBody,
    responses(
        (status = 200, description = "The run waits", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn wait(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(event_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Empty>, ApiError> {
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
    Ok(Json(Empty {}))
}

/// `POST /v2/notify/{eventId}` and `/v2/notify/{runId}/{eventId}`: resumes
/// the event's waiters with the body as the event data; answers one entry
/// per waiter resumed.
pub async fn notify(
    state: State<AppState>,
    caller: Caller,
    Path(rest): Path<String>,
    body: Body,
) -> Result<Json<Vec<NotifiedView>>, ApiError> {
    match rest.split_once('/') {
        Some((run, event)) => {
            let path = Path((run.to_string(), event.to_string()));
            notify_run(state, caller, path, body).await
        }
        None => notify_all(state, caller, Path(rest), body).await,
    }
}

#[utoipa::path(
    post,
    path = "/v2/notify/{eventId}",
    tag = "workflow",
    summary = "Resume every run waiting for the event (`client.notify`)",
    params(("eventId" = String, Path, description = "The event")),
    request_body(content = String, description = "The event data", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The waiters resumed", body = Vec<NotifiedView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn notify_all(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(event_id): Path<String>,
    body: Body,
) -> Result<Json<Vec<NotifiedView>>, ApiError> {
    resume_waiters(&state, &user.id, None, event_id, body).await
}

#[utoipa::path(
    post,
    path = "/v2/notify/{workflowRunId}/{eventId}",
    tag = "workflow",
    summary = "Resume one run waiting for the event; kept for its wait if it does not wait yet",
    params(("workflowRunId" = String, Path, description = "The run"),
        ("eventId" = String, Path, description = "The event")),
    request_body(content = String, description = "The event data", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The waiters resumed", body = Vec<NotifiedView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn notify_run(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((run_id, event_id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Vec<NotifiedView>>, ApiError> {
    resume_waiters(&state, &user.id, Some(run_id), event_id, body).await
}

async fn resume_waiters(
    state: &AppState,
    user_id: &str,
    run_id: Option<String>,
    event_id: String,
    body: Body,
) -> Result<Json<Vec<NotifiedView>>, ApiError> {
    if event_id.is_empty() || event_id.contains('/') {
        return Err(ApiError::BadRequest(format!(
            "notify takes /v2/notify/{{eventId}} or /v2/notify/{{workflowRunId}}/{{eventId}}, got event {event_id:?}"
        )));
    }
    let event = read_body(body, state.config.max_body_bytes).await?;
    let resumed = state
        .engine
        .notify(user_id, &event_id, run_id, event)
        .await?;
    Ok(Json(
        resumed
            .into_iter()
            .map(|(w, id)| NotifiedView {
                waiter: WaiterView::from(&w),
                message_id: id,
            })
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/v2/waiters/{eventId}",
    tag = "workflow",
    summary = "The runs waiting for an event (`client.getWaiters`)",
    params(("eventId" = String, Path, description = "The event")),
    responses(
        (status = 200, description = "The waiters", body = Vec<WaiterView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn waiters(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(event_id): Path<String>,
) -> Result<Json<Vec<WaiterView>>, ApiError> {
    let waiters = state.engine.waiters(&user.id, &event_id).await?;
    Ok(Json(waiters.iter().map(WaiterView::from).collect()))
}

/// `POST /v2/workflows/dlq/resume?dlqIds=…` (`client.dlq.resume`): each
/// failed run continues from its failed step.
#[utoipa::path(
    post,
    path = "/v2/workflows/dlq/resume",
    tag = "workflow",
    summary = "Failed runs continue from their failed step (`client.dlq.resume`)",
    params(("dlqIds" = Option<Vec<String>>, Query, description = "The DLQ entries of failed steps (repeatable); without them, the filters of `DELETE /v2/workflows/dlq` select one page"),
        ("cursor" = Option<String>, Query, description = "Where the previous page ended"),
        ("Upstash-Retries" = Option<String>, Header, description = "Retries of the step delivered again")),
    responses(
        (status = 200, description = "The runs", body = WorkflowRunsView),
        (status = "4XX", description = "An entry is unknown or not a workflow step, or the request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn dlq_resume(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<WorkflowRunsView>, ApiError> {
    dlq_again(state, caller, uri, headers, false).await
}

/// `POST /v2/workflows/dlq/restart?dlqIds=…` (`client.dlq.restart`): each
/// failed run starts again from the beginning, as a new run.
#[utoipa::path(
    post,
    path = "/v2/workflows/dlq/restart",
    tag = "workflow",
    summary = "Failed runs start again from the beginning, as new runs (`client.dlq.restart`)",
    params(("dlqIds" = Option<Vec<String>>, Query, description = "The DLQ entries of failed steps (repeatable); without them, the filters of `DELETE /v2/workflows/dlq` select one page"),
        ("cursor" = Option<String>, Query, description = "Where the previous page ended"),
        ("Upstash-Retries" = Option<String>, Header, description = "Retries of the new runs' steps")),
    responses(
        (status = 200, description = "The runs", body = WorkflowRunsView),
        (status = "4XX", description = "An entry is unknown or not a workflow step, or the request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn dlq_restart(
    state: State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<WorkflowRunsView>, ApiError> {
    dlq_again(state, caller, uri, headers, true).await
}

async fn dlq_again(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
    headers: HeaderMap,
    restart: bool,
) -> Result<Json<WorkflowRunsView>, ApiError> {
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
    Ok(Json(WorkflowRunsView {
        workflow_runs: runs.iter().map(WorkflowRunRef::from).collect(),
        cursor,
    }))
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
#[utoipa::path(
    delete,
    path = "/v2/workflows/dlq",
    tag = "workflow",
    summary = "Delete DLQ entries by id or by filter, a page at a time (`client.dlq.delete`)",
    params(
        ("dlqIds" = Option<Vec<String>>, Query, description = "The entries (repeatable); without them, the filters select one page"),
        ("cursor" = Option<String>, Query, description = "Where the previous page ended"),
        ("count" = Option<u32>, Query, description = "Entries per page, 100 at most"),
        ("workflowRunId" = Option<String>, Query, description = "Filter: the run"),
        ("workflowUrl" = Option<String>, Query, description = "Filter: the workflow's URL"),
        ("all" = Option<bool>, Query, description = "Select every entry, a page at a time"),
    ),
    responses(
        (status = 200, description = "How many were deleted, and where the next page starts (empty on the last)", body = WorkflowDlqDeleted),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn dlq_delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    uri: Uri,
) -> Result<Json<WorkflowDlqDeleted>, ApiError> {
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
    Ok(Json(WorkflowDlqDeleted {
        deleted: deleted.deleted,
        cursor,
    }))
}

/// `POST /v2/workflows/dlq/callback/{dlqId}` (`client.dlq.retryFailureFunction`).
#[utoipa::path(
    post,
    path = "/v2/workflows/dlq/callback/{dlqId}",
    tag = "workflow",
    summary = "Send a failed run's failure callback again (`client.dlq.retryFailureFunction`)",
    params(("dlqId" = String, Path, description = "The DLQ entry of the failed step")),
    responses(
        (status = 200, description = "The run", body = WorkflowRunRef),
        (status = "4XX", description = "The entry is unknown or not a workflow step, or the request is wrong, unauthenticated or over a limit; nothing was changed", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was changed", body = ErrorBody),
    )
)]
pub async fn dlq_callback(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(dlq_id): Path<String>,
) -> Result<Json<WorkflowRunRef>, ApiError> {
    let run = state
        .engine
        .retry_failure_function(&user.id, &dlq_id)
        .await?;
    Ok(Json(WorkflowRunRef::from(&run)))
}

/// `/v2/workflows/hooks/{userId}/{runId}/{eventId}` (any method; no
/// token, see `auth::HOOKS_PREFIX`): the request, wrapped as the SDK's
/// `waitForWebhook` reads it, resumes the run waiting on the event; if
/// the run does not wait yet, the call is kept for its wait (in order).
/// 404 when the run is unknown or has ended.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/v2/workflows/hooks/{userId}/{workflowRunId}/{eventId}",
    tag = "workflow",
    summary = "A webhook call for a run waiting on it (`context.createWebhook`); any method, no token",
    security(()),
    params(("userId" = String, Path, description = "The run's user"),
        ("workflowRunId" = String, Path, description = "The run"),
        ("eventId" = String, Path, description = "The webhook's event")),
    request_body(content = String, description = "Anything: the run receives it", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Resumed the run, or kept for its wait", body = HookAnswer),
        (status = "4XX", description = "No running run of that user and id (404), or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn hook(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((_user, run_id, event_id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HookAnswer>, ApiError> {
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
    Ok(Json(match resumed.into_iter().next() {
        Some((_, message_id)) => HookAnswer::Resumed(HookResumed { message_id }),
        None => HookAnswer::Queued(HookQueued { queued: true }),
    }))
}

/// Workflow features of the SDK this server does not have: a clear 501
/// naming the feature (README.md, "Upstash Workflow", lists them).
#[utoipa::path(
    post,
    path = "/v2/trigger/{path}",
    tag = "workflow",
    summary = "Not supported yet: answers 501 (any method, any path below)",
    params(("path" = String, Path, description = "Anything")),
    responses(
        (status = "4XX", description = "Unauthenticated or over a limit", body = ErrorBody),
        (status = 501, description = "Not supported by this server yet", body = ErrorBody),
    )
)]
pub async fn trigger_not_supported(method: Method, uri: Uri) -> Response {
    not_supported(method, uri)
}

/// Workflow DLQ actions other than those above.
#[utoipa::path(
    post,
    path = "/v2/workflows/dlq/{action}",
    tag = "workflow",
    summary = "Other workflow DLQ actions: not supported yet, answer 501 (any method, any path below)",
    params(("action" = String, Path, description = "Anything but resume, restart and callback/{dlqId}")),
    responses(
        (status = "4XX", description = "Unauthenticated or over a limit", body = ErrorBody),
        (status = 501, description = "Not supported by this server yet", body = ErrorBody),
    )
)]
pub async fn dlq_not_supported(method: Method, uri: Uri) -> Response {
    not_supported(method, uri)
}

fn not_supported(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let feature = if path.starts_with("/v2/workflows/dlq") {
        "this workflow DLQ action"
    } else {
        "this workflow endpoint"
    };
    let body = ErrorBody {
        error: format!("{method} {path}: {feature} is not supported by this server yet (see README.md, Upstash Workflow)"),
    };
    (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response()
}
