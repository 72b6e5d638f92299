//! Callbacks and failure callbacks: signed messages carrying the report of
//! each attempt (WIRE.md §9), retried and logged like any message.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use serde_json::Value;

fn json(r: &Received) -> Value {
    serde_json::from_slice(&r.body).expect("callback body is JSON")
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("base64")
}

/// A callback with its own flow-control key is created inside the commit
/// of the outcome it reports; that commit must wake the gate for the key,
/// with no unrelated publish to the key needed.
#[tokio::test]
async fn a_flow_controlled_callback_is_delivered_without_another_publish() {
    let sink = Sink::start().await;
    let s = server();
    publish_ok(
        &s,
        &sink.at("/dest"),
        &[
            ("Upstash-Callback", &sink.at("/cb")),
            ("Upstash-Callback-Flow-Control-Key", "cb-key"),
            ("Upstash-Callback-Flow-Control-Value", "parallelism=1"),
        ],
        "hello",
    )
    .await;
    sink.wait_for("/dest", 1, WAIT).await;
    let calls = sink.wait_for("/cb", 1, WAIT).await;
    assert_eq!(json(&calls[0])["status"], 200);
}

#[tokio::test]
async fn callback_reports_every_attempt_signed_with_the_payload() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/dest",
        vec![
            Reply::status(500)
                .body("first failed")
                .header("X-Resp", "r1"),
            Reply::status(200).body("done"),
        ],
    );
    let id = publish_ok(
        &s,
        &sink.at("/dest"),
        &[
            ("Upstash-Callback", &sink.at("/cb")),
            ("Upstash-Retries", "1"),
            ("Upstash-Retry-Delay", "100"),
            ("Upstash-Forward-X-Secret", "s3cret"),
            ("Upstash-Forward-X-Plain", "plain"),
            ("Upstash-Redact-Fields", "header[X-Secret]"),
            ("Upstash-Label", "cb-label"),
        ],
        "hello",
    )
    .await;
    let calls = sink.wait_for("/cb", 2, WAIT).await;
    let user = dev_user(0);
    let mut by_retried: Vec<Value> = calls.iter().map(json).collect();
    by_retried.sort_by_key(|p| p["retried"].as_u64());
    for (call, payload) in calls.iter().zip(calls.iter().map(json)) {
        verify(call, user.current_key, &sink.at("/cb")).expect("callback is signed");
        assert_eq!(call.method, "POST");
        assert_eq!(call.header("content-type"), Some("application/json"));
        assert_ne!(call.header("upstash-message-id"), Some(id.as_str()));
        assert_eq!(payload["sourceMessageId"], id);
    }
    let (first, second) = (&by_retried[0], &by_retried[1]);
    assert_eq!(first["status"], 500);
    assert_eq!(b64(&first["body"]), b"first failed");
    assert_eq!(first["header"]["X-Resp"][0], "r1");
    assert_eq!(first["retried"], 0);
    assert_eq!(second["status"], 200);
    assert_eq!(b64(&second["body"]), b"done");
    assert_eq!(second["retried"], 1);
    for p in [first, second] {
        assert_eq!(p["maxRetries"], 1);
        assert_eq!(p["url"], sink.at("/dest"));
        assert_eq!(p["method"], "POST");
        assert_eq!(b64(&p["sourceBody"]), b"hello");
        assert_eq!(p["sourceHeader"]["X-Plain"][0], "plain");
        let secret = p["sourceHeader"]["X-Secret"][0].as_str().unwrap();
        assert!(secret.starts_with("REDACTED:"), "{secret}");
        assert_eq!(p["callerIP"], "127.0.0.1");
        assert!(p["createdAt"].as_i64().unwrap() > 0);
        assert!(p["notBefore"].as_i64().unwrap() >= p["createdAt"].as_i64().unwrap());
        assert!(p.get("dlqId").is_none());
    }
    // The destination itself got the secret header unredacted.
    assert_eq!(
        sink.received_at("/dest")[0].header("x-secret"),
        Some("s3cret")
    );
}

