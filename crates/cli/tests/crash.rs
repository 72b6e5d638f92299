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
