//! Callbacks and failure callbacks. A callback is itself a message: the
//! JSON report of one attempt (shared/spec/WIRE.md §9), POSTed to the
//! callback URL, signed, retried and logged like any other message.
//!
//! Its settings come from the source message's `Upstash-Callback-*` (or
//! `Upstash-Failure-Callback-*`) headers: the prefix is stripped and the
//! rest read as the `Upstash-<X>` header of the callback message, so
//! `Upstash-Callback-Retries: 1` is `Upstash-Retries: 1` and
//! `Upstash-Callback-Forward-Foo` is forwarded as `Foo`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::clock::Millis;
use crate::headers::{strip_prefix_ci, HeaderMap};
use crate::message::{Message, MessageSpec, MessageState};
use crate::publish::{HeaderError, PublishOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// After every attempt.
    Callback,
    /// Once, when retries are exhausted.
    Failure,
}

impl CallbackKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Callback => "Upstash-Callback-",
            Self::Failure => "Upstash-Failure-Callback-",
        }
    }

    fn url(self, spec: &MessageSpec) -> Option<&str> {
        match self {
            Self::Callback => spec.callback.as_deref(),
            Self::Failure => spec.failure_callback.as_deref(),
        }
    }

    fn settings(self, spec: &MessageSpec) -> &HeaderMap {
        match self {
            Self::Callback => &spec.callback_header,
            Self::Failure => &spec.failure_callback_header,
        }
    }
}

/// Names of the settings as the user wrote them, so an error names the
/// header at fault (`HeaderError` holds static names).
const NAMES: [(&str, &str, &str); 8] = [
    (
        "Upstash-Method",
        "Upstash-Callback-Method",
        "Upstash-Failure-Callback-Method",
    ),
    (
        "Upstash-Delay",
        "Upstash-Callback-Delay",
        "Upstash-Failure-Callback-Delay",
    ),
    (
        "Upstash-Not-Before",
        "Upstash-Callback-Not-Before",
        "Upstash-Failure-Callback-Not-Before",
    ),
    (
        "Upstash-Retries",
        "Upstash-Callback-Retries",
        "Upstash-Failure-Callback-Retries",
    ),
    (
        "Upstash-Retry-Delay",
        "Upstash-Callback-Retry-Delay",
        "Upstash-Failure-Callback-Retry-Delay",
    ),
    (
        "Upstash-Timeout",
        "Upstash-Callback-Timeout",
        "Upstash-Failure-Callback-Timeout",
    ),
    (
        "Upstash-Redact-Fields",
        "Upstash-Callback-Redact-Fields",
        "Upstash-Failure-Callback-Redact-Fields",
    ),
    (
        "Upstash-Flow-Control-Value",
        "Upstash-Callback-Flow-Control-Value",
        "Upstash-Failure-Callback-Flow-Control-Value",
    ),
];

fn renamed(kind: CallbackKind, header: &'static str) -> &'static str {
    let found = NAMES.iter().find(|(plain, _, _)| *plain == header);
    match (kind, found) {
        (CallbackKind::Callback, Some((_, name, _))) => name,
        (CallbackKind::Failure, Some((_, _, name))) => name,
        (CallbackKind::Callback, None) => "Upstash-Callback-*",
        (CallbackKind::Failure, None) => "Upstash-Failure-Callback-*",
    }
}

/// What the destination answered to the attempt being reported; status 0
/// when no answer came.
#[derive(Debug, Clone, Copy)]
pub struct AttemptReport<'a> {
    pub status: u16,
    pub header: &'a HeaderMap,
    pub body: &'a [u8],
    /// The DLQ entry of the source message (failure callbacks only).
    pub dlq_id: Option<&'a str>,
}

/// The message settings of a callback of `kind` for `source`. Checked at
/// publish time too, so a bad `Upstash-Callback-Retries` is a 400 there.
pub fn options(
    kind: CallbackKind,
    source: &MessageSpec,
    now: Millis,
) -> Result<PublishOptions, HeaderError> {
    let prefix = kind.prefix();
    let mut headers = Vec::new();
    for (name, values) in kind.settings(source) {
        let Some(rest) = strip_prefix_ci(name, prefix) else {
            continue;
        };
        // As on the message itself (`PublishOptions::from_headers`), a
        // workflow SDK's forwarded connection headers are dropped.
        let dropped = source.workflow.is_some()
            && strip_prefix_ci(rest, "Forward-").is_some_and(crate::headers::is_hop_by_hop);
        if dropped {
            continue;
        }
        for value in values {
            headers.push((format!("Upstash-{rest}"), value.clone()));
        }
    }
    let mut o =
        PublishOptions::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), now)
            .map_err(|e| HeaderError {
                header: renamed(kind, e.header),
                reason: e.reason,
            })?;
    let retries_given = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Upstash-Retries"));
    if !retries_given {
        o.spec.max_retries = source.max_retries;
    }
    // A callback never calls back, and is never deduplicated.
    o.spec.callback = None;
    o.spec.failure_callback = None;
    o.spec.callback_header.clear();
    o.spec.failure_callback_header.clear();
    o.dedup = None;
    Ok(o)
}

