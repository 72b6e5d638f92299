//! Answers of the Upstash Workflow routes (shared/spec/WORKFLOW.md), as
//! the workflow SDK parses them.

use qstash_core::workflow::{Run, RunState, StepEntry, Waiter};
use serde::Serialize;
use serde_json::{Map, Value};
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

/// One step of a run in `client.logs`: the SDK's own step document
/// (`stepId`, `stepName`, `stepType`, `out`, `concurrent`, ... as the SDK
/// sent them) plus what the server knows of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepLogView {
    /// The SDK's step document, minus the keys below.
    #[serde(flatten)]
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub step: Map<String, Value>,
    pub message_id: String,
    /// Always `step`.
    #[schema(value_type = String)]
    pub call_type: &'static str,
    /// Always `STEP_SUCCESS`: a step is logged once it succeeded.
    #[schema(value_type = String)]
    pub state: &'static str,
    /// Unix milliseconds.
    pub created_at: i64,
    pub retries: u32,
}

impl StepLogView {
    /// A logged step; the server's keys replace any the SDK sent.
    fn new(mut step: Map<String, Value>, message_id: &str, created_at: i64) -> Self {
        for key in ["messageId", "callType", "state", "createdAt", "retries"] {
            step.remove(key);
        }
        Self {
            step,
            message_id: message_id.to_string(),
            call_type: "step",
            state: "STEP_SUCCESS",
            created_at,
            retries: 0,
        }
    }
}

/// Steps that ran one after the other (one step each), or the results of
/// one parallel block.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepGroupView {
    /// `sequential` or `parallel`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub steps: Vec<StepLogView>,
}

impl StepGroupView {
    fn sequential(step: StepLogView) -> Self {
        Self {
            kind: "sequential",
            steps: vec![step],
        }
    }

    fn parallel(steps: Vec<StepLogView>) -> Self {
        Self {
            kind: "parallel",
            steps,
        }
    }
}

/// A run as `client.logs` reads it (`WorkflowRunLog`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunLogView {
    pub workflow_run_id: String,
    pub workflow_url: String,
    /// RUN_STARTED, RUN_SUCCESS, RUN_FAILED or RUN_CANCELED.
    #[schema(value_type = String)]
    pub workflow_state: &'static str,
    /// Unix milliseconds.
    pub workflow_run_created_at: i64,
    pub steps: Vec<StepGroupView>,
    /// Unix milliseconds; absent while the run runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_completed_at: Option<i64>,
    /// The run's result (the body of its finishing call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl RunLogView {
    /// `steps` is the run's log, its first entry the trigger.
    pub fn of(run: &Run, steps: &[StepEntry]) -> Self {
        let mut groups = vec![StepGroupView::sequential(initial_step(run, steps))];
        let mut parallel: Vec<StepLogView> = Vec::new();
        for entry in steps.iter().skip(1).filter(|s| s.call_type == "step") {
            let Ok(step) = serde_json::from_slice::<Map<String, Value>>(&entry.body) else {
                continue;
            };
            // Plan steps (stepId 0) only schedule the branches of a
            // parallel block; their results are the steps.
            if step.get("stepId").and_then(Value::as_i64).unwrap_or(0) == 0 {
                continue;
            }
            let concurrent = step.get("concurrent").and_then(Value::as_i64).unwrap_or(1);
            let log = StepLogView::new(step, &entry.message_id, entry.created_at);
            if concurrent > 1 {
                parallel.push(log);
                if parallel.len() as i64 == concurrent {
                    groups.push(StepGroupView::parallel(std::mem::take(&mut parallel)));
                }
            } else {
                groups.push(StepGroupView::sequential(log));
            }
        }
        if !parallel.is_empty() {
            groups.push(StepGroupView::parallel(parallel));
        }
        Self {
            workflow_run_id: run.run_id.clone(),
            workflow_url: run.url.clone(),
            workflow_state: run.state.as_str(),
            workflow_run_created_at: run.created_at,
            steps: groups,
            workflow_run_completed_at: (run.state != RunState::Running).then_some(run.updated_at),
            workflow_run_response: run
                .result
                .as_ref()
                .map(|r| String::from_utf8_lossy(r).into_owned()),
            label: run.label.clone(),
            labels: run.label.as_ref().map(|l| vec![l.clone()]),
            failure_reason: run.failure.clone(),
        }
    }
}

