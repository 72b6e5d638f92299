//! Flow control: per-key parallelism and sliding-window rate, retries
//! counted like first attempts, pause/resume, pin/unpin/resetRate, the
//! key info, global parallelism, and the limits after a kill -9.

mod common;
mod lines;

use std::time::Duration;

use common::*;
use lines::*;
use serde_json::json;

const HOLD: Duration = Duration::from_millis(250);

fn fc(key: &str, value: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("Upstash-Flow-Control-Key", key.to_string()),
        ("Upstash-Flow-Control-Value", value.to_string()),
    ]
}

async fn publish_fc(s: &Server, url: &str, key: &str, value: &'static str, body: &str) {
    let h = fc(key, value);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    send(s, &format!("/v2/publish/{url}"), &h, body).await;
}

#[tokio::test]
async fn parallelism_caps_deliveries_in_flight_and_wait_list_counts_the_rest() {
    let sink = Sink::start().await;
    let s = server();
    // Each delivery is held long enough that the counts read right after
    // the first two arrive cannot race the third start on a busy machine.
    let hold = Duration::from_millis(1000);
    sink.script("/p", vec![Reply::status(200).after(hold)]);
    for i in 0..10 {
        publish_fc(
            &s,
            &sink.at("/p"),
            "par-key",
            "parallelism=2",
            &i.to_string(),
        )
        .await;
    }
    sink.wait_for("/p", 2, WAIT).await;
    let info = ok(&s, "GET", "/v2/flowControl/par-key", None).await;
    assert_eq!(info["parallelismMax"], 2, "{info}");
    assert_eq!(info["parallelismCount"], 2, "{info}");
    assert_eq!(info["waitListSize"], 8, "{info}");
    let got = sink.wait_for("/p", 10, WAIT).await;
    assert_eq!(max_overlap(&got, hold), 2);
    wait_json(&s, "/v2/flowControl/par-key", WAIT, |v| {
        v["waitListSize"] == 0 && v["parallelismCount"] == 0
    })
    .await;
}

/// A message that has started is in flight, never also on the wait list,
/// even while its start is being committed.
#[tokio::test]
async fn a_started_message_is_not_counted_as_waiting() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/one",
        vec![Reply::status(200).after(Duration::from_secs(2))],
    );
    for round in 0..10 {
        let key = format!("one-key-{round}");
        let h = fc(&key, "parallelism=2, rate=5, period=1m");
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        send(&s, &format!("/v2/publish/{}", sink.at("/one")), &h, "x").await;
        for _ in 0..20 {
            let info = ok(&s, "GET", &format!("/v2/flowControl/{key}"), None).await;
            let total =
                info["parallelismCount"].as_u64().unwrap() + info["waitListSize"].as_u64().unwrap();
            assert_eq!(
                total, 1,
                "one message is either in flight or waiting: {info}"
            );
            if info["parallelismCount"] == 1 {
                break;
            }
        }
    }
}

#[tokio::test]
async fn rate_is_never_exceeded_in_any_period() {
    let sink = Sink::start().await;
    let s = server();
    for i in 0..7 {
        publish_fc(
            &s,
            &sink.at("/r"),
            "rate-key",
            "rate=3, period=2s",
            &i.to_string(),
        )
        .await;
    }
    let got = sink.wait_for("/r", 7, Duration::from_secs(20)).await;
    // 7 at 3 per 2 s start in three groups, two full periods apart.
    let mut at: Vec<_> = got.iter().map(|r| r.at).collect();
    at.sort();
    assert!(
        at[6] - at[0] >= Duration::from_millis(3600),
        "{:?}",
        at[6] - at[0]
    );
    // The server limits starts; the sink sees arrivals, which lag a start
    // by the claim commit and the request. A busy CI machine stretches that
    // lag past 50 ms, so allow 300 ms of it.
    assert_eq!(max_in_window(&got, Duration::from_millis(1700)), 3);
    let info = ok(&s, "GET", "/v2/flowControl/rate-key", None).await;
    assert_eq!(
        (info["rateMax"].as_u64(), info["ratePeriod"].as_u64()),
        (Some(3), Some(2)),
        "{info}"
    );
}

