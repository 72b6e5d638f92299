//! JSON shapes the SDKs parse (shared/spec/WIRE.md §4), with redaction
//! applied: nothing redacted ever leaves through a read path.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qstash_core::Message;
use serde_json::{json, Map, Value};

/// `body` when the bytes are UTF-8, else `bodyBase64`, under `prefix`.
pub fn put_body(obj: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => obj.insert(key.into(), json!(text)),
        Err(_) => obj.insert(format!("{key}Base64"), json!(STANDARD.encode(bytes))),
    };
}

fn put_opt(obj: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        obj.insert(key.into(), v.into());
    }
}

/// The Message object of `GET /v2/messages/{id}`.
pub fn message(m: &Message) -> Value {
    let s = &m.spec;
    let mut o = Map::new();
    o.insert("messageId".into(), json!(m.id));
    o.insert("url".into(), json!(s.url));
    o.insert("method".into(), json!(s.method));
    o.insert("header".into(), json!(s.redact.header_map(&s.header)));
    put_body(&mut o, "body", &s.redact.body(&m.body));
    o.insert("maxRetries".into(), json!(s.max_retries));
    o.insert("retried".into(), json!(m.retried));
    o.insert("notBefore".into(), json!(m.not_before));
    o.insert("createdAt".into(), json!(m.created_at));
    put_opt(&mut o, "topicName", s.topic_name.clone());
    put_opt(&mut o, "endpointName", s.endpoint_name.clone());
    put_opt(&mut o, "queueName", s.queue_name.clone());
    put_opt(&mut o, "scheduleId", s.schedule_id.clone());
    put_opt(&mut o, "callback", s.callback.clone());
    put_opt(&mut o, "failureCallback", s.failure_callback.clone());
    if !s.callback_header.is_empty() {
        o.insert("callbackHeader".into(), json!(s.callback_header));
    }
    if !s.failure_callback_header.is_empty() {
        o.insert(
            "failureCallbackHeader".into(),
            json!(s.failure_callback_header),
        );
    }
    // The Python SDK reads callerIP, the JS type says callerIp.
    put_opt(&mut o, "callerIP", s.caller_ip.clone());
    put_opt(&mut o, "callerIp", s.caller_ip.clone());
    put_opt(&mut o, "retryDelayExpression", s.retry_delay.clone());
    if let Some(first) = s.labels.first() {
        o.insert("label".into(), json!(first));
        o.insert("labels".into(), json!(s.labels));
    }
    if let Some(fc) = &s.flow_control {
        o.insert("flowControlKey".into(), json!(fc.key));
        put_opt(&mut o, "parallelism", fc.parallelism);
        put_opt(&mut o, "rate", fc.rate);
        o.insert("period".into(), json!(fc.period));
    }
    Value::Object(o)
}

/// One element of a publish answer.
pub fn published(id: &str, url: &str, deduplicated: bool) -> Value {
    let mut o = json!({ "messageId": id, "url": url });
    if deduplicated {
        o["deduplicated"] = json!(true);
    }
    o
}
