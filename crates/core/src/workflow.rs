//! Upstash Workflow (shared/spec/WORKFLOW.md): a run is a chain of QStash
//! messages to one workflow URL. The server keeps each run and the ordered
//! log of its step messages, and delivers every step with the log up to
//! and including that step as its body, which is how the SDK replays the
//! run without storing anything itself. Pure rules here; the store keeps
//! runs and logs, the engine delivers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::Millis;
use crate::flow_control::FlowControl;
use crate::headers::HeaderMap;
use crate::message::MessageSpec;

/// `Upstash-Workflow-CallType` values.
pub const STEP: &str = "step";
/// A `context.call` request to a third party.
pub const TO_CALLBACK: &str = "toCallback";
/// The report of a `context.call`, back to the workflow.
pub const FROM_CALLBACK: &str = "fromCallback";
/// The failure callback of a run.
pub const FAILURE_CALL: &str = "failureCall";

/// The feature that makes the trigger's settings apply to every step.
pub const TRIGGER_ON_CONFIG: &str = "WF_TriggerOnConfig";

/// The feature asking the server to fail a run whose trigger reached an
/// endpoint that is not a workflow (its answer lacks the SDK's
/// `Upstash-Workflow-Sdk-Version` header).
pub const DETECT_TRIGGER: &str = "WF_DetectTrigger";

/// The header every workflow SDK response carries.
pub const SDK_VERSION_HEADER: &str = "Upstash-Workflow-Sdk-Version";

/// Why such a run failed, in the SDK's words (its `StepError` example).
pub const NON_WORKFLOW_DESTINATION: &str = "detected a non-workflow destination for trigger/invoke. make sure you are sending the request to the correct endpoint";

/// What the `Upstash-Workflow-*` headers of a message said. Kept in the
/// message's spec so the delivery knows which run the message belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkflowTag {
    pub run_id: String,
    /// `Upstash-Workflow-Init: true`: this message starts the run.
    pub init: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_type: Option<String>,
    /// `Upstash-Feature-Set`, comma separated.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub features: String,
    /// `Upstash-Workflow-Invoke: true`: a child run of `context.invoke`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invoke: bool,
}

impl WorkflowTag {
    pub fn call_type(&self) -> &str {
        self.call_type.as_deref().unwrap_or(STEP)
    }

    /// A message to the workflow URL that the SDK replays from the log:
    /// its delivery body is the log up to it.
    pub fn is_step(&self) -> bool {
        self.call_type().eq_ignore_ascii_case(STEP)
    }

    /// A message published as part of the run (a step or a `context.call`
    /// request), as opposed to a callback the server makes.
    pub fn is_published_part(&self) -> bool {
        self.is_step() || self.call_type().eq_ignore_ascii_case(TO_CALLBACK)
    }

    pub fn is_call(&self) -> bool {
        self.call_type().eq_ignore_ascii_case(TO_CALLBACK)
    }

    pub fn has_feature(&self, feature: &str) -> bool {
        self.features
            .split(',')
            .any(|f| f.trim().eq_ignore_ascii_case(feature))
    }

    /// Whether a 2xx answer to this message, with `has_sdk_header` telling
    /// whether it carried [`SDK_VERSION_HEADER`], came from an endpoint
    /// that is not a workflow: only a run's trigger (or an invoked child's)
    /// asking for [`DETECT_TRIGGER`] is checked.
    pub fn non_workflow_answer(&self, has_sdk_header: bool) -> bool {
        self.init && self.is_step() && self.has_feature(DETECT_TRIGGER) && !has_sdk_header
    }
}

