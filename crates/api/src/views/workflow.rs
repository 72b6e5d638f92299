//! Answers of the Upstash Workflow routes (shared/spec/WORKFLOW.md), as
//! the workflow SDK parses them.

use qstash_core::workflow::{Run, StepEntry, Waiter};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{base64, Headers};

/// One entry of a running run's log (`GET /v2/workflows/runs/{id}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub message_id: String,
    /// The step's body (the SDK's step document), base64.
    pub body: String,
    /// `step`, or the kind of call the message made.
    pub call_type: String,
}

impl From<&StepEntry> for StepView {
    fn from(e: &StepEntry) -> Self {
        Self {
            message_id: e.message_id.clone(),
            body: base64(&e.body),
            call_type: e.call_type.clone(),
        }
    }
}

/// A page of `GET /v2/workflows/logs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunsPage {
    /// Where the next page starts; empty on the last page (a short page
    /// may still have one: the walk's budget ran out).
    pub cursor: String,
    /// Each run as the SDK's `WorkflowRunLog`: `workflowRunId`,
    /// `workflowUrl`, `workflowState`, `workflowRunCreatedAt`, `steps`
    /// (groups of type `sequential`, `parallel` or `next`, with their
    /// `errors`), and once ended `workflowRunCompletedAt`,
    /// `workflowRunResponse`, `failureReason`, `dlqId`. Built by
    /// `qstash_core::workflow_log::run_log`, whose tests pin it.
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<Value>,
}

/// A run waiting for an event (`GET /v2/waiters/{eventId}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaiterView {
    /// Where the run resumes.
    pub url: String,
    /// Unix seconds of the timeout.
    pub deadline: i64,
    #[schema(value_type = std::collections::HashMap<String, Vec<String>>)]
    pub headers: Headers,
    pub timeout_url: String,
    #[schema(value_type = std::collections::HashMap<String, Vec<String>>)]
    pub timeout_headers: Headers,
    pub workflow_run_id: String,
}

impl From<&Waiter> for WaiterView {
    fn from(w: &Waiter) -> Self {
        Self {
            url: w.url.clone(),
            deadline: w.deadline / 1000,
            headers: w.headers.clone(),
            timeout_url: w.timeout_url.clone(),
            timeout_headers: w.timeout_headers.clone(),
            workflow_run_id: w.run_id.clone(),
        }
    }
}

/// A waiter a notify resumed, and the message that resumes it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedView {
    pub waiter: WaiterView,
    pub message_id: String,
}

/// A run a workflow DLQ action started or resumed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRunRef {
    pub workflow_run_id: String,
    /// Unix milliseconds.
    pub workflow_created_at: i64,
}

impl From<&Run> for WorkflowRunRef {
    fn from(r: &Run) -> Self {
        Self {
            workflow_run_id: r.run_id.clone(),
            workflow_created_at: r.created_at,
        }
    }
}

/// The runs of a workflow DLQ resume or restart.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRunsView {
    pub workflow_runs: Vec<WorkflowRunRef>,
    /// Always empty: the actions take ids, never a filter to page through.
    pub cursor: String,
}

/// How many entries a workflow DLQ delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDlqDeleted {
    pub deleted: u64,
    /// Always empty, as the SDK expects a string.
    pub cursor: String,
}

/// A webhook call resumed the waiting run with this message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookResumed {
    pub message_id: String,
}

/// The run does not wait yet: the call is kept for its wait.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookQueued {
    /// Always `true`.
    pub queued: bool,
}

/// The answer of a webhook call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HookAnswer {
    Resumed(HookResumed),
    Queued(HookQueued),
}
