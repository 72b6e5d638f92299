//! Benchmark: N schedules (default 10,000) that all fire in the same
//! minute, against the real binary and a local sink. Reports how long the
//! server idles on them before the tick (CPU time), how late the last tick
//! fires (the schedules' `lastScheduleTime`) and how late the last message
//! arrives, and checks that every schedule fired exactly once.
//!
//! ```sh
//! cargo build --release -p qstash-cli
//! cargo run --release -p qstash-cli --example schedule_bench -- [COUNT] [-- server args...]
//! ```
//! `QSTASH_BIN` picks the server binary (default `target/release/qstash`).
//! Only 127.0.0.1 is used; every loop is bounded in count and time.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{Datelike, TimeZone, Timelike, Utc};
use qstash_testkit::{Server, Sink};
use serde_json::Value;

/// Concurrent create requests.
const CREATORS: usize = 64;
/// How long the deliveries may take before the run gives up.
const DELIVERY_LIMIT: Duration = Duration::from_secs(300);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// User + system CPU time of a process, from /proc (Linux).
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1000 / 100) // USER_HZ is 100 on Linux
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|a| a.parse().expect("COUNT must be a number"))
        .unwrap_or(10_000);
    let server_args: Vec<String> = args.skip_while(|a| a == "--").collect();
    let bin = std::env::var("QSTASH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/qstash")
        });
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let server = Arc::new(Server::start(&bin, &server_args));
    let sink = Sink::start().await;
    let url = sink.at("/bench");
    println!(
        "server {} ({}), sink {url}, {count} schedules",
        bin.display(),
        server.url
    );

    // The tick: a whole minute far enough ahead for the creates (about
    // 1,000 a second here), written as a fixed date so it fires only there.
    let created_by = now_ms() + 20_000 + (count as i64) * 2;
    let tick = (created_by / 60_000 + 1) * 60_000;
    let t = Utc.timestamp_millis_opt(tick).unwrap();
    let cron = format!("{} {} {} {} *", t.minute(), t.hour(), t.day(), t.month());
    println!("cron {cron:?}: fires at {t}");

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut creators = tokio::task::JoinSet::new();
    for _ in 0..CREATORS {
        let (server, next, url, cron) = (server.clone(), next.clone(), url.clone(), cron.clone());
        creators.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let resp = server
                    .post(&format!("/v2/schedules/{url}"))
                    .header("Upstash-Cron", &cron)
                    .header("Upstash-Schedule-Id", format!("bench-{i}"))
                    .body(format!("{i}"))
                    .send()
                    .await
                    .expect("create");
                assert_eq!(resp.status().as_u16(), 200, "create {i}");
            }
        });
    }
    while let Some(r) = creators.join_next().await {
        r.expect("creator");
    }
    let create_secs = started.elapsed().as_secs_f64();
    println!(
        "created {count} schedules in {create_secs:.1} s ({:.0}/s)",
        count as f64 / create_secs
    );
    assert!(
        now_ms() < tick - 2_000,
        "creating took too long: the tick is already near; rerun"
    );

    // Between ticks: the server should do nothing at all.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_from = (Instant::now(), cpu_ms(server.pid()));
    let quiet = Duration::from_millis((tick - now_ms() - 1_000).max(0) as u64);
    tokio::time::sleep(quiet).await;
    if let (Some(a), Some(b)) = (idle_from.1, cpu_ms(server.pid())) {
        println!(
            "idle before the tick: {} ms CPU in {:.1} s",
            b - a,
            idle_from.0.elapsed().as_secs_f64()
        );
    }

    // The tick: wait for every delivery.
    let deadline = Instant::now() + DELIVERY_LIMIT;
    let fire_cpu = cpu_ms(server.pid());
    loop {
        let n = sink.received().len();
        if n >= count {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of {count} delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done_wall = now_ms();
    let done_instant = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = sink.received();
    let mut lateness: Vec<i64> = received
        .iter()
        .map(|r| done_wall - done_instant.duration_since(r.at).as_millis() as i64 - tick)
        .collect();
    lateness.sort_unstable();
    let ids: HashSet<&str> = received
        .iter()
        .filter_map(|r| r.header("upstash-schedule-id"))
        .collect();
    if let (Some(a), Some(b)) = (fire_cpu, cpu_ms(server.pid())) {
        println!("server CPU for the tick and the deliveries: {} ms", b - a);
    }

    let list: Vec<Value> = server
        .get("/v2/schedules")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    let mut fired: Vec<i64> = list
        .iter()
        .filter_map(|s| s["lastScheduleTime"].as_i64())
        .map(|t| t - tick)
        .collect();
    fired.sort_unstable();
    println!(
        "fired: {} of {count} schedules; tick committed late by first {} ms, p50 {} ms, last {} ms",
        fired.len(),
        fired.first().copied().unwrap_or(-1),
        percentile(&fired, 0.5),
        fired.last().copied().unwrap_or(-1),
    );
    println!(
        "delivered: {} requests from {} distinct schedules; arrival late by first {} ms, p50 {} ms, p99 {} ms, last {} ms",
        received.len(),
        ids.len(),
        lateness[0],
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness[lateness.len() - 1],
    );
    assert_eq!(received.len(), count, "every schedule fires exactly once");
    assert_eq!(ids.len(), count, "every schedule fires exactly once");
    println!("next ticks: {}", {
        let next: HashSet<i64> = list
            .iter()
            .filter_map(|s| s["nextScheduleTime"].as_i64())
            .collect();
        next.iter()
            .map(|t| Utc.timestamp_millis_opt(*t).unwrap().year().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    });
}
