//! The run-level view the workflow SDK's `client.logs` reads
//! (`WorkflowRunLog` in `@upstash/workflow`): the run's state, its
//! recorded steps grouped as `sequential` or `parallel`, and a `next`
//! group with what is still under way: messages being delivered or
//! retried (with each failed attempt's error), a failed or cancelled
//! step, a sleep not over yet, a `waitForEvent` not resumed yet.
//!
//! A recorded step is one whose result the SDK published: its log entry's
//! body is the step document. The delivery of a step's message runs the
//! step after it, so an error of that delivery belongs to the next step:
//! it shows in the `next` group under the message id, named by the SDK's
//! `Upstash-Error-Step-Name` response header when it sent one.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::clock::Millis;
use crate::log::LogEntry;
use crate::message::LogState;
use crate::workflow::{Run, RunState, StepEntry, Waiter};

/// The response header the SDK names a failing step with.
const ERROR_STEP_NAME: &str = "Upstash-Error-Step-Name";

/// What the message log says about one message of the run.
#[derive(Debug, Clone, Default)]
struct Status {
    /// The newest state.
    state: Option<LogState>,
    /// Failed attempts, oldest first.
    errors: Vec<Value>,
    /// The step name the last failed attempt's response named.
    error_step: Option<String>,
    next_delivery_time: Option<Millis>,
    max_retries: u32,
    retry_delay: Option<String>,
}

impl Status {
    /// The `next` group state, or None once the message was delivered.
    fn next_state(&self) -> Option<&'static str> {
        Some(match self.state? {
            LogState::Delivered => return None,
            LogState::Failed => "STEP_FAILED",
            LogState::Canceled | LogState::CancelRequested => "STEP_CANCELED",
            LogState::Retry | LogState::Error => "STEP_RETRY",
            LogState::Created | LogState::Active if self.errors.is_empty() => "STEP_PROGRESS",
            LogState::Created | LogState::Active => "STEP_RETRY",
        })
    }
}

/// Folds log entries (any order) into one status per message.
fn statuses(events: &[LogEntry]) -> HashMap<&str, Status> {
    let mut sorted: Vec<&LogEntry> = events.iter().collect();
    // Oldest first; at equal times an attempt's error precedes its retry
    // or failure entry, as the store writes them.
    sorted.sort_by_key(|e| (e.time, order(e.state)));
    let mut out: HashMap<&str, Status> = HashMap::new();
    for e in sorted {
        let s = out.entry(e.message.id.as_str()).or_default();
        s.max_retries = e.message.spec.max_retries;
        s.retry_delay = e.message.spec.retry_delay.clone();
        s.state = Some(e.state);
        match e.state {
            LogState::Error => {
                let r = e.response.clone().unwrap_or_default();
                s.error_step = header(&r.header, ERROR_STEP_NAME);
                s.errors.push(json!({
                    "error": e.error.clone().unwrap_or_default(),
                    "body": String::from_utf8_lossy(&r.body),
                    "headers": r.header,
                    "status": r.status,
                    "time": e.time,
                }));
            }
            LogState::Retry => s.next_delivery_time = e.next_delivery_time,
            _ => {}
        }
    }
    out
}

/// Where a state sorts among entries written at the same time.
fn order(s: LogState) -> u8 {
    match s {
        LogState::Created => 0,
        LogState::Active => 1,
        LogState::Error => 2,
        _ => 3,
    }
}

fn header(h: &crate::headers::HeaderMap, name: &str) -> Option<String> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}

/// A step document's `stepType`.
fn step_type(doc: &Map<String, Value>) -> &str {
    doc.get("stepType").and_then(Value::as_str).unwrap_or("")
}

fn is_sleep(doc: &Map<String, Value>) -> bool {
    matches!(step_type(doc), "SleepFor" | "SleepUntil")
}