/// Checks both callback setting families of a publish.
pub fn validate(spec: &MessageSpec, now: Millis) -> Result<(), HeaderError> {
    for kind in [CallbackKind::Callback, CallbackKind::Failure] {
        if !kind.settings(spec).is_empty() {
            options(kind, spec, now)?;
        }
    }
    Ok(())
}

/// The callback message of `kind` reporting `report` about `source`, or
/// None when the source has no such callback or is a callback itself.
pub fn message(
    kind: CallbackKind,
    source: &Message,
    report: &AttemptReport,
    now: Millis,
) -> Result<Option<Message>, HeaderError> {
    if source.spec.callback_of.is_some() {
        return Ok(None);
    }
    let Some(url) = kind.url(&source.spec) else {
        return Ok(None);
    };
    let o = options(kind, &source.spec, now)?;
    let mut spec = o.spec;
    spec.url = url.to_string();
    spec.header
        .entry("Content-Type".into())
        .or_insert_with(|| vec!["application/json".into()]);
    spec.caller_ip = source.spec.caller_ip.clone();
    spec.callback_of = Some(source.id.clone());
    let due = o.not_before.unwrap_or(now);
    Ok(Some(Message {
        id: crate::ids::message_id(),
        user_id: source.user_id.clone(),
        spec,
        body: payload(source, report).to_string().into_bytes().into(),
        created_at: now,
        not_before: due,
        due_at: due,
        retried: 0,
        state: MessageState::Pending,
    }))
}