/// Reads one `Upstash-Workflow-*`/`Upstash-Feature-Set` setting (the part
/// after `upstash-`, lower case) into `tag`; false if it is not one.
pub fn read_setting(tag: &mut WorkflowTag, setting: &str, value: &str) -> bool {
    match setting {
        "workflow-runid" => tag.run_id = value.to_string(),
        "workflow-init" => tag.init = value.eq_ignore_ascii_case("true"),
        "workflow-url" => tag.url = Some(value.to_string()),
        "workflow-calltype" => tag.call_type = Some(value.to_string()),
        "feature-set" => tag.features = value.to_string(),
        "workflow-invoke" => tag.invoke = value.eq_ignore_ascii_case("true"),
        _ => return false,
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    #[serde(rename = "RUN_STARTED")]
    Running,
    #[serde(rename = "RUN_SUCCESS")]
    Success,
    #[serde(rename = "RUN_FAILED")]
    Failed,
    #[serde(rename = "RUN_CANCELED")]
    Canceled,
}

impl RunState {
    pub const ALL: [RunState; 4] = [Self::Running, Self::Success, Self::Failed, Self::Canceled];

    /// As the SDK's `client.logs` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUN_STARTED",
            Self::Success => "RUN_SUCCESS",
            Self::Failed => "RUN_FAILED",
            Self::Canceled => "RUN_CANCELED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The settings of the trigger that later messages of the run inherit
/// when the trigger asked for `WF_TriggerOnConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TriggerConfig {
    pub inherit: bool,
    pub max_retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<FlowControl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_callback: Option<String>,
    #[serde(skip_serializing_if = "HeaderMap::is_empty")]
    pub failure_callback_header: HeaderMap,
    /// Forwarded headers of the trigger.
    #[serde(skip_serializing_if = "HeaderMap::is_empty")]
    pub header: HeaderMap,
    /// Set on a child run of `context.invoke`: the run to resume when
    /// this one ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoker: Option<Invoker>,
}

impl TriggerConfig {
    /// What a trigger message fixes for its run.
    pub fn of_trigger(spec: &MessageSpec, tag: &WorkflowTag) -> Self {
        Self {
            inherit: tag.has_feature(TRIGGER_ON_CONFIG),
            max_retries: spec.max_retries,
            retry_delay: spec.retry_delay.clone(),
            flow_control: spec.flow_control.clone(),
            failure_callback: spec.failure_callback.clone(),
            failure_callback_header: spec.failure_callback_header.clone(),
            header: spec.header.clone(),
            invoker: None,
        }
    }

    /// Applies the trigger's settings to a later step of the run. The SDK
    /// sends none of them on steps; a header the step sets itself wins.
    pub fn apply(&self, spec: &mut MessageSpec) {
        if !self.inherit {
            return;
        }
        spec.max_retries = self.max_retries;
        if spec.retry_delay.is_none() {
            spec.retry_delay = self.retry_delay.clone();
        }
        if spec.flow_control.is_none() {
            spec.flow_control = self.flow_control.clone();
        }
        if spec.failure_callback.is_none() {
            spec.failure_callback = self.failure_callback.clone();
            spec.failure_callback_header = self.failure_callback_header.clone();
        }
        for (name, values) in &self.header {
            spec.header
                .entry(name.clone())
                .or_insert_with(|| values.clone());
        }
    }
}

/// One workflow run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub user_id: String,
    pub run_id: String,
    pub url: String,
    pub label: Option<String>,
    pub state: RunState,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub initial_body: Vec<u8>,
    pub config: TriggerConfig,
    /// The body of the finishing `DELETE` (the run's return value).
    pub result: Option<Vec<u8>>,
    /// Why the run failed.
    pub failure: Option<String>,
}

/// One entry of a run's log: a message published as part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEntry {
    pub seq: i64,
    pub message_id: String,
    pub call_type: String,
    pub body: Vec<u8>,
    pub created_at: Millis,
}

/// The log up to and including `message_id` (all of it if absent), as the
/// SDK reads it: `[{messageId, body (base64), callType}]`. Cutting at the
/// delivered message lets exactly one parallel branch see every result.
pub fn steps_json(entries: &[StepEntry], up_to: Option<&str>) -> Value {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push(json!({
            "messageId": e.message_id,
            "body": STANDARD.encode(&e.body),
            "callType": e.call_type,
        }));
        if up_to == Some(e.message_id.as_str()) {
            break;
        }
    }
    Value::Array(out)
}