#[tokio::test]
async fn retries_count_against_the_key_like_first_attempts() {
    let sink = Sink::start().await;
    let s = server();
    // Fails once, retry wanted after 50 ms; rate 1 per 2 s makes it wait.
    sink.script("/retry", vec![Reply::status(500), Reply::status(200)]);
    let h = fc("retry-key", "rate=1, period=2s");
    let mut h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.push(("Upstash-Retry-Delay", "50"));
    let sent = send(&s, &format!("/v2/publish/{}", sink.at("/retry")), &h, "x").await;
    let id = sent["messageId"].as_str().expect("messageId");
    sink.wait_for("/retry", 2, Duration::from_secs(10)).await;
    // The rate limits starts, and each start is an ACTIVE log entry. The
    // sink's arrivals lag their starts by a claim commit and a request,
    // which a busy CI machine stretched past 300 ms (1.68 s between the
    // arrivals of starts 2 s apart), so the starts are compared.
    let path = format!("/v2/events?messageId={id}&state=ACTIVE");
    let log = ok(&s, "GET", &path, None).await;
    let mut starts: Vec<i64> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time"].as_i64().unwrap())
        .collect();
    starts.sort();
    assert_eq!(starts.len(), 2, "{log}");
    let gap = starts[1] - starts[0];
    assert!(gap >= 1_990, "retry passed the rate after {gap} ms: {log}");

    // Parallelism 1: a retry and another message never overlap.
    sink.script(
        "/retry-par",
        vec![
            Reply::status(500).after(HOLD),
            Reply::status(200).after(HOLD),
        ],
    );
    let h = fc("retry-par", "parallelism=1");
    let mut h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.push(("Upstash-Retry-Delay", "10"));
    for i in 0..3 {
        send(
            &s,
            &format!("/v2/publish/{}", sink.at("/retry-par")),
            &h,
            &i.to_string(),
        )
        .await;
    }
    let got = sink.wait_for("/retry-par", 4, WAIT).await;
    assert_eq!(max_overlap(&got, HOLD), 1);
}