/// The trigger, shown as the SDK's `init` step.
fn initial_step(run: &Run, steps: &[StepEntry]) -> StepLogView {
    let mut step = Map::new();
    step.insert("stepId".into(), 0.into());
    step.insert("stepName".into(), "init".into());
    step.insert("stepType".into(), "Initial".into());
    step.insert(
        "out".into(),
        String::from_utf8_lossy(&run.initial_body)
            .into_owned()
            .into(),
    );
    step.insert("concurrent".into(), 1.into());
    let message_id = steps.first().map(|s| s.message_id.as_str()).unwrap_or("");
    StepLogView::new(step, message_id, run.created_at)
}

/// A page of `GET /v2/workflows/logs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunsPage {
    /// Where the next page starts; empty on the last page (a short page
    /// may still have one: the walk's budget ran out).
    pub cursor: String,
    pub runs: Vec<RunLogView>,
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

#[cfg(test)]
mod tests {
    //! Pins `client.logs`' view of a run (the workflow SDK parses it).

    use qstash_core::workflow::{Run, RunState, StepEntry};
    use serde_json::json;

    use super::*;

    fn step(seq: i64, body: &str) -> StepEntry {
        StepEntry {
            seq,
            message_id: format!("msg_{seq}"),
            call_type: "step".into(),
            body: body.as_bytes().to_vec(),
            created_at: 100 + seq,
        }
    }

    fn run(state: RunState) -> Run {
        Run {
            user_id: "u".into(),
            run_id: "wfr_1".into(),
            url: "http://127.0.0.1:1/wf".into(),
            label: None,
            state,
            created_at: 50,
            updated_at: 60,
            initial_body: b"hello".to_vec(),
            config: Default::default(),
            result: None,
            failure: None,
        }
    }

    #[test]
    fn steps_group_as_sequential_and_parallel_and_the_server_keys_win() {
        let steps = [
            step(0, "hello"),
            step(1, r#"{"stepId":1,"stepName":"a","out":"1","state":"odd"}"#),
            step(2, r#"{"stepId":0,"concurrent":2}"#),
            step(3, r#"{"stepId":2,"stepName":"p","concurrent":2}"#),
            step(4, r#"{"stepId":3,"stepName":"q","concurrent":2}"#),
        ];
        let ok = |id: i64| {
            json!({"state": "STEP_SUCCESS", "callType": "step", "retries": 0,
            "messageId": format!("msg_{id}"), "createdAt": 100 + id})
        };
        let with = |mut base: serde_json::Value, extra: serde_json::Value| {
            base.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            base
        };
        assert_eq!(
            serde_json::to_value(RunLogView::of(&run(RunState::Running), &steps)).unwrap(),
            json!({
                "workflowRunId": "wfr_1", "workflowUrl": "http://127.0.0.1:1/wf",
                "workflowState": "RUN_STARTED", "workflowRunCreatedAt": 50,
                "steps": [
                    {"type": "sequential", "steps": [{
                        "stepId": 0, "stepName": "init", "stepType": "Initial",
                        "callType": "step", "messageId": "msg_0", "out": "hello",
                        "concurrent": 1, "state": "STEP_SUCCESS", "createdAt": 50, "retries": 0,
                    }]},
                    {"type": "sequential", "steps": [
                        with(ok(1), json!({"stepId": 1, "stepName": "a", "out": "1"})),
                    ]},
                    {"type": "parallel", "steps": [
                        with(ok(3), json!({"stepId": 2, "stepName": "p", "concurrent": 2})),
                        with(ok(4), json!({"stepId": 3, "stepName": "q", "concurrent": 2})),
                    ]},
                ],
            })
        );
    }

    #[test]
    fn an_ended_run_has_its_end_result_label_and_failure() {
        let mut r = run(RunState::Failed);
        r.label = Some("l".into());
        r.result = Some(b"done".to_vec());
        r.failure = Some("boom".into());
        let v = serde_json::to_value(RunLogView::of(&r, &[])).unwrap();
        assert_eq!(v["workflowState"], "RUN_FAILED");
        assert_eq!(v["workflowRunCompletedAt"], 60);
        assert_eq!(v["workflowRunResponse"], "done");
        assert_eq!(v["label"], "l");
        assert_eq!(v["labels"], json!(["l"]));
        assert_eq!(v["failureReason"], "boom");
        assert_eq!(v["steps"][0]["steps"][0]["messageId"], "");
        let running = serde_json::to_value(RunLogView::of(&run(RunState::Running), &[])).unwrap();
        for key in [
            "workflowRunCompletedAt",
            "workflowRunResponse",
            "label",
            "labels",
            "failureReason",
        ] {
            assert!(running.get(key).is_none(), "{key} must be omitted");
        }
    }
}
