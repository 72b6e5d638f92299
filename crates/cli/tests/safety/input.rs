//! Strict input: every bad request is a 4xx `{"error": ...}` and stores
//! nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

async fn json_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let v: Value = resp.json().await.expect("a JSON error body");
    v["error"].as_str().expect("an error field").to_string()
}

/// Publishes `n` messages to a failing path with no retries, and waits
/// until all of them are in the DLQ; answers their dlq ids.
async fn dead(s: &Server, sink: &Sink, n: usize) -> Vec<String> {
    sink.script("/dead", vec![Reply::status(500)]);
    for _ in 0..n {
        publish_ok(s, &sink.at("/dead"), &[("Upstash-Retries", "0")], "x").await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v: Value = s.get("/v2/dlq").send().await.unwrap().json().await.unwrap();
        let ids: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["dlqId"].as_str().unwrap().to_string())
            .collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(tokio::time::Instant::now() < deadline, "DLQ has {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dlq_bulk_calls_with_a_bad_body_are_400_and_touch_nothing() {
    let s = server();
    let sink = Sink::start().await;
    let ids = dead(&s, &sink, 3).await;
    for (method, path) in [(Method::DELETE, "/v2/dlq"), (Method::POST, "/v2/dlq/retry")] {
        for body in [
            r#"{"dlqIDs":["nope"]}"#,
            r#"{"dlqIds":["#,
            r#"{"dlqIds":"x"}"#,
            "[]",
        ] {
            let resp = s
                .request(method.clone(), path, &dev_user(0))
                .body(body)
                .send()
                .await
                .unwrap();
            json_error(resp, 400).await;
        }
        let resp = s
            .request(method.clone(), &format!("{path}?dlqIds="), &dev_user(0))
            .send()
            .await
            .unwrap();
        json_error(resp, 400).await;
        let empty = s
            .request(method.clone(), path, &dev_user(0))
            .body(r#"{"dlqIds":[]}"#)
            .send()
            .await
            .unwrap();
        assert!(empty.status().is_success());
        let v: Value = empty.json().await.unwrap();
        assert!(
            v == json!({"deleted": 0}) || v == json!({"responses": []}),
            "{v}"
        );
    }
    let v: Value = s.get("/v2/dlq").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), ids.len());
}

#[tokio::test]
async fn broken_upstash_headers_are_400() {
    let s = server();
    let sink = Sink::start().await;
    let url = sink.at("/h");
    // Not UTF-8.
    let resp = s
        .post(&format!("/v2/publish/{url}"))
        .header(
            "Upstash-Retries",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(json_error(resp, 400).await.contains("upstash-retries"));
    // CR/LF/NUL arrive through the query string and batch items.
    let resp = s
        .post(&format!(
            "/v2/publish/{url}?upstash-forward-x=a%0D%0AInjected:%201"
        ))
        .send()
        .await
        .unwrap();
    assert!(json_error(resp, 400).await.contains("CR, LF or NUL"));
    let resp = s
        .post("/v2/batch")
        .json(&json!([{"destination": url, "headers": {"Upstash-Forward-X": "a\u{0}b"}}]))
        .send()
        .await
        .unwrap();
    json_error(resp, 400).await;
    // Hop-by-hop headers are never forwarded.
    for name in ["Upstash-Forward-Host", "Upstash-Forward-Content-Length"] {
        let resp = s
            .post(&format!("/v2/publish/{url}"))
            .header(name, "1")
            .body("hello world")
            .send()
            .await
            .unwrap();
        assert!(
            json_error(resp, 400)
                .await
                .contains(&name[16..].to_ascii_lowercase()),
            "{name}"
        );
    }
    // Upstash-Cron belongs to schedules.
    let resp = s
        .post(&format!("/v2/publish/{url}"))
        .header("Upstash-Cron", "* * * * *")
        .send()
        .await
        .unwrap();
    assert!(json_error(resp, 400).await.contains("/v2/schedules"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn empty_hosts_and_port_zero_are_400_wherever_urls_are_accepted() {
    let s = server();
    let sink = Sink::start().await;
    for bad in ["http:///x", "http://127.0.0.1:0/x", "http://:80/x"] {
        let resp = s.post(&format!("/v2/publish/{bad}")).send().await.unwrap();
        json_error(resp, 400).await;
        let resp = s
            .post(&format!("/v2/publish/{}", sink.at("/ok")))
            .header("Upstash-Callback", bad)
            .send()
            .await
            .unwrap();
        assert!(
            json_error(resp, 400).await.contains("Upstash-Callback"),
            "{bad}"
        );
        let resp = s
            .post("/v2/topics/g/endpoints")
            .json(&json!({"endpoints": [{"url": bad}]}))
            .send()
            .await
            .unwrap();
        json_error(resp, 400).await;
    }
}

#[tokio::test]
async fn every_error_is_json_and_ipv6_paths_publish() {
    let s = server();
    let sink = Sink::start().await;
    let u = dev_user(0);
    // Router 404 and 405, bad percent-encoding in a path parameter.
    json_error(s.get("/v2/nowhere").send().await.unwrap(), 404).await;
    json_error(
        s.request(Method::PUT, "/v2/messages/x", &u)
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    json_error(s.get("/v2/messages/%FF").send().await.unwrap(), 400).await;
    // Oversized URI and headers.
    let long = "a".repeat(20 * 1024);
    json_error(
        s.get(&format!("/v2/messages/{long}")).send().await.unwrap(),
        414,
    )
    .await;
    let big = "b".repeat(8 * 1024);
    let mut req = s.get("/v2/messages/x");
    for i in 0..10 {
        req = req.header(format!("x-big-{i}"), big.clone());
    }
    json_error(req.send().await.unwrap(), 431).await;
    // A bracketed IPv6 host in the publish path, raw or percent-encoded.
    for dest in ["http://[::1]:9/x", "http://%5B::1%5D:9/x"] {
        let (status, v) = publish(&s, dest, &[("Upstash-Delay", "1h")], "").await;
        assert_eq!(status, 201, "{dest}: {v}");
        assert_eq!(v["url"], "http://[::1]:9/x");
    }
    drop(sink);
}

#[tokio::test]
async fn legacy_bulk_cancel_accepts_caller_ip() {
    let s = server();
    let sink = Sink::start().await;
    let id = publish_ok(&s, &sink.at("/c"), &[("Upstash-Delay", "1h")], "").await;
    let resp = s
        .delete("/v2/messages")
        .json(&json!({"callerIP": "127.0.0.1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["cancelled"], 1, "{v}");
    wait_message_status(&s, &id, 404, WAIT).await;
}

#[tokio::test]
async fn a_full_store_answers_507_with_a_clear_message() {
    if qstash_testkit::backend::postgres() {
        return; // --max-db-size caps the SQLite file.
    }
    let s = Server::start(bin(), &["--max-db-size", "262144"]);
    let sink = Sink::start().await;
    let body = "z".repeat(60 * 1024);
    let mut last = 0;
    for _ in 0..40 {
        let resp = s
            .post(&format!("/v2/publish/{}", sink.at("/full")))
            .header("Upstash-Delay", "1h")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        last = resp.status().as_u16();
        if last != 201 {
            let e = json_error(resp, 507).await;
            assert!(e.contains("storage is full"), "{e}");
            break;
        }
    }
    assert_eq!(last, 507);
}
