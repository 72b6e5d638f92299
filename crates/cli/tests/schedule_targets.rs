//! Schedules whose fires go to a URL group or into a queue: each tick goes
//! through the same planning as a publish, so these need URL groups
//! (`/v2/topics`) and queues (`/v2/queues`) to exist in the server.
//! Both tests wait for one minute boundary, concurrently.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn clear_of_boundary() {
    let into = now_ms().rem_euclid(60_000);
    if into > 57_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into + 200) as u64)).await;
    }
}

async fn call(s: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
    let mut req = s.request(method, path, &dev_user(0));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert!(
        (200..300).contains(&status),
        "{path} answered {status}: {}",
        resp.text().await.unwrap_or_default()
    );
    status
}

async fn create_schedule(s: &Server, destination: &str, headers: &[(&str, &str)]) -> String {
    let mut req = s
        .post(&format!("/v2/schedules/{destination}"))
        .body("scheduled");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "create answered {status}: {json}");
    json["scheduleId"].as_str().unwrap().to_string()
}

async fn schedule(s: &Server, id: &str) -> Value {
    s.get(&format!("/v2/schedules/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the schedule until it shows a fire.
async fn wait_fired(s: &Server, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let got = schedule(s, id).await;
        if got.get("lastScheduleTime").is_some() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "schedule {id} never fired: {got}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_schedule_to_a_url_group_fires_to_every_endpoint() {
    let s = server();
    let sink = Sink::start().await;
    clear_of_boundary().await;
    call(
        &s,
        reqwest::Method::POST,
        "/v2/topics/sched-group/endpoints",
        Some(json!({ "endpoints": [
            { "url": sink.at("/group/a") },
            { "name": "b", "url": sink.at("/group/b") },
        ]})),
    )
    .await;
    let id = create_schedule(&s, "sched-group", &[("Upstash-Cron", "* * * * *")]).await;
    let got = schedule(&s, &id).await;
    assert_eq!(got["destination"], "sched-group");

    for path in ["/group/a", "/group/b"] {
        let r = &sink.wait_for(path, 1, Duration::from_secs(75)).await[0];
        assert_eq!(r.header("upstash-schedule-id"), Some(id.as_str()));
        assert_eq!(r.header("upstash-topic-name"), Some("sched-group"));
        assert_eq!(&r.body[..], b"scheduled");
    }
    let shown = wait_fired(&s, &id, WAIT).await;
    let states = shown["lastScheduleStates"].as_object().unwrap();
    assert_eq!(states.len(), 2, "one message per endpoint: {shown}");
}

#[tokio::test]
async fn a_schedule_with_a_queue_enqueues_each_fire() {
    let s = server();
    let sink = Sink::start().await;
    clear_of_boundary().await;
    call(
        &s,
        reqwest::Method::POST,
        "/v2/queues",
        Some(json!({ "queueName": "sched-queue", "parallelism": 1, "paused": false })),
    )
    .await;
    // Paused, so the fire's message waits in the queue where we can see it.
    call(
        &s,
        reqwest::Method::POST,
        "/v2/queues/sched-queue/pause",
        None,
    )
    .await;
    let url = sink.at("/queued");
    let id = create_schedule(
        &s,
        &url,
        &[
            ("Upstash-Cron", "* * * * *"),
            ("Upstash-Queue-Name", "sched-queue"),
        ],
    )
    .await;
    assert_eq!(schedule(&s, &id).await["queueName"], "sched-queue");

    let shown = wait_fired(&s, &id, Duration::from_secs(75)).await;
    let states = shown["lastScheduleStates"].as_object().unwrap().clone();
    assert_eq!(states.len(), 1, "{shown}");
    let (message_id, state) = states.into_iter().next().unwrap();
    assert_eq!(state, "IN_PROGRESS");
    let message: Value = s
        .get(&format!("/v2/messages/{message_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["queueName"], "sched-queue");
    assert_eq!(message["scheduleId"], id.as_str());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        sink.received_at("/queued").is_empty(),
        "delivered from a paused queue"
    );

    call(
        &s,
        reqwest::Method::POST,
        "/v2/queues/sched-queue/resume",
        None,
    )
    .await;
    let r = &sink.wait_for("/queued", 1, WAIT).await[0];
    assert_eq!(r.header("upstash-schedule-id"), Some(id.as_str()));
    assert_eq!(r.header("upstash-message-id"), Some(message_id.as_str()));
}

/// Fires into a running queue and under a flow-control key go out at the
/// tick, with nothing else (a resume, another enqueue) waking their line.
#[tokio::test]
async fn fires_into_a_running_queue_or_a_flow_control_key_are_delivered() {
    let s = server();
    let sink = Sink::start().await;
    clear_of_boundary().await;
    let queued = create_schedule(
        &s,
        &sink.at("/running-queue"),
        &[
            ("Upstash-Cron", "* * * * *"),
            ("Upstash-Queue-Name", "sched-running"),
        ],
    )
    .await;
    let keyed = create_schedule(
        &s,
        &sink.at("/keyed"),
        &[
            ("Upstash-Cron", "* * * * *"),
            ("Upstash-Flow-Control-Key", "sched-key"),
            ("Upstash-Flow-Control-Value", "parallelism=1, rate=10"),
        ],
    )
    .await;
    for (path, id) in [("/running-queue", &queued), ("/keyed", &keyed)] {
        let r = &sink.wait_for(path, 1, Duration::from_secs(75)).await[0];
        assert_eq!(r.header("upstash-schedule-id"), Some(id.as_str()));
        // wait_for returns as the request arrives.
        let into_minute = now_ms().rem_euclid(60_000);
        assert!(
            into_minute < 5_000,
            "{path} arrived {into_minute} ms into the minute"
        );
    }
}
