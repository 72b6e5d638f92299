//! Do waiting flow-controlled messages slow down unrelated deliveries?
//!
//! Measures plain publish-to-delivery latency and throughput twice: on an
//! empty server, then with 1,000+ flow-control keys holding 100,000
//! waiting messages (each key rate-limited to 1 per hour, so all but one
//! message per key wait). Also samples the server's CPU while only the
//! waiting messages exist.
//!
//!   cargo build -p qstash-cli [--release]
//!   cargo run -p qstash-cli [--release] --example gate_bench -- [KEYS] [PER_KEY] [PLAIN]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use qstash_testkit::{Server, Sink};
use serde_json::json;

fn server_bin() -> PathBuf {
    // target/<profile>/examples/gate_bench -> target/<profile>/qstash
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("qstash"))
        .expect("target dir")
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line.
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

struct Figures {
    total: Duration,
    p50: Duration,
    p99: Duration,
}

/// Publishes `n` plain messages, 32 at a time, and waits for all of them.
async fn plain_round(s: &Server, sink: &Sink, path: &str, n: usize) -> Figures {
    let start = Instant::now();
    let mut sent = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(32) {
        let mut tasks = Vec::new();
        for i in chunk * 32..((chunk + 1) * 32).min(n) {
            let req = s
                .post(&format!("/v2/publish/{}", sink.at(path)))
                .body(i.to_string());
            tasks.push(tokio::spawn(async move {
                let resp = req.send().await.expect("publish");
                assert_eq!(resp.status(), 201);
                (i, Instant::now())
            }));
        }
        for t in tasks {
            sent.push(t.await.unwrap());
        }
    }
    let got = sink.wait_for(path, n, Duration::from_secs(120)).await;
    let total = start.elapsed();
    let mut acked = vec![start; n];
    for (i, at) in sent {
        acked[i] = at;
    }
    let mut lat: Vec<Duration> = got
        .iter()
        .map(|r| {
            let i: usize = String::from_utf8_lossy(&r.body).parse().unwrap();
            r.at.saturating_duration_since(acked[i])
        })
        .collect();
    lat.sort();
    Figures {
        total,
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let keys = args.first().copied().unwrap_or(1000);
    let per_key = args.get(1).copied().unwrap_or(100);
    let plain = args.get(2).copied().unwrap_or(1000);
    let sink = Sink::start().await;
    let s = Server::start(&server_bin(), &["--durability", "normal"]);
    println!(
        "server pid {}, {keys} keys x {per_key} messages, {plain} plain messages per round",
        s.pid()
    );

    let before = plain_round(&s, &sink, "/plain-before", plain).await;
    println!(
        "plain, empty server:        {plain} delivered in {:>7.1?} ({:>6.0}/s), latency p50 {:>6.1?} p99 {:>6.1?}",
        before.total,
        plain as f64 / before.total.as_secs_f64(),
        before.p50,
        before.p99
    );

    // Fill the keys through batch calls of 100 (one commit each).
    let fill = Instant::now();
    let mut items = Vec::new();
    for k in 0..keys {
        for m in 0..per_key {
            items.push(json!({
                "destination": sink.at("/keyed"),
                "body": format!("{k}-{m}"),
                "headers": {
                    "Upstash-Flow-Control-Key": format!("bench-key-{k}"),
                    "Upstash-Flow-Control-Value": "rate=1, period=1h"
                }
            }));
        }
    }
    let mut batches = Vec::new();
    for chunk in items.chunks(100) {
        let req = s
            .post("/v2/batch")
            .header("Content-Type", "application/json")
            .body(serde_json::to_string(chunk).unwrap());
        batches.push(tokio::spawn(async move {
            let resp = req.send().await.expect("batch");
            assert_eq!(resp.status(), 201);
        }));
        if batches.len() >= 8 {
            for b in batches.drain(..) {
                b.await.unwrap();
            }
        }
    }
    for b in batches {
        b.await.unwrap();
    }
    // One message per key goes out at once; the rest wait an hour.
    sink.wait_for("/keyed", keys, Duration::from_secs(300))
        .await;
    let waiting = keys * per_key - keys;
    println!(
        "stored {} flow-controlled messages in {:.1?}; {keys} delivered, {waiting} waiting",
        keys * per_key,
        fill.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = cpu_ticks(s.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks = cpu_ticks(s.pid()) - t0;
    println!(
        "server CPU while {waiting} messages wait: {} ms over 3 s",
        ticks * 10
    );

    let after = plain_round(&s, &sink, "/plain-after", plain).await;
    println!(
        "plain, {waiting} waiting:   {plain} delivered in {:>7.1?} ({:>6.0}/s), latency p50 {:>6.1?} p99 {:>6.1?}",
        after.total,
        plain as f64 / after.total.as_secs_f64(),
        after.p50,
        after.p99
    );
    let info = s
        .get("/v2/flowControl/bench-key-0")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    println!("key bench-key-0: {info}");
    assert_eq!(
        sink.received_at("/keyed").len(),
        keys,
        "a waiting message was delivered early"
    );
}
