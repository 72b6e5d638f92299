//! A crash loses no acknowledged message; a SIGTERM stops cleanly.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;

#[tokio::test]
async fn kill_9_loses_no_acknowledged_message() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(bin(), dir.path(), &[]);
    // Half are delayed past the crash, half are being delivered to a slow
    // sink when it happens.
    sink.script(
        "/slow",
        vec![Reply::status(200).after(Duration::from_millis(300))],
    );
    let mut ids = HashSet::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (url, delay) = if i % 2 == 0 {
            (sink.at("/later"), "2s")
        } else {
            (sink.at("/slow"), "0s")
        };
        let req = s
            .post(&format!("/v2/publish/{url}"))
            .header("Upstash-Delay", delay)
            .body(format!("{i}"));
        tasks.push(tokio::spawn(async move { req.send().await }));
    }
    for t in tasks {
        let resp = t.await.unwrap().expect("publish");
        assert_eq!(resp.status(), 201);
        let v: serde_json::Value = resp.json().await.unwrap();
        ids.insert(v["messageId"].as_str().unwrap().to_string());
    }
    s.kill9();
    assert!(
        sink.received_at("/later").is_empty(),
        "delayed messages were not due before the crash"
    );

    let _s = Server::start_in(bin(), dir.path(), &[]);
    sink.wait_for("/later", 100, Duration::from_secs(20)).await;
    sink.wait_for("/slow", 100, Duration::from_secs(20)).await;
    let delivered: HashSet<String> = sink
        .received()
        .iter()
        .filter_map(|r| r.header("upstash-message-id").map(String::from))
        .collect();
    let lost: Vec<_> = ids.difference(&delivered).collect();
    assert!(
        lost.is_empty(),
        "lost {} acknowledged messages: {lost:?}",
        lost.len()
    );
}

#[tokio::test]
async fn sigterm_finishes_in_flight_deliveries_and_exits_cleanly() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/slow",
        vec![Reply::status(200).after(Duration::from_millis(800))],
    );
    publish_ok(&s, &sink.at("/slow"), &[], "x").await;
    sink.wait_for("/slow", 1, WAIT).await;
    let url = s.url.clone();
    // terminate() blocks; the sink must keep answering meanwhile.
    let clean = tokio::task::spawn_blocking(move || s.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(clean, "clean exit on SIGTERM");
    assert_eq!(sink.received_at("/slow").len(), 1);
    assert!(
        reqwest::get(format!("{url}/v2/keys")).await.is_err(),
        "no longer accepting"
    );
}
