//! Delivery slots are shared: a publish that is due at once takes a free
//! slot and starts right after its commit, while the scheduler takes slots
//! for messages that fell due later (delays, retries). Neither may starve
//! or break the other, nor the dispatch gate of queues.

mod common;
mod lines;

use std::time::{Duration, Instant};

use common::*;
use lines::max_overlap;

fn slow(n: usize) -> Vec<Reply> {
    (0..n)
        .map(|_| Reply::status(200).after(Duration::from_millis(20)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_and_the_scheduler_share_the_delivery_slots() {
    let sink = Sink::start().await;
    sink.script("/now", slow(1000));
    sink.script("/later", slow(100));
    let s = Server::start(bin(), &["--max-in-flight", "2"]);
    let later = sink.at("/later");
    for i in 0..40 {
        publish_ok(&s, &later, &[("Upstash-Delay", "1s")], &i.to_string()).await;
    }
    // And a FIFO queue, started by the dispatch gate, not the scheduler.
    sink.script("/queued", slow(100));
    let queued = format!("/v2/enqueue/q1/{}", sink.at("/queued"));
    for i in 0..20 {
        let resp = s.post(&queued).body(i.to_string()).send().await.unwrap();
        assert!(resp.status().is_success());
    }
    // While those fall due, four publishers keep both slots busy with
    // messages due at once (160/s offered, about 100/s delivered).
    let now = sink.at("/now");
    let publisher = || async {
        let start = Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_secs(3) {
            publish_ok(&s, &now, &[], "n").await;
            sent += 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        sent
    };
    let (a, b, c, d) = tokio::join!(publisher(), publisher(), publisher(), publisher());
    let sent = a + b + c + d;
    let stopped = Instant::now();
    // Neither the scheduler nor the gate waited for the publishers to
    // stop: each gets the next free slot when it asks for one.
    for (path, least) in [("/later", 10), ("/queued", 5)] {
        let early = sink
            .received_at(path)
            .iter()
            .filter(|r| r.at < stopped)
            .count();
        assert!(
            early >= least,
            "only {early} of {path} arrived while publishes kept the slots busy"
        );
    }
    sink.wait_for("/queued", 20, Duration::from_secs(30)).await;
    sink.wait_for("/later", 40, Duration::from_secs(30)).await;
    sink.wait_for("/now", sent, Duration::from_secs(30)).await;
    // The scheduler still runs: a new delayed message arrives.
    publish_ok(&s, &sink.at("/after"), &[("Upstash-Delay", "1s")], "x").await;
    sink.wait_for("/after", 1, WAIT).await;
    // Each delivery holds the sink 20 ms; counting 15 ms leaves room for
    // timing noise and still sees a third delivery started too early.
    let most = max_overlap(&sink.received(), Duration::from_millis(15));
    assert!(
        most <= 2,
        "{most} deliveries at once with --max-in-flight 2"
    );
}
