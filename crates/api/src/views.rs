//! JSON shapes the SDKs parse (shared/spec/WIRE.md §4), with redaction
//! applied: nothing redacted ever leaves through a read path. Typed, so
//! the OpenAPI document (`GET /v2/openapi.json`) is derived from the very
//! structs that are serialized.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qstash_core::signing::SigningKeys;
use qstash_core::Message;
use serde::Serialize;
use utoipa::ToSchema;

mod console;
mod logs;
mod workflow;

pub use console::{
    CountsView, CronNextView, CronTick, DlqCountView, LiveMessageView, LivePage, MinuteView,
    StatsView,
};
pub use logs::{EventsPage, LogEntryView, LogsPage};
pub use workflow::{
    HookAnswer, HookQueued, HookResumed, NotifiedView, RunsPage, StepView, WaiterView,
    WorkflowDlqDeleted, WorkflowRunRef, WorkflowRunsView,
};

/// Bytes as standard base64 (`bodyBase64`, `responseBodyBase64`).
pub fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person to read.
    pub error: String,
}

/// Header name to its values.
pub type Headers = BTreeMap<String, Vec<String>>;

/// A message waiting or in flight (`GET /v2/messages/{id}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: String,
    pub url: String,
    pub method: String,
    /// Forwarded headers (redacted ones masked).
    #[schema(value_type = std::collections::HashMap<String, Vec<String>>)]
    pub header: Headers,
    /// The body, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    pub max_retries: u32,
    pub retried: u32,
    /// Unix milliseconds.
    pub not_before: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub callback_header: Option<Headers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub failure_callback_header: Option<Headers>,
    /// The Python SDK reads `callerIP`, the JS type says `callerIp`.
    #[serde(rename = "callerIP", skip_serializing_if = "Option::is_none")]
    pub caller_ip_upper: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay_expression: Option<String>,
    /// The first label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Seconds of a flow-control rate's period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
}

impl MessageView {
    pub fn of(m: &Message) -> Self {
        let s = &m.spec;
        let body = s.redact.body(&m.body);
        let (body, body_base64) = match std::str::from_utf8(&body) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(STANDARD.encode(&body))),
        };
        let non_empty = |h: &Headers| (!h.is_empty()).then(|| h.clone());
        let fc = s.flow_control.as_ref();
        Self {
            message_id: m.id.clone(),
            url: s.url.clone(),
            method: s.method.clone(),
            header: s.redact.header_map(&s.header),
            body,
            body_base64,
            max_retries: s.max_retries,
            retried: m.retried,
            not_before: m.not_before,
            created_at: m.created_at,
            topic_name: s.topic_name.clone(),
            endpoint_name: s.endpoint_name.clone(),
            queue_name: s.queue_name.clone(),
            schedule_id: s.schedule_id.clone(),
            callback: s.callback.clone(),
            failure_callback: s.failure_callback.clone(),
            callback_header: non_empty(&s.callback_header),
            failure_callback_header: non_empty(&s.failure_callback_header),
            caller_ip_upper: s.caller_ip.clone(),
            caller_ip: s.caller_ip.clone(),
            retry_delay_expression: s.retry_delay.clone(),
            label: s.labels.first().cloned(),
            labels: (!s.labels.is_empty()).then(|| s.labels.clone()),
            flow_control_key: fc.map(|f| f.key.clone()),
            parallelism: fc.and_then(|f| f.parallelism),
            rate: fc.and_then(|f| f.rate),
            period: fc.map(|f| f.period),
        }
    }
}

/// One message created by a publish.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub message_id: String,
    /// The destination (absent for an `api/llm` publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Set when a message with the same deduplication id exists: that
    /// message's id is answered and nothing is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
}

/// One element of a publish answer.
pub fn published(id: &str, url: &str, deduplicated: bool) -> Published {
    Published {
        message_id: id.to_string(),
        url: Some(url.to_string()),
        deduplicated: deduplicated.then_some(true),
    }
}

/// A publish answers one message, or one per endpoint of a URL group.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PublishAnswer {
    One(Published),
    UrlGroup(Vec<Published>),
}