/// Whether `message_id` is in the log (a step of an earlier version of the
/// run is delivered with the whole log otherwise).
pub fn logged(entries: &[StepEntry], message_id: &str) -> bool {
    entries.iter().any(|e| e.message_id == message_id)
}

/// Adds what the SDK's `failureFunction` reads to a failure callback body:
/// the run id and time, and the run's initial payload as `sourceBody`
/// (the failing step's own body is the SDK's step document).
pub fn failure_payload(payload: &mut Value, run: &Run) {
    if let Some(o) = payload.as_object_mut() {
        o.insert("workflowRunId".into(), json!(run.run_id));
        o.insert("workflowCreatedAt".into(), json!(run.created_at));
        o.insert("url".into(), json!(run.url));
        o.insert(
            "sourceBody".into(),
            json!(STANDARD.encode(&run.initial_body)),
        );
    }
}

/// The body of a failure callback (it has a `dlqId`) with what
/// [`failure_payload`] adds; None for any other callback.
pub fn patch_failure_callback(body: &[u8], run: &Run) -> Option<Vec<u8>> {
    let mut payload: Value = serde_json::from_slice(body).ok()?;
    payload.get("dlqId")?;
    failure_payload(&mut payload, run);
    Some(payload.to_string().into_bytes())
}

/// Which runs a bulk cancel or a log listing selects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub run_ids: Vec<String>,
    /// Prefix of the workflow URL (exact with `url_exact`).
    pub url: Option<String>,
    pub url_exact: bool,
    pub label: Option<String>,
    pub state: Option<RunState>,
    pub from_date: Option<Millis>,
    pub to_date: Option<Millis>,
}

impl RunFilter {
    pub fn matches(&self, run: &Run) -> bool {
        (self.run_ids.is_empty() || self.run_ids.contains(&run.run_id))
            && self.url.as_ref().is_none_or(|u| {
                if self.url_exact {
                    &run.url == u
                } else {
                    run.url.starts_with(u.as_str())
                }
            })
            && self
                .label
                .as_ref()
                .is_none_or(|l| run.label.as_deref() == Some(l.as_str()))
            && self.state.is_none_or(|s| run.state == s)
            && self.from_date.is_none_or(|d| run.created_at >= d)
            && self.to_date.is_none_or(|d| run.created_at <= d)
    }
}

/// The body of an `Upstash-Workflow-Invoke: true` trigger: the child's
/// payload and what resumes the invoking run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeRequest {
    #[serde(default)]
    pub body: Option<String>,
    #[serde(flatten)]
    pub invoker: Invoker,
}

/// The invoking run of a child run, and its invoke step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoker {
    pub workflow_run_id: String,
    pub workflow_url: String,
    #[serde(default)]
    pub headers: HeaderMap,
    #[serde(default)]
    pub step: Value,
}

impl InvokeRequest {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let r: Self = serde_json::from_slice(body)
            .map_err(|e| format!("invalid context.invoke body: {e}"))?;
        if r.invoker.workflow_run_id.is_empty() || !r.invoker.step.is_object() {
            return Err("invalid context.invoke body: workflowRunId and step are required".into());
        }
        Ok(r)
    }
}

