//! Failed attempts: retries, delays, Retry-After, timeouts, exhaustion.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[tokio::test]
async fn retries_until_success_with_expression_delays() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script(
        "/flaky",
        vec![Reply::status(500), Reply::status(502), Reply::status(200)],
    );
    let id = publish_ok(
        &s,
        &sink.at("/flaky"),
        &[
            ("Upstash-Retries", "3"),
            ("Upstash-Retry-Delay", "(retried + 1) * 300"),
        ],
        "x",
    )
    .await;
    let got = sink.wait_for("/flaky", 3, WAIT).await;
    let retried: Vec<_> = got
        .iter()
        .map(|r| r.header("upstash-retried").unwrap().to_string())
        .collect();
    assert_eq!(retried, vec!["0", "1", "2"]);
    assert!(got
        .iter()
        .all(|r| r.header("upstash-message-id") == Some(id.as_str())));
    let (gap1, gap2) = (got[1].at - got[0].at, got[2].at - got[1].at);
    assert!(
        gap1 >= Duration::from_millis(280) && gap1 < Duration::from_millis(800),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(580) && gap2 < Duration::from_millis(1100),
        "second retry after {gap2:?}"
    );
    wait_message_status(&s, &id, 404, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        sink.received_at("/flaky").len(),
        3,
        "no attempt after success"
    );
}

#[tokio::test]
async fn retry_after_header_overrides_the_retry_delay() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script(
        "/busy",
        vec![
            Reply::status(429).header("Retry-After", "1"),
            Reply::status(200),
        ],
    );
    publish_ok(
        &s,
        &sink.at("/busy"),
        &[("Upstash-Retry-Delay", "3600000")],
        "x",
    )
    .await;
    let got = sink.wait_for("/busy", 2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_millis(1600),
        "retried after {gap:?}"
    );
}

#[tokio::test]
async fn exhausted_retries_stop_and_the_message_is_gone() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script("/down", vec![Reply::status(500).body("broken")]);
    let id = publish_ok(
        &s,
        &sink.at("/down"),
        &[("Upstash-Retries", "2"), ("Upstash-Retry-Delay", "50")],
        "x",
    )
    .await;
    sink.wait_for("/down", 3, WAIT).await;
    wait_message_status(&s, &id, 404, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received_at("/down").len(), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn non_retryable_error_stops_retries_at_once() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script(
        "/fatal",
        vec![Reply::status(489).header("Upstash-NonRetryable-Error", "true")],
    );
    let id = publish_ok(
        &s,
        &sink.at("/fatal"),
        &[("Upstash-Retry-Delay", "10")],
        "x",
    )
    .await;
    sink.wait_for("/fatal", 1, WAIT).await;
    wait_message_status(&s, &id, 404, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received_at("/fatal").len(), 1);
}

#[tokio::test]
async fn timeout_bounds_each_attempt() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script(
        "/slow",
        vec![
            Reply::status(200).after(Duration::from_secs(3)),
            Reply::status(200),
        ],
    );
    let start = Instant::now();
    publish_ok(
        &s,
        &sink.at("/slow"),
        &[("Upstash-Timeout", "1s"), ("Upstash-Retry-Delay", "0")],
        "x",
    )
    .await;
    let got = sink.wait_for("/slow", 2, WAIT).await;
    let second = got[1].at - start;
    assert_eq!(
        got[1].header("upstash-retried"),
        Some("1"),
        "the timed-out attempt counts as failed"
    );
    assert!(
        second < Duration::from_millis(2500),
        "retry came after {second:?}; the timeout did not cut the attempt"
    );
}

#[tokio::test]
async fn unreachable_destination_is_a_failed_attempt() {
    let s = server();
    // A port nothing listens on: bind, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = publish_ok(
        &s,
        &format!("http://127.0.0.1:{port}/x"),
        &[("Upstash-Retries", "1"), ("Upstash-Retry-Delay", "10")],
        "x",
    )
    .await;
    wait_message_status(&s, &id, 404, WAIT).await;
}

#[tokio::test]
async fn message_shows_retry_settings_while_retrying() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script("/wait", vec![Reply::status(500)]);
    let id = publish_ok(
        &s,
        &sink.at("/wait"),
        &[
            ("Upstash-Retries", "5"),
            ("Upstash-Retry-Delay", "60000"),
            ("Upstash-Timeout", "5s"),
        ],
        "x",
    )
    .await;
    sink.wait_for("/wait", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m: Value = s
        .get(&format!("/v2/messages/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["maxRetries"], 5);
    assert_eq!(m["retried"], 1);
    assert_eq!(m["retryDelayExpression"], "60000");
}