/// The signing keys of the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Keys {
    pub current: String,
    pub next: String,
}

impl From<SigningKeys> for Keys {
    fn from(k: SigningKeys) -> Self {
        Keys {
            current: k.current,
            next: k.next,
        }
    }
}

/// How many messages (or workflow runs) a call cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    pub cancelled: u64,
}

/// How many messages a bulk cancel cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkCancelled {
    pub cancelled: u64,
    /// Present when the call stopped at its `count`: call again with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The schedule a create made (or replaced).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleCreated {
    pub schedule_id: String,
}

/// An empty object: the call succeeded and has nothing to say.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Empty {}

/// A queue (`GET /v2/queues/{name}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub name: String,
    pub parallelism: u32,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// Messages not yet delivered: waiting, retrying or in flight.
    pub lag: u64,
    pub paused: bool,
}

impl From<&qstash_core::queue::QueueInfo> for QueueView {
    fn from(q: &qstash_core::queue::QueueInfo) -> Self {
        Self {
            name: q.name.clone(),
            parallelism: q.parallelism,
            created_at: q.created_at,
            updated_at: q.updated_at,
            lag: q.lag,
            paused: q.paused,
        }
    }
}

/// One endpoint of a URL group.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// Omitted when none was given: the JS SDK compares `{name, url}`
    /// objects exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
}

/// A URL group (`GET /v2/topics/{name}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlGroupView {
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    pub endpoints: Vec<EndpointView>,
}

/// A flow-control key and its counters (`GET /v2/flowControl/{key}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowKeyView {
    pub flow_control_key: String,
    /// Messages waiting for the key.
    pub wait_list_size: u64,
    /// 0: no parallelism limit.
    pub parallelism_max: u32,
    pub parallelism_count: u32,
    /// 0: no rate limit.
    pub rate_max: u32,
    pub rate_count: u32,
    /// Seconds.
    pub rate_period: u64,
    /// Unix seconds.
    pub rate_period_start: i64,
    pub is_paused: bool,
    pub is_pinned_parallelism: bool,
    pub is_pinned_rate: bool,
}

/// `GET /v2/globalParallelism`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalParallelism {
    pub parallelism_max: u32,
    pub parallelism_count: u32,
}

/// A DLQ entry (WIRE.md §4.2): the message, redacted as everywhere, plus
/// the DLQ id and the last response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqMessageView {
    #[serde(flatten)]
    pub message: MessageView,
    pub dlq_id: String,
    /// The last attempt's status; 0 when the destination never answered.
    pub response_status: u16,
    #[schema(value_type = std::collections::HashMap<String, Vec<String>>)]
    pub response_header: Headers,
    /// The last answer's body, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body_base64: Option<String>,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The Upstash Workflow run of a workflow message (`client.dlq.list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_url: Option<String>,
}

/// A page of the DLQ.
#[derive(Debug, Serialize, ToSchema)]
pub struct DlqPageView {
    pub messages: Vec<DlqMessageView>,
    /// Present when more entries follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// How many entries a delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: u64,
    /// Present when a bulk delete stopped at its count: call again with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The message a DLQ retry created.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetriedMessage {
    pub message_id: String,
}

/// The messages a bulk DLQ retry created.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedPage {
    pub responses: Vec<RetriedMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A schedule (WIRE.md §4.3), redacted like every read path.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub schedule_id: String,
    pub cron: String,
    /// A URL or a URL group name.
    pub destination: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub method: String,
    #[schema(value_type = std::collections::HashMap<String, Vec<String>>)]
    pub header: Headers,
    pub retries: u32,
    pub is_paused: bool,
    /// Seconds before each fire's message is delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub callback_header: Option<Headers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub failure_callback_header: Option<Headers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// The Python SDK reads `callerIP`, the JS type says `callerIp`.
    #[serde(rename = "callerIP", skip_serializing_if = "Option::is_none")]
    pub caller_ip_upper: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// Unix milliseconds of the last fire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<i64>,
    /// Unix milliseconds of the next fire (absent while paused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<i64>,
    /// The last fire's messages and their states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_states: Option<BTreeMap<String, String>>,
    /// Why the last fire created no message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}
