//! The PostgreSQL backend when the database misbehaves: unreachable at
//! start, and restarted under load.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use qstash_testkit::cluster::Cluster;

#[test]
fn an_unreachable_database_is_a_clear_error_at_start() {
    let out = Command::new(bin())
        .args(["dev", "--port", "0", "--database-url"])
        .arg("postgres://app:hunter2@127.0.0.1:1/queue")
        .stdin(Stdio::null())
        .output()
        .expect("run qstash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must exit non-zero: {stderr}");
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/queue"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Publishers keep going while the database is stopped (like a crash) and
/// started again: every publish answers 2xx or 503 with a JSON error, the
/// server serves again by itself afterwards, and every acknowledged
/// message is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing_acknowledged() {
    if let Some(why) = Cluster::unavailable() {
        assert!(std::env::var("CI").is_err(), "CI must run this test: {why}");
        eprintln!("SKIPPED a_database_restart_under_load_loses_nothing_acknowledged: {why}");
        return;
    }
    let cluster = Cluster::start();
    let sink = Sink::start().await;
    let url = cluster.url();
    let s = Arc::new(Server::start(bin(), &["--database-url", &url]));
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dest = sink.at("/load");
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let (s, acked, refused, stop, dest) = (
                s.clone(),
                acked.clone(),
                refused.clone(),
                stop.clone(),
                dest.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, json) = publish(&s, &dest, &[], "x").await;
                    match status {
                        200..=299 => acked.lock().unwrap().push((
                            json["messageId"].as_str().unwrap().to_string(),
                            Instant::now(),
                        )),
                        503 => {
                            assert!(json["error"].is_string(), "503 without an error: {json}");
                            *refused.lock().unwrap() += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("publish answered {other}: {json}"),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| cluster.start_again());
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        *refused.lock().unwrap() > 0,
        "no publish saw the database gone"
    );
    assert!(
        acked.iter().any(|(_, at)| *at > restarted),
        "no publish succeeded after the database came back"
    );
    let want: HashSet<String> = acked.into_iter().map(|(id, _)| id).collect();
    eprintln!(
        "{} publishes acknowledged, {} refused with 503 while the database was away",
        want.len(),
        refused.lock().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = sink
            .received()
            .iter()
            .filter_map(|r| r.header("upstash-message-id").map(String::from))
            .collect();
        let missing = want.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged messages never arrived",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