impl Invoker {
    /// The step that resumes the invoking run with the child's outcome:
    /// `out` is `{body, isFailed, isCanceled}` as the SDK parses it.
    pub fn resume(
        &self,
        user_id: &str,
        state: RunState,
        body: Option<&[u8]>,
        now: Millis,
    ) -> Result<crate::message::NewMessage, crate::publish::HeaderError> {
        let pairs = self
            .headers
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())));
        let mut spec = crate::publish::PublishOptions::from_headers(pairs, now)?.spec;
        spec.url = self.workflow_url.clone();
        let tag = spec.workflow.get_or_insert_with(Default::default);
        tag.run_id = self.workflow_run_id.clone();
        tag.init = false;
        tag.call_type = None;
        tag.invoke = false;
        let out = json!({
            "body": body.map(|b| String::from_utf8_lossy(b).into_owned()),
            "isFailed": state == RunState::Failed,
            "isCanceled": state == RunState::Canceled,
        });
        let mut step = self.step.clone();
        if let Some(o) = step.as_object_mut() {
            o.insert("out".into(), json!(out.to_string()));
        }
        let message = crate::Message {
            id: crate::ids::message_id(),
            user_id: user_id.to_string(),
            spec,
            body: step.to_string().into_bytes().into(),
            created_at: now,
            not_before: now,
            due_at: now,
            retried: 0,
            state: crate::MessageState::Pending,
        };
        Ok(crate::message::NewMessage {
            message,
            dedup_key: None,
        })
    }
}

/// A run waiting for an event (`context.waitForEvent`): `POST
/// /v2/wait/{eventId}` stores it, a notify or its deadline resumes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiter {
    pub user_id: String,
    pub event_id: String,
    pub run_id: String,
    pub url: String,
    pub deadline: Millis,
    /// The step headers of the wait request: the resume message's.
    pub headers: HeaderMap,
    pub timeout_url: String,
    pub timeout_headers: HeaderMap,
    /// The SDK's step document (`stepId`, `stepName`, `stepType`, ...).
    pub step: Value,
    pub created_at: Millis,
}

/// The body of `POST /v2/wait/{eventId}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitRequest {
    pub url: String,
    #[serde(default)]
    pub timeout: Option<Value>,
    #[serde(default)]
    pub timeout_url: Option<String>,
    #[serde(default)]
    pub timeout_headers: HeaderMap,
    pub step: Value,
}

/// How long a waiter waits when the request names no timeout (the SDK's
/// default).
pub const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// The longest wait a waiter may ask for (a year): a larger timeout is
/// refused rather than turned into a deadline that overflows.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

impl WaitRequest {
    /// The waiter this request stores, or why it is refused.
    pub fn waiter(
        self,
        user_id: &str,
        event_id: &str,
        headers: HeaderMap,
        now: Millis,
    ) -> Result<Waiter, String> {
        let timeout = match &self.timeout {
            None | Some(Value::Null) => DEFAULT_WAIT,
            Some(Value::Number(n)) => std::time::Duration::from_secs(
                n.as_u64()
                    .ok_or("timeout must be a whole number of seconds")?,
            ),
            Some(Value::String(s)) => crate::duration::parse_duration(s)
                .map_err(|e| format!("invalid timeout {s:?}: {e}"))?,
            Some(other) => return Err(format!("invalid timeout {other}")),
        };
        if timeout > MAX_WAIT {
            return Err(format!(
                "timeout must be at most {} seconds (a year)",
                MAX_WAIT.as_secs()
            ));
        }
        let run_id = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Upstash-Workflow-RunId"))
            .and_then(|(_, v)| v.first().cloned())
            .ok_or("the Upstash-Workflow-RunId header is missing")?;
        crate::destination::validate_url(&self.url).map_err(|e| e.to_string())?;
        if !self.step.is_object() {
            return Err("step must be a JSON object".into());
        }
        let timeout_url = self.timeout_url.unwrap_or_else(|| self.url.clone());
        Ok(Waiter {
            user_id: user_id.to_string(),
            event_id: event_id.to_string(),
            run_id,
            url: self.url,
            deadline: now.saturating_add(timeout.as_millis() as Millis),
            headers,
            timeout_url,
            timeout_headers: self.timeout_headers,
            step: self.step,
            created_at: now,
        })
    }
}

