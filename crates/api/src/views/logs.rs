//! The log of state changes (`GET /v2/events`, `GET /v2/logs`; WIRE.md
//! §3.9 and §4.6).

use qstash_core::log::LogEntry;
use serde::Serialize;
use utoipa::ToSchema;

use super::{base64, Headers};

/// One state change of a message (WIRE.md §4.6), with the message's
/// header and body redacted as everywhere else. Optional fields are
/// omitted, never `null`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntryView {
    /// Unix milliseconds of the change.
    pub time: i64,
    pub message_id: String,
    /// CREATED, ACTIVE, RETRY, ERROR, DELIVERED, FAILED, CANCEL_REQUESTED
    /// or CANCELED (one L: the Python SDK parses it).
    #[schema(value_type = String)]
    pub state: &'static str,
    /// Why the attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix milliseconds of the next attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_delivery_time: Option<i64>,
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
    /// Plural here, unlike the Message object (WIRE.md §4.6).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub callback_headers: Option<Headers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub failure_callback_headers: Option<Headers>,
    /// Milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// The Python SDK reads `retryDelayExpr`, the OpenAPI says
    /// `retryDelayExpression`: both are sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay_expr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay_expression: Option<String>,
    #[serde(rename = "callerIP", skip_serializing_if = "Option::is_none")]
    pub caller_ip: Option<String>,
    /// The first label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The attempt's status (ERROR, DELIVERED and FAILED entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub response_header: Option<Headers>,
    /// The attempt's answer, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Seconds of a flow-control rate's period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    pub url: String,
    pub method: String,
    pub max_retries: u32,
    #[schema(value_type = std::collections::HashMap<String, Vec<String>>)]
    pub header: Headers,
    /// The message body, base64.
    pub body: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub not_before: i64,
}

impl LogEntryView {
    pub fn of(e: &LogEntry) -> Self {
        let m = &e.message;
        let s = &m.spec;
        let non_empty = |h: &Headers| (!h.is_empty()).then(|| h.clone());
        let fc = s.flow_control.as_ref();
        let response = e.response.as_ref();
        Self {
            time: e.time,
            message_id: m.id.clone(),
            state: e.state.as_str(),
            error: e.error.clone(),
            next_delivery_time: e.next_delivery_time,
            topic_name: s.topic_name.clone(),
            endpoint_name: s.endpoint_name.clone(),
            queue_name: s.queue_name.clone(),
            schedule_id: s.schedule_id.clone(),
            callback: s.callback.clone(),
            failure_callback: s.failure_callback.clone(),
            callback_headers: non_empty(&s.callback_header),
            failure_callback_headers: non_empty(&s.failure_callback_header),
            timeout: s.timeout_ms,
            retry_delay_expr: s.retry_delay.clone(),
            retry_delay_expression: s.retry_delay.clone(),
            caller_ip: s.caller_ip.clone(),
            label: s.labels.first().cloned(),
            labels: (!s.labels.is_empty()).then(|| s.labels.clone()),
            response_status: response.map(|r| r.status),
            response_header: response.map(|r| r.header.clone()),
            response_body: response.map(|r| base64(&r.body)),
            flow_control_key: fc.map(|f| f.key.clone()),
            parallelism: fc.and_then(|f| f.parallelism),
            rate: fc.and_then(|f| f.rate),
            period: fc.map(|f| f.period),
            url: s.url.clone(),
            method: s.method.clone(),
            max_retries: s.max_retries,
            header: s.redact.header_map(&s.header),
            body: base64(&s.redact.body(&m.body)),
            created_at: m.created_at,
            not_before: m.not_before,
        }
    }
}