/// One run as `client.logs` reads it. `events` are the message log
/// entries of the run's messages (none needed for a finished run),
/// `waiters` its `waitForEvent` waiters.
pub fn run_log(run: &Run, steps: &[StepEntry], events: &[LogEntry], waiters: &[Waiter]) -> Value {
    let status = statuses(events);
    let retries = |id: &str| {
        status
            .get(id)
            .map(|s| (s.max_retries, s.retry_delay.clone()))
            .unwrap_or((run.config.max_retries, run.config.retry_delay.clone()))
    };
    let docs: Vec<Option<Map<String, Value>>> = steps
        .iter()
        .map(|e| serde_json::from_slice(&e.body).ok())
        .collect();
    let mut groups = vec![init_group(run, steps, &retries)];
    let mut parallel: Vec<Value> = Vec::new();
    for (entry, doc) in steps.iter().zip(&docs).skip(1) {
        let Some(doc) = doc.as_ref().filter(|_| entry.call_type == "step") else {
            continue;
        };
        // Plan steps (stepId 0) only schedule the branches of a parallel
        // block; their results are the steps.
        let id = doc.get("stepId").and_then(Value::as_i64).unwrap_or(0);
        let pending = status
            .get(entry.message_id.as_str())
            .and_then(Status::next_state);
        // A sleep is over once its message is delivered; until then it is
        // in the `next` group.
        if id == 0 || (is_sleep(doc) && pending.is_some()) {
            continue;
        }
        let concurrent = doc.get("concurrent").and_then(Value::as_i64).unwrap_or(1);
        let mut log = doc.clone();
        let (max, delay) = retries(&entry.message_id);
        log.insert("messageId".into(), json!(entry.message_id));
        log.insert("callType".into(), json!("step"));
        log.insert("state".into(), json!("STEP_SUCCESS"));
        log.insert("createdAt".into(), json!(entry.created_at));
        log.insert("retries".into(), json!(max));
        if let Some(d) = delay {
            log.insert("retryDelay".into(), json!(d));
        }
        if concurrent > 1 {
            parallel.push(Value::Object(log));
            if parallel.len() as i64 == concurrent {
                groups.push(json!({ "type": "parallel", "steps": std::mem::take(&mut parallel) }));
            }
        } else {
            groups.push(json!({ "type": "sequential", "steps": [Value::Object(log)] }));
        }
    }
    if !parallel.is_empty() {
        groups.push(json!({ "type": "parallel", "steps": parallel }));
    }
    let next = next_steps(run, steps, &docs, &status, waiters);
    if !next.is_empty() {
        groups.push(json!({ "type": "next", "steps": next }));
    }
    run_fields(run, groups)
}

fn init_group(
    run: &Run,
    steps: &[StepEntry],
    retries: &dyn Fn(&str) -> (u32, Option<String>),
) -> Value {
    let id = steps.first().map(|s| s.message_id.as_str()).unwrap_or("");
    let (max, _) = retries(id);
    json!({
        "type": "sequential",
        "steps": [{
            "stepId": 0, "stepName": "init", "stepType": "Initial", "callType": "step",
            "messageId": id, "out": String::from_utf8_lossy(&run.initial_body),
            "concurrent": 1, "state": "STEP_SUCCESS", "createdAt": run.created_at, "retries": max,
        }],
    })
}

/// The `next` group: every message of the run not delivered (in log
/// order), then the run's waiters.
fn next_steps(
    run: &Run,
    steps: &[StepEntry],
    docs: &[Option<Map<String, Value>>],
    status: &HashMap<&str, Status>,
    waiters: &[Waiter],
) -> Vec<Value> {
    let mut out = Vec::new();
    for (entry, doc) in steps.iter().zip(docs) {
        let Some(s) = status.get(entry.message_id.as_str()) else {
            continue;
        };
        let Some(state) = s.next_state() else {
            continue;
        };
        let mut step = json!({
            "messageId": entry.message_id,
            "state": state,
            "retries": s.max_retries,
            "callType": entry.call_type,
        });
        if let Some(name) = next_name(s, doc.as_ref()) {
            step["stepName"] = json!(name);
        }
        if let Some(d) = &s.retry_delay {
            step["retryDelay"] = json!(d);
        }
        if !s.errors.is_empty() {
            step["errors"] = json!(s.errors);
        }
        // Only while it waits for its next attempt (not during it).
        if s.state == Some(LogState::Retry) {
            if let Some(t) = s.next_delivery_time {
                step["nextDeliveryTime"] = json!(t);
            }
        }
        out.push(step);
    }
    if run.state == RunState::Running {
        for w in waiters {
            let name = w.step.get("stepName").cloned().unwrap_or(Value::Null);
            out.push(json!({
                "messageId": "",
                "stepName": name,
                "stepType": "Wait",
                "state": "STEP_PROGRESS",
                "retries": run.config.max_retries,
                "waitEventId": w.event_id,
                "waitTimeoutDeadline": w.deadline,
            }));
        }
    }
    out
}