#[tokio::test]
async fn callback_settings_control_its_retries_method_and_headers() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/cb",
        vec![Reply::status(500), Reply::status(502), Reply::status(200)],
    );
    publish_ok(
        &s,
        &sink.at("/dest"),
        &[
            ("Upstash-Callback", &sink.at("/cb")),
            ("Upstash-Callback-Retries", "2"),
            ("Upstash-Callback-Retry-Delay", "100"),
            ("Upstash-Callback-Method", "PUT"),
            ("Upstash-Callback-Forward-X-Cb-Token", "tok"),
            ("Upstash-Retries", "0"),
        ],
        "x",
    )
    .await;
    let calls = sink.wait_for("/cb", 3, WAIT).await;
    let retried: Vec<_> = calls.iter().map(|c| c.header("upstash-retried")).collect();
    assert_eq!(retried, vec![Some("0"), Some("1"), Some("2")]);
    for c in &calls {
        assert_eq!(c.method, "PUT");
        assert_eq!(c.header("x-cb-token"), Some("tok"));
    }
    // A callback never calls back, and the destination was called once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.received_at("/cb").len(), 3);
    assert_eq!(sink.received_at("/dest").len(), 1);
    assert_eq!(sink.received().len(), 4);
}

#[tokio::test]
async fn callback_delay_and_retries_default_to_the_message() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/cb", vec![Reply::status(500)]);
    let started = std::time::Instant::now();
    publish_ok(
        &s,
        &sink.at("/dest"),
        &[
            ("Upstash-Callback", &sink.at("/cb")),
            ("Upstash-Callback-Delay", "1s"),
            ("Upstash-Callback-Retry-Delay", "50"),
            ("Upstash-Retries", "2"),
        ],
        "x",
    )
    .await;
    let calls = sink.wait_for("/cb", 3, WAIT).await;
    assert!(
        calls[0].at.duration_since(started) >= Duration::from_millis(950),
        "the callback was delayed by 1s"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.received_at("/cb").len(),
        3,
        "1 + the message's 2 retries"
    );
}

#[tokio::test]
async fn failure_callback_fires_once_with_the_dlq_id() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/dest", vec![Reply::status(503).body("down")]);
    let id = publish_ok(
        &s,
        &sink.at("/dest"),
        &[
            ("Upstash-Callback", &sink.at("/cb")),
            ("Upstash-Failure-Callback", &sink.at("/fail")),
            ("Upstash-Failure-Callback-Forward-X-F", "f"),
            ("Upstash-Retries", "1"),
            ("Upstash-Retry-Delay", "50"),
        ],
        "payload",
    )
    .await;
    let fails = sink.wait_for("/fail", 1, WAIT).await;
    sink.wait_for("/cb", 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received_at("/fail").len(), 1, "failure callback once");
    assert_eq!(sink.received_at("/cb").len(), 2, "callback per attempt");
    let f = &fails[0];
    verify(f, dev_user(0).current_key, &sink.at("/fail")).expect("signed");
    assert_eq!(f.header("x-f"), Some("f"));
    let p = json(f);
    assert_eq!(p["status"], 503);
    assert_eq!(b64(&p["body"]), b"down");
    assert_eq!(p["sourceMessageId"], id);
    assert_eq!(p["retried"], 1);
    let dlq_id = p["dlqId"].as_str().expect("dlqId").to_string();
    let entry: Value = s
        .get(&format!("/v2/dlq/{dlq_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entry["messageId"], id);
    assert_eq!(entry["dlqId"], dlq_id);
}

#[tokio::test]
async fn callback_deliveries_appear_in_the_logs() {
    let sink = Sink::start().await;
    let s = server();
    publish_ok(
        &s,
        &sink.at("/dest"),
        &[("Upstash-Callback", &sink.at("/cb-logged"))],
        "x",
    )
    .await;
    sink.wait_for("/cb-logged", 1, WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let logs: Value = s
            .get(&format!("/v2/events?url={}", sink.at("/cb-logged")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let states: Vec<&str> = logs["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        if states == ["DELIVERED", "ACTIVE", "CREATED"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "callback log: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_callback_settings_are_rejected_naming_the_header() {
    let sink = Sink::start().await;
    let s = server();
    for (header, value) in [
        ("Upstash-Callback-Retries", "lots"),
        ("Upstash-Failure-Callback-Timeout", "0s"),
        ("Upstash-Callback", "not a url"),
    ] {
        let (status, body) = publish(&s, &sink.at("/dest"), &[(header, value)], "x").await;
        assert_eq!(status, 400, "{header}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(header),
            "{header}: {body}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.received().is_empty(), "nothing stored");
}