#[tokio::test]
async fn pause_resume_pin_unpin_and_reset_rate() {
    let sink = Sink::start().await;
    let s = server();
    assert_eq!(
        call(&s, 0, "GET", "/v2/flowControl/nope", None).await.0,
        404
    );
    ok(&s, "POST", "/v2/flowControl/ctl/pause", None).await;
    for i in 0..3 {
        publish_fc(&s, &sink.at("/ctl"), "ctl", "parallelism=5", &i.to_string()).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        sink.received_at("/ctl").is_empty(),
        "a paused key delivered"
    );
    let info = ok(&s, "GET", "/v2/flowControl/ctl", None).await;
    assert_eq!(
        (info["isPaused"].as_bool(), info["waitListSize"].as_u64()),
        (Some(true), Some(3)),
        "{info}"
    );
    ok(&s, "POST", "/v2/flowControl/ctl/resume", None).await;
    assert_eq!(bodies(&sink.wait_for("/ctl", 3, WAIT).await).len(), 3);
    assert_eq!(
        ok(&s, "GET", "/v2/flowControl/ctl", None).await["isPaused"],
        false
    );

    // Pinned: later messages do not change the limits.
    ok(
        &s,
        "POST",
        "/v2/flowControl/ctl/pin?parallelism=1&rate=20&period=120",
        None,
    )
    .await;
    publish_fc(
        &s,
        &sink.at("/ctl"),
        "ctl",
        "parallelism=9, rate=99, period=1",
        "p",
    )
    .await;
    let info = ok(&s, "GET", "/v2/flowControl/ctl", None).await;
    assert_eq!(
        (
            info["parallelismMax"].as_u64(),
            info["rateMax"].as_u64(),
            info["ratePeriod"].as_u64()
        ),
        (Some(1), Some(20), Some(120)),
        "{info}"
    );
    assert_eq!(
        (
            info["isPinnedParallelism"].as_bool(),
            info["isPinnedRate"].as_bool()
        ),
        (Some(true), Some(true))
    );
    sink.wait_for("/ctl", 4, WAIT).await;
    wait_json(&s, "/v2/flowControl/ctl", WAIT, |v| v["rateCount"] == 1).await;
    ok(&s, "POST", "/v2/flowControl/ctl/resetRate", None).await;
    let info = ok(&s, "GET", "/v2/flowControl/ctl", None).await;
    assert_eq!(info["rateCount"], 0, "{info}");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (info["ratePeriodStart"].as_i64().unwrap() - now_s).abs() <= 2,
        "{info}"
    );
    ok(
        &s,
        "POST",
        "/v2/flowControl/ctl/unpin?parallelism=true&rate=false",
        None,
    )
    .await;
    publish_fc(
        &s,
        &sink.at("/ctl"),
        "ctl",
        "parallelism=9, rate=99, period=1",
        "q",
    )
    .await;
    let info = ok(&s, "GET", "/v2/flowControl/ctl", None).await;
    assert_eq!(
        (info["parallelismMax"].as_u64(), info["rateMax"].as_u64()),
        (Some(9), Some(20)),
        "{info}"
    );
    assert_eq!(
        (
            info["isPinnedParallelism"].as_bool(),
            info["isPinnedRate"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let (status, _) = call(&s, 0, "POST", "/v2/flowControl/ctl/pin?rate=0", None).await;
    assert_eq!(status, 400);

    // Keys are per user, and the list shows only the caller's.
    assert_eq!(call(&s, 1, "GET", "/v2/flowControl/ctl", None).await.0, 404);
    assert_eq!(
        call(&s, 1, "GET", "/v2/flowControl", None).await.1,
        json!([])
    );
    let list = ok(&s, "GET", "/v2/flowControl", None).await;
    assert_eq!(list[0]["flowControlKey"], "ctl");
}

#[tokio::test]
async fn global_parallelism_reports_the_configured_max_and_caps_in_flight() {
    let sink = Sink::start().await;
    let s = Server::start(bin(), &["--global-parallelism", "2"]);
    sink.script(
        "/g",
        vec![Reply::status(200).after(Duration::from_millis(400))],
    );
    for i in 0..6 {
        // Six keys with no limits of their own: only the global cap holds.
        publish_fc(&s, &sink.at("/g"), &format!("g{i}"), "", &i.to_string()).await;
    }
    sink.wait_for("/g", 2, WAIT).await;
    let g = ok(&s, "GET", "/v2/globalParallelism", None).await;
    assert_eq!(
        (g["parallelismMax"].as_u64(), g["parallelismCount"].as_u64()),
        (Some(2), Some(2)),
        "{g}"
    );
    let got = sink.wait_for("/g", 6, WAIT).await;
    assert_eq!(max_overlap(&got, Duration::from_millis(400)), 2);
}

#[tokio::test]
async fn limits_pause_and_rate_window_survive_kill_9() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(bin(), dir.path(), &[]);
    ok(&s, "POST", "/v2/flowControl/held/pause", None).await;
    publish_fc(&s, &sink.at("/held"), "held", "parallelism=1", "h").await;
    ok(&s, "POST", "/v2/flowControl/pinned/pin?parallelism=1", None).await;
    for i in 0..3 {
        publish_fc(
            &s,
            &sink.at("/window"),
            "window",
            "rate=2, period=4s",
            &i.to_string(),
        )
        .await;
    }
    sink.wait_for("/window", 2, WAIT).await;
    s.kill9();

    let s = Server::start_in(bin(), dir.path(), &[]);
    let held = ok(&s, "GET", "/v2/flowControl/held", None).await;
    assert_eq!(
        (held["isPaused"].as_bool(), held["waitListSize"].as_u64()),
        (Some(true), Some(1)),
        "{held}"
    );
    let pinned = ok(&s, "GET", "/v2/flowControl/pinned", None).await;
    assert_eq!(
        (
            pinned["isPinnedParallelism"].as_bool(),
            pinned["parallelismMax"].as_u64()
        ),
        (Some(true), Some(1))
    );
    // The third message still waits for the window opened before the crash.
    let got = sink.wait_for("/window", 3, Duration::from_secs(10)).await;
    assert!(
        got[2].at - got[0].at >= Duration::from_millis(3600),
        "{:?}",
        got[2].at - got[0].at
    );
    assert!(sink.received_at("/held").is_empty());
    ok(&s, "POST", "/v2/flowControl/held/resume", None).await;
    sink.wait_for("/held", 1, WAIT).await;
}

#[tokio::test]
async fn a_queued_message_with_a_key_passes_both() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/both", vec![Reply::status(200).after(HOLD)]);
    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "both-q", "parallelism": 4})),
    )
    .await;
    let h = fc("both-key", "parallelism=1");
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for i in 0..4 {
        send(
            &s,
            &format!("/v2/enqueue/both-q/{}", sink.at("/both")),
            &h,
            &i.to_string(),
        )
        .await;
    }
    let got = sink.wait_for("/both", 4, WAIT).await;
    assert_eq!(
        max_overlap(&got, HOLD),
        1,
        "the key's parallelism 1 wins over the queue's 4"
    );
}
