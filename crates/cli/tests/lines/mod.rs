//! Helpers for the URL-group, queue and flow-control tests: API calls as
//! any dev user, and what a slow sink saw (order, overlap, rate).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use qstash_testkit::{dev_user, Received, Server};
use serde_json::Value;

/// A JSON API call as dev user `user`; returns status and body.
pub async fn call(
    s: &Server,
    user: usize,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.request(method, path, &dev_user(user));
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("api call");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn ok(s: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, json) = call(s, 0, method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path} answered {status}: {json}"
    );
    json
}

/// Sends `body` to `path` (`/v2/publish/...` or `/v2/enqueue/...`).
pub async fn send(s: &Server, path: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let mut req = s.post(path).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(
        (200..300).contains(&status),
        "{path} answered {status}: {json}"
    );
    json
}

pub fn bodies(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// Most requests the sink was holding at once, when each is held for
/// `hold` after it arrived (the sink answers after that delay, so the
/// server's attempt lasts at least that long).
pub fn max_overlap(got: &[Received], hold: Duration) -> usize {
    let mut at: Vec<Instant> = got.iter().map(|r| r.at).collect();
    at.sort();
    (0..at.len())
        .map(|i| (0..=i).filter(|&j| at[i] < at[j] + hold).count())
        .max()
        .unwrap_or(0)
}

/// Most arrivals inside any interval of length `window`.
pub fn max_in_window(got: &[Received], window: Duration) -> usize {
    let mut at: Vec<Instant> = got.iter().map(|r| r.at).collect();
    at.sort();
    (0..at.len())
        .map(|i| at[i..].iter().filter(|t| **t < at[i] + window).count())
        .max()
        .unwrap_or(0)
}

/// Polls `GET path` until `pred` holds on the JSON, or panics.
pub async fn wait_json(
    s: &Server,
    path: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (_, v) = call(s, 0, "GET", path, None).await;
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never matched; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