impl Waiter {
    /// The message that resumes the run: the wait step with the event's
    /// data as `out` (base64, as the SDK decodes it), or, at the deadline,
    /// with `waitTimeout: true` to the timeout URL.
    pub fn resume(
        &self,
        event: Option<&[u8]>,
        config: &TriggerConfig,
        now: Millis,
    ) -> Result<crate::message::NewMessage, crate::publish::HeaderError> {
        let (url, headers) = match event {
            Some(_) => (&self.url, &self.headers),
            None => (&self.timeout_url, &self.timeout_headers),
        };
        let pairs = headers
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())));
        let mut spec = crate::publish::PublishOptions::from_headers(pairs, now)?.spec;
        spec.url = url.clone();
        if spec.workflow.is_none() {
            spec.workflow = Some(WorkflowTag {
                run_id: self.run_id.clone(),
                ..Default::default()
            });
        }
        config.apply(&mut spec);
        let mut step = self.step.clone();
        if let Some(o) = step.as_object_mut() {
            match event {
                Some(data) => {
                    o.insert("out".into(), json!(STANDARD.encode(data)));
                    o.insert("waitTimeout".into(), json!(false));
                }
                None => {
                    o.remove("out");
                    o.insert("waitTimeout".into(), json!(true));
                }
            }
            o.insert("waitEventId".into(), json!(self.event_id));
        }
        let message = crate::Message {
            id: crate::ids::message_id(),
            user_id: self.user_id.clone(),
            spec,
            body: step.to_string().into_bytes().into(),
            created_at: now,
            not_before: now,
            due_at: now,
            retried: 0,
            state: crate::MessageState::Pending,
        };
        Ok(crate::message::NewMessage {
            message,
            dedup_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, id: &str, body: &str) -> StepEntry {
        StepEntry {
            seq,
            message_id: id.into(),
            call_type: STEP.into(),
            body: body.as_bytes().to_vec(),
            created_at: 0,
        }
    }

    #[test]
    fn the_log_is_cut_at_the_delivered_message() {
        let log = [
            entry(0, "m0", "init"),
            entry(1, "m1", "a"),
            entry(2, "m2", "b"),
        ];
        let cut = steps_json(&log, Some("m1"));
        assert_eq!(cut.as_array().unwrap().len(), 2);
        assert_eq!(cut[1]["messageId"], "m1");
        assert_eq!(cut[0]["body"], STANDARD.encode("init"));
        assert_eq!(steps_json(&log, None).as_array().unwrap().len(), 3);
        assert!(logged(&log, "m2") && !logged(&log, "m3"));
    }

    #[test]
    fn workflow_headers_are_read() {
        let mut tag = WorkflowTag::default();
        assert!(read_setting(&mut tag, "workflow-runid", "wfr_1"));
        assert!(read_setting(&mut tag, "workflow-init", "true"));
        assert!(read_setting(
            &mut tag,
            "feature-set",
            "LazyFetch,WF_TriggerOnConfig"
        ));
        assert!(!read_setting(&mut tag, "retries", "1"));
        assert!(tag.init && tag.is_step() && tag.has_feature(TRIGGER_ON_CONFIG));
        tag.call_type = Some("toCallback".into());
        assert!(tag.is_call() && !tag.is_step() && tag.is_published_part());
    }

    #[test]
    fn steps_inherit_the_trigger_settings_only_when_asked() {
        let mut trigger = MessageSpec {
            max_retries: 0,
            failure_callback: Some("http://app/wf".into()),
            ..Default::default()
        };
        trigger.header.insert("X-User".into(), vec!["u".into()]);
        let tag = WorkflowTag {
            features: "WF_TriggerOnConfig".into(),
            ..Default::default()
        };
        let config = TriggerConfig::of_trigger(&trigger, &tag);
        let mut step = MessageSpec {
            max_retries: 3,
            ..Default::default()
        };
        config.apply(&mut step);
        assert_eq!(step.max_retries, 0);
        assert_eq!(step.failure_callback.as_deref(), Some("http://app/wf"));
        assert_eq!(step.header["X-User"], vec!["u".to_string()]);
        let plain = TriggerConfig::of_trigger(&trigger, &WorkflowTag::default());
        let mut step = MessageSpec {
            max_retries: 3,
            ..Default::default()
        };
        plain.apply(&mut step);
        assert_eq!(step.max_retries, 3);
    }

    #[test]
    fn a_waiter_resumes_with_the_event_or_times_out() {
        let body = json!({
            "url": "http://app/wf", "timeout": "10s", "timeoutUrl": "http://app/wf",
            "timeoutHeaders": {"Upstash-Workflow-Runid": ["wfr_1"]},
            "step": {"stepId": 2, "stepName": "w", "stepType": "Wait", "concurrent": 1},
        });
        let req: WaitRequest = serde_json::from_value(body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("Upstash-Workflow-RunId".into(), vec!["wfr_1".into()]);
        let w = req.waiter("u", "evt", headers, 1_000).unwrap();
        assert_eq!((w.deadline, w.run_id.as_str()), (11_000, "wfr_1"));
        let config = TriggerConfig::default();
        let m = w
            .resume(Some(b"{\"ok\":1}"), &config, 2_000)
            .unwrap()
            .message;
        let step: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(step["out"], STANDARD.encode("{\"ok\":1}"));
        assert_eq!(step["waitTimeout"], false);
        assert_eq!(m.spec.workflow.unwrap().run_id, "wfr_1");
        let t = w.resume(None, &config, 2_000).unwrap().message;
        let step: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(step["waitTimeout"], true);
        assert!(step.get("out").is_none());
        let bad: WaitRequest =
            serde_json::from_value(json!({"url": "http://a", "timeout": "soon", "step": {}}))
                .unwrap();
        assert!(bad.waiter("u", "e", HeaderMap::new(), 0).is_err());
        let mut run = HeaderMap::new();
        run.insert("Upstash-Workflow-RunId".into(), vec!["wfr_1".into()]);
        for timeout in [json!(u64::MAX), json!(400 * 86_400), json!("10000d")] {
            let huge: WaitRequest =
                serde_json::from_value(json!({"url": "http://a", "timeout": timeout, "step": {}}))
                    .unwrap();
            let err = huge.waiter("u", "e", run.clone(), 1_000).unwrap_err();
            assert!(err.contains("at most"), "{timeout}: {err}");
        }
        let year: WaitRequest =
            serde_json::from_value(json!({"url": "http://a", "timeout": 365 * 86_400, "step": {}}))
                .unwrap();
        let w = year.waiter("u", "e", run, 1_000).unwrap();
        assert_eq!(w.deadline, 1_000 + 365 * 86_400 * 1_000);
    }

    #[test]
    fn an_invoked_run_resumes_its_invoker() {
        let body = json!({
            "body": "{\"x\":1}", "workflowRunId": "wfr_parent", "workflowUrl": "http://app/parent",
            "workflowRunCreatedAt": 5,
            "headers": {"Upstash-Workflow-Runid": ["wfr_parent"], "Authorization": ["Bearer t"]},
            "step": {"stepId": 3, "stepName": "child", "stepType": "Invoke", "concurrent": 1},
        });
        let req = InvokeRequest::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(req.body.as_deref(), Some("{\"x\":1}"));
        let m = req
            .invoker
            .resume("u", RunState::Success, Some(b"\"done\""), 9)
            .unwrap()
            .message;
        assert_eq!(m.spec.url, "http://app/parent");
        assert_eq!(m.spec.workflow.as_ref().unwrap().run_id, "wfr_parent");
        assert!(!m.spec.header.contains_key("Authorization"));
        let step: Value = serde_json::from_slice(&m.body).unwrap();
        let out: Value = serde_json::from_str(step["out"].as_str().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"body": "\"done\"", "isFailed": false, "isCanceled": false})
        );
        assert!(InvokeRequest::parse(b"{}").is_err());
    }

    #[test]
    fn run_states_round_trip() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
    }
}
