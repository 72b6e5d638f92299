//! kill -9 in the middle of deliveries: after a restart every message is
//! delivered at least once, duplicates are bounded by what was in flight,
//! and each delivery outcome produced exactly one callback message.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use serde_json::Value;

const MESSAGES: usize = 300;
const IN_FLIGHT: usize = 32;

#[tokio::test]
async fn kill_9_during_delivery_loses_nothing_and_bounds_duplicates() {
    let sink = Sink::start().await;
    sink.script(
        "/slow",
        vec![Reply::status(200).after(Duration::from_millis(150))],
    );
    let dir = tempfile::tempdir().unwrap();
    let in_flight = IN_FLIGHT.to_string();
    let args = ["--max-in-flight", in_flight.as_str()];
    let s = Server::start_in(bin(), dir.path(), &args);
    let mut tasks = Vec::new();
    for i in 0..MESSAGES {
        let req = s
            .post(&format!("/v2/publish/{}", sink.at("/slow")))
            .header("Upstash-Callback", sink.at("/cb"))
            .body(format!("{i}"));
        tasks.push(tokio::spawn(async move { req.send().await }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let resp = t.await.unwrap().expect("publish");
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        ids.insert(v["messageId"].as_str().unwrap().to_string());
    }
    // Crash once a good part is delivered and the rest is queued or in flight.
    sink.wait_for("/slow", MESSAGES / 3, Duration::from_secs(30))
        .await;
    s.kill9();
    let before_restart = sink.received_at("/slow").len();
    assert!(
        before_restart < MESSAGES,
        "the crash came after everything was delivered"
    );

    let s = Server::start_in(bin(), dir.path(), &args);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let got: HashSet<String> = sink
            .received_at("/slow")
            .iter()
            .filter_map(|r| r.header("upstash-message-id").map(String::from))
            .collect();
        if ids.is_subset(&got) {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged messages never delivered",
            ids.difference(&got).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(delivered.len(), MESSAGES);

    // Every delivery's outcome made one callback message, no more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let callbacks = loop {
        let mut per_source: HashMap<String, HashSet<String>> = HashMap::new();
        for r in sink.received_at("/cb") {
            let p: Value = serde_json::from_slice(&r.body).unwrap();
            per_source
                .entry(p["sourceMessageId"].as_str().unwrap().to_string())
                .or_default()
                .insert(r.header("upstash-message-id").unwrap().to_string());
        }
        if per_source.len() == MESSAGES {
            break per_source;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "callbacks for {} of {MESSAGES} messages",
            per_source.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (source, cb_ids) in &callbacks {
        assert_eq!(cb_ids.len(), 1, "{source} has callback messages {cb_ids:?}");
    }
    // Redeliveries: at most what was in flight at the crash, over
    // destination deliveries and callback deliveries together.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dest_dups = sink.received_at("/slow").len() - MESSAGES;
    let cb_dups = sink.received_at("/cb").len() - MESSAGES;
    println!("duplicates after kill -9: {dest_dups} deliveries, {cb_dups} callbacks");
    assert!(
        dest_dups + cb_dups <= IN_FLIGHT,
        "{dest_dups} + {cb_dups} duplicates, more than the {IN_FLIGHT} in flight"
    );
    drop(s);
}

/// kill -9 while 16 clients publish as fast as they can: every publish
/// that was answered 201 is still there after the restart. Group commit
/// and the writer's gathered writes (`gathered_writes.rs`) are both on
/// this path: an answer must never come before its commit reached the
/// disk.
#[tokio::test]
async fn kill_9_while_publishing_keeps_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(bin(), dir.path(), &[]);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (http, url, acked) = (s.http.clone(), s.url.clone(), acked.clone());
        let token = dev_user(0).token;
        clients.push(tokio::spawn(async move {
            loop {
                let sent = http
                    .post(format!("{url}/v2/publish/http://127.0.0.1:9/later"))
                    .bearer_auth(token)
                    .header("Upstash-Delay", "1h")
                    .body(vec![b'x'; 1024])
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if resp.status() != 201 {
                    return;
                }
                let Ok(v) = resp.json::<Value>().await else {
                    return;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(v["messageId"].as_str().unwrap().to_string());
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 1_000 {
        assert!(tokio::time::Instant::now() < deadline, "publishes too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.kill9();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let s = Server::start_in(bin(), dir.path(), &[]);
    let mut missing = Vec::new();
    for id in &acked {
        let resp = s.get(&format!("/v2/messages/{id}")).send().await.unwrap();
        if resp.status() != 200 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged publishes lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    println!("{} acknowledged publishes, all kept", acked.len());
}