/// The JSON document a callback carries (WIRE.md §9). The source's header
/// and body are shown as every read path shows them: redacted.
pub fn payload(source: &Message, report: &AttemptReport) -> Value {
    let s = &source.spec;
    let mut o = Map::new();
    o.insert("status".into(), json!(report.status));
    o.insert("header".into(), json!(report.header));
    o.insert("body".into(), json!(STANDARD.encode(report.body)));
    o.insert("retried".into(), json!(source.retried));
    o.insert("maxRetries".into(), json!(s.max_retries));
    if let Some(id) = report.dlq_id {
        o.insert("dlqId".into(), json!(id));
    }
    o.insert("sourceMessageId".into(), json!(source.id));
    let mut opt = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            o.insert(key.into(), json!(v));
        }
    };
    opt("topicName", &s.topic_name);
    opt("endpointName", &s.endpoint_name);
    opt("queueName", &s.queue_name);
    opt("scheduleId", &s.schedule_id);
    opt("callerIP", &s.caller_ip);
    o.insert("url".into(), json!(s.url));
    o.insert("method".into(), json!(s.method));
    o.insert("sourceHeader".into(), json!(s.redact.header_map(&s.header)));
    o.insert(
        "sourceBody".into(),
        json!(STANDARD.encode(s.redact.body(&source.body))),
    );
    o.insert("notBefore".into(), json!(source.not_before));
    o.insert("createdAt".into(), json!(source.created_at));
    if let Some(first) = s.labels.first() {
        o.insert("label".into(), json!(first));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redaction;

    fn source(headers: &[(&str, &str)]) -> Message {
        let o = PublishOptions::from_headers(headers.iter().copied(), 1_000).unwrap();
        let mut spec = o.spec;
        spec.url = "http://dest/x".into();
        spec.caller_ip = Some("10.0.0.1".into());
        Message {
            id: "msg_src".into(),
            user_id: "u".into(),
            spec,
            body: b"secret body".to_vec().into(),
            created_at: 900,
            not_before: 950,
            due_at: 950,
            retried: 2,
            state: MessageState::Active,
        }
    }

    fn report<'a>(header: &'a HeaderMap, dlq_id: Option<&'a str>) -> AttemptReport<'a> {
        AttemptReport {
            status: 500,
            header,
            body: b"oops",
            dlq_id,
        }
    }

    #[test]
    fn settings_are_read_as_the_callback_message_headers() {
        let src = source(&[
            ("Upstash-Callback", "http://cb/done"),
            ("Upstash-Callback-Retries", "1"),
            ("Upstash-Callback-Retry-Delay", "500"),
            ("Upstash-Callback-Timeout", "3s"),
            ("Upstash-Callback-Delay", "10s"),
            ("Upstash-Callback-Method", "PUT"),
            ("Upstash-Callback-Forward-X-Token", "t1"),
            ("Upstash-Retries", "5"),
        ]);
        let h = HeaderMap::new();
        let m = message(CallbackKind::Callback, &src, &report(&h, None), 2_000)
            .unwrap()
            .unwrap();
        assert_eq!(m.spec.url, "http://cb/done");
        assert_eq!(m.spec.max_retries, 1);
        assert_eq!(m.spec.retry_delay.as_deref(), Some("500"));
        assert_eq!(m.spec.timeout_ms, Some(3_000));
        assert_eq!(m.spec.method, "PUT");
        assert_eq!(m.spec.header["X-Token"], vec!["t1"]);
        assert_eq!(m.spec.header["Content-Type"], vec!["application/json"]);
        assert_eq!((m.not_before, m.due_at), (12_000, 12_000));
        assert_eq!(m.spec.callback_of.as_deref(), Some("msg_src"));
        assert!(m.spec.callback.is_none());
    }

    #[test]
    fn retries_default_to_the_source_message() {
        let src = source(&[
            ("Upstash-Failure-Callback", "http://cb/fail"),
            ("Upstash-Retries", "7"),
        ]);
        let h = HeaderMap::new();
        let m = message(CallbackKind::Failure, &src, &report(&h, Some("1-2")), 0)
            .unwrap()
            .unwrap();
        assert_eq!(m.spec.max_retries, 7);
        assert_eq!(m.spec.method, "POST");
        assert!(message(CallbackKind::Callback, &src, &report(&h, None), 0)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_callback_never_calls_back() {
        let mut src = source(&[("Upstash-Callback", "http://cb/done")]);
        src.spec.callback_of = Some("msg_other".into());
        let h = HeaderMap::new();
        assert!(message(CallbackKind::Callback, &src, &report(&h, None), 0)
            .unwrap()
            .is_none());
    }

    #[test]
    fn payload_reports_the_attempt_and_redacts_the_source() {
        let mut src = source(&[
            ("Upstash-Forward-Authorization", "Bearer s"),
            ("Upstash-Forward-X-Plain", "p"),
            ("Upstash-Label", "billing"),
        ]);
        src.spec.redact = Redaction::parse("body, header[Authorization]").unwrap();
        let mut h = HeaderMap::new();
        h.insert("X-Resp".into(), vec!["r".into()]);
        let p = payload(&src, &report(&h, Some("9-1")));
        assert_eq!(p["status"], 500);
        assert_eq!(p["body"], STANDARD.encode("oops"));
        assert_eq!(p["header"]["X-Resp"][0], "r");
        assert_eq!(
            (p["retried"].clone(), p["maxRetries"].clone()),
            (json!(2), json!(3))
        );
        assert_eq!(p["dlqId"], "9-1");
        assert_eq!(p["sourceMessageId"], "msg_src");
        assert_eq!(p["url"], "http://dest/x");
        assert_eq!(p["method"], "POST");
        assert_eq!(p["callerIP"], "10.0.0.1");
        assert_eq!(
            (p["notBefore"].clone(), p["createdAt"].clone()),
            (json!(950), json!(900))
        );
        assert_eq!(p["sourceHeader"]["X-Plain"][0], "p");
        let auth = p["sourceHeader"]["Authorization"][0].as_str().unwrap();
        assert!(auth.starts_with("REDACTED:"), "{auth}");
        let body = STANDARD.decode(p["sourceBody"].as_str().unwrap()).unwrap();
        assert!(body.starts_with(b"REDACTED:"));
        assert_eq!(p["label"], "billing");
        assert!(p.get("topicName").is_none());
    }

    #[test]
    fn bad_settings_are_rejected_at_publish_naming_the_callback_header() {
        let parse = |h: &[(&str, &str)]| PublishOptions::from_headers(h.iter().copied(), 0);
        let err = parse(&[("Upstash-Failure-Callback-Retries", "many")]).unwrap_err();
        assert_eq!(err.header, "Upstash-Failure-Callback-Retries");
        let err = parse(&[("upstash-callback-method", "FETCH")]).unwrap_err();
        assert_eq!(err.header, "Upstash-Callback-Method");
        assert!(parse(&[("Upstash-Callback-Retries", "2")]).is_ok());
    }
}