/// The name of the step a message's delivery runs: what the SDK named in
/// its error response, else the message's own step when the message is
/// that step (a sleep, or a parallel branch's plan).
fn next_name(s: &Status, doc: Option<&Map<String, Value>>) -> Option<String> {
    if let Some(name) = &s.error_step {
        return Some(name.clone());
    }
    let doc = doc?;
    let plan =
        doc.get("stepId").and_then(Value::as_i64) == Some(0) && doc.get("targetStep").is_some();
    if is_sleep(doc) || plan {
        return doc
            .get("stepName")
            .and_then(Value::as_str)
            .map(String::from);
    }
    None
}

fn run_fields(run: &Run, groups: Vec<Value>) -> Value {
    let mut o = json!({
        "workflowRunId": run.run_id,
        "workflowUrl": run.url,
        "workflowState": run.state.as_str(),
        "workflowRunCreatedAt": run.created_at,
        "steps": groups,
    });
    if run.state != RunState::Running {
        o["workflowRunCompletedAt"] = json!(run.updated_at);
    }
    if let Some(result) = &run.result {
        o["workflowRunResponse"] = json!(String::from_utf8_lossy(result));
    }
    if let Some(label) = &run.label {
        o["label"] = json!(label);
        o["labels"] = json!([label]);
    }
    if let Some(failure) = &run.failure {
        o["failureReason"] = json!(failure);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::AttemptResponse;
    use crate::workflow::TriggerConfig;
    use crate::{Message, MessageSpec, MessageState};

    fn run(state: RunState) -> Run {
        Run {
            user_id: "u".into(),
            run_id: "wfr_1".into(),
            url: "http://127.0.0.1:1/wf".into(),
            label: None,
            state,
            created_at: 100,
            updated_at: 200,
            initial_body: b"{}".to_vec(),
            config: TriggerConfig {
                max_retries: 3,
                ..Default::default()
            },
            result: None,
            failure: None,
        }
    }

    fn entry(seq: i64, id: &str, doc: Value) -> StepEntry {
        StepEntry {
            seq,
            message_id: id.into(),
            call_type: "step".into(),
            body: doc.to_string().into_bytes(),
            created_at: 100 + seq,
        }
    }

    fn event(id: &str, time: Millis, state: LogState) -> LogEntry {
        LogEntry {
            time,
            state,
            error: None,
            next_delivery_time: None,
            response: None,
            message: Message {
                id: id.into(),
                user_id: "u".into(),
                spec: MessageSpec {
                    max_retries: 2,
                    ..Default::default()
                },
                body: bytes::Bytes::new(),
                created_at: 0,
                not_before: 0,
                due_at: 0,
                retried: 0,
                state: MessageState::Pending,
            },
        }
    }

    fn failed_attempt(id: &str, time: Millis) -> LogEntry {
        let mut header = crate::headers::HeaderMap::new();
        header.insert("Upstash-Error-Step-Name".into(), vec!["charge".into()]);
        LogEntry {
            error: Some("status 500".into()),
            response: Some(AttemptResponse {
                status: 500,
                header,
                body: b"boom".to_vec(),
            }),
            ..event(id, time, LogState::Error)
        }
    }

    fn groups(v: &Value) -> Vec<(String, usize)> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["type"].as_str().unwrap().to_string(),
                    g["steps"].as_array().unwrap().len(),
                )
            })
            .collect()
    }

    fn next(v: &Value) -> Option<Value> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["type"] == "next")
            .map(|g| g["steps"].clone())
    }

    #[test]
    fn a_step_being_retried_shows_its_errors_in_the_next_group() {
        let steps = vec![
            entry(0, "m0", json!("trigger")),
            entry(
                1,
                "m1",
                json!({"stepId": 1, "stepName": "reserve", "stepType": "Run", "out": "1", "concurrent": 1}),
            ),
        ];
        let mut retry = event("m1", 20, LogState::Retry);
        retry.next_delivery_time = Some(99);
        let events = vec![
            event("m0", 10, LogState::Created),
            event("m0", 11, LogState::Delivered),
            event("m1", 12, LogState::Created),
            event("m1", 13, LogState::Active),
            failed_attempt("m1", 20),
            retry,
        ];
        let v = run_log(&run(RunState::Running), &steps, &events, &[]);
        assert_eq!(
            groups(&v),
            vec![
                ("sequential".into(), 1),
                ("sequential".into(), 1),
                ("next".into(), 1)
            ]
        );
        assert_eq!(v["steps"][1]["steps"][0]["state"], "STEP_SUCCESS");
        assert_eq!(v["steps"][1]["steps"][0]["retries"], 2);
        let next = next(&v).unwrap();
        assert_eq!(next[0]["messageId"], "m1");
        assert_eq!(next[0]["state"], "STEP_RETRY");
        assert_eq!(next[0]["stepName"], "charge");
        assert_eq!(next[0]["nextDeliveryTime"], 99);
        assert_eq!(next[0]["errors"][0]["status"], 500);
        assert_eq!(next[0]["errors"][0]["body"], "boom");
        assert_eq!(next[0]["errors"][0]["error"], "status 500");
    }

    #[test]
    fn a_retry_that_succeeded_leaves_no_next_group() {
        let steps = vec![entry(0, "m0", json!("trigger"))];
        let events = vec![
            event("m0", 10, LogState::Created),
            failed_attempt("m0", 11),
            event("m0", 11, LogState::Retry),
            event("m0", 12, LogState::Active),
            event("m0", 13, LogState::Delivered),
        ];
        let v = run_log(&run(RunState::Running), &steps, &events, &[]);
        assert_eq!(next(&v), None);
    }

    #[test]
    fn a_sleep_not_over_is_next_and_a_failed_step_is_failed() {
        let steps = vec![
            entry(0, "m0", json!("trigger")),
            entry(
                1,
                "m1",
                json!({"stepId": 1, "stepName": "nap", "stepType": "SleepFor", "sleepFor": 5, "concurrent": 1}),
            ),
        ];
        let events = vec![
            event("m0", 10, LogState::Delivered),
            event("m1", 11, LogState::Created),
        ];
        let v = run_log(&run(RunState::Running), &steps, &events, &[]);
        assert_eq!(
            groups(&v),
            vec![("sequential".into(), 1), ("next".into(), 1)]
        );
        let n = next(&v).unwrap();
        assert_eq!(
            (n[0]["stepName"].as_str(), n[0]["state"].as_str()),
            (Some("nap"), Some("STEP_PROGRESS"))
        );

        let events = vec![event("m0", 10, LogState::Failed)];
        let v = run_log(&run(RunState::Failed), &steps[..1], &events, &[]);
        assert_eq!(next(&v).unwrap()[0]["state"], "STEP_FAILED");
    }

    #[test]
    fn a_waiter_of_a_running_run_is_next() {
        let steps = vec![entry(0, "m0", json!("trigger"))];
        let waiter = Waiter {
            user_id: "u".into(),
            event_id: "ev".into(),
            run_id: "wfr_1".into(),
            url: String::new(),
            deadline: 5000,
            headers: Default::default(),
            timeout_url: String::new(),
            timeout_headers: Default::default(),
            step: json!({"stepName": "approval", "stepType": "Wait"}),
            created_at: 0,
        };
        let events = vec![event("m0", 10, LogState::Delivered)];
        let v = run_log(
            &run(RunState::Running),
            &steps,
            &events,
            std::slice::from_ref(&waiter),
        );
        let n = next(&v).unwrap();
        assert_eq!(n[0]["stepName"], "approval");
        assert_eq!(n[0]["waitEventId"], "ev");
        assert_eq!(n[0]["waitTimeoutDeadline"], 5000);
        let v = run_log(&run(RunState::Canceled), &steps, &events, &[waiter]);
        assert_eq!(next(&v), None);
    }
}