/// A page of `GET /v2/events` (the key both SDKs read).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<LogEntryView>,
    /// Present when more entries follow (omitted on the last page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of `GET /v2/logs` (the OpenAPI's key).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsPage {
    pub logs: Vec<LogEntryView>,
    /// Present when more entries follow (omitted on the last page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    //! Pins the wire (WIRE.md §4.6): the SDK suites parse these keys.

    use qstash_core::flow_control::FlowControl;
    use qstash_core::log::LogEntry;
    use qstash_core::message::{LogState, Message, MessageSpec, MessageState};
    use qstash_core::outcome::AttemptResponse;
    use qstash_core::redact::Redaction;
    use serde_json::json;

    use super::*;

    fn headers(name: &str, value: &str) -> Headers {
        [(name.to_string(), vec![value.to_string()])].into()
    }

    fn message(spec: MessageSpec) -> Message {
        Message {
            id: "msg_1".into(),
            user_id: "u".into(),
            spec,
            body: b"hi".to_vec().into(),
            created_at: 1000,
            not_before: 2000,
            due_at: 3000,
            retried: 0,
            state: MessageState::Pending,
        }
    }

    fn entry(state: LogState, message: Message) -> LogEntry {
        LogEntry {
            time: 5000,
            state,
            error: None,
            next_delivery_time: None,
            response: None,
            message,
        }
    }

    #[test]
    fn a_bare_entry_omits_every_optional_key() {
        let spec = MessageSpec {
            url: "http://127.0.0.1:1/x".into(),
            method: "POST".into(),
            max_retries: 3,
            ..Default::default()
        };
        let view = LogEntryView::of(&entry(LogState::Created, message(spec)));
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            json!({
                "time": 5000, "messageId": "msg_1", "state": "CREATED",
                "url": "http://127.0.0.1:1/x", "method": "POST", "maxRetries": 3,
                "header": {}, "body": "aGk=", "createdAt": 1000, "notBefore": 2000,
            })
        );
    }

    #[test]
    fn a_full_entry_has_every_key_with_the_sdks_spelling() {
        let spec = MessageSpec {
            url: "http://127.0.0.1:1/x".into(),
            method: "PUT".into(),
            header: headers("Secret", "s"),
            max_retries: 2,
            retry_delay: Some("1000".into()),
            timeout_ms: Some(1500),
            callback: Some("http://127.0.0.1:1/cb".into()),
            failure_callback: Some("http://127.0.0.1:1/fcb".into()),
            callback_header: headers("Upstash-Callback-Retries", "1"),
            failure_callback_header: headers("Upstash-Failure-Callback-Retries", "2"),
            labels: vec!["a".into(), "b".into()],
            redact: Redaction::parse("header[Secret]").unwrap(),
            topic_name: Some("group".into()),
            endpoint_name: Some("ep".into()),
            queue_name: Some("q".into()),
            schedule_id: Some("scd_1".into()),
            flow_control: Some(FlowControl {
                key: "k".into(),
                parallelism: Some(2),
                rate: None,
                period: 1,
            }),
            caller_ip: Some("127.0.0.1".into()),
            ..Default::default()
        };
        let mut e = entry(LogState::Error, message(spec));
        e.error = Some("boom".into());
        e.next_delivery_time = Some(9000);
        e.response = Some(AttemptResponse {
            status: 500,
            header: headers("X-Answer", "no"),
            body: b"bad".to_vec(),
        });
        let secret = qstash_core::redact::redacted(b"s");
        assert_eq!(
            serde_json::to_value(LogEntryView::of(&e)).unwrap(),
            json!({
                "time": 5000, "messageId": "msg_1", "state": "ERROR", "error": "boom",
                "nextDeliveryTime": 9000, "topicName": "group", "endpointName": "ep",
                "queueName": "q", "scheduleId": "scd_1",
                "callback": "http://127.0.0.1:1/cb", "failureCallback": "http://127.0.0.1:1/fcb",
                "callbackHeaders": {"Upstash-Callback-Retries": ["1"]},
                "failureCallbackHeaders": {"Upstash-Failure-Callback-Retries": ["2"]},
                "timeout": 1500, "retryDelayExpr": "1000", "retryDelayExpression": "1000",
                "callerIP": "127.0.0.1", "label": "a", "labels": ["a", "b"],
                "responseStatus": 500, "responseHeader": {"X-Answer": ["no"]},
                "responseBody": "YmFk",
                "flowControlKey": "k", "parallelism": 2, "period": 1,
                "url": "http://127.0.0.1:1/x", "method": "PUT", "maxRetries": 2,
                "header": {"Secret": [secret]}, "body": "aGk=",
                "createdAt": 1000, "notBefore": 2000,
            })
        );
    }

    #[test]
    fn the_cursor_is_omitted_on_the_last_page() {
        let page = EventsPage {
            events: vec![],
            cursor: None,
        };
        assert_eq!(serde_json::to_value(page).unwrap(), json!({"events": []}));
        let page = LogsPage {
            logs: vec![],
            cursor: Some("12-3".into()),
        };
        assert_eq!(
            serde_json::to_value(page).unwrap(),
            json!({"logs": [], "cursor": "12-3"})
        );
    }
}
