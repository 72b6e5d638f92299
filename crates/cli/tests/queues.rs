//! Queues: strict FIFO with parallelism 1 (a retrying message keeps its
//! place), never more than `parallelism` in flight, pause and resume,
//! lag, per-user names, and all of it after a kill -9.

mod common;
mod lines;

use std::time::Duration;

use common::*;
use lines::*;
use serde_json::json;

const HOLD: Duration = Duration::from_millis(250);

#[tokio::test]
async fn parallelism_1_is_fifo_and_a_retrying_message_keeps_its_place() {
    let sink = Sink::start().await;
    let s = server();
    // The first attempt of the first message fails; its retry (200 ms
    // later) must still come before every later message.
    sink.script(
        "/fifo",
        vec![
            Reply::status(500),
            Reply::status(200).after(Duration::from_millis(100)),
        ],
    );
    for i in 0..6 {
        send(
            &s,
            &format!("/v2/enqueue/fifo-q/{}", sink.at("/fifo")),
            &[("Upstash-Retry-Delay", "200")],
            &i.to_string(),
        )
        .await;
    }
    let got = sink.wait_for("/fifo", 7, WAIT).await;
    assert_eq!(bodies(&got), ["0", "0", "1", "2", "3", "4", "5"]);
    assert_eq!(got[1].header("upstash-retried"), Some("1"));
    // One at a time: each starts after the previous answered.
    assert_eq!(max_overlap(&got[1..], Duration::from_millis(100)), 1);
    let q = ok(&s, "GET", "/v2/queues/fifo-q", None).await;
    assert_eq!(q["parallelism"], 1, "{q}");
    let m = &got[2];
    let id = m.header("upstash-message-id").unwrap();
    assert!(!id.is_empty());
}

#[tokio::test]
async fn parallelism_n_runs_exactly_n_at_a_time() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/par", vec![Reply::status(200).after(HOLD)]);
    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "par-q", "parallelism": 3, "paused": false})),
    )
    .await;
    for i in 0..12 {
        send(
            &s,
            &format!("/v2/enqueue/par-q/{}", sink.at("/par")),
            &[],
            &i.to_string(),
        )
        .await;
    }
    let got = sink.wait_for("/par", 12, WAIT).await;
    assert_eq!(
        max_overlap(&got, HOLD),
        3,
        "in flight never above 3, and 3 reached"
    );
    // Starts follow enqueue order.
    let mut sorted = got.clone();
    sorted.sort_by_key(|r| r.at);
    let first: Vec<String> = bodies(&sorted[..3]).into_iter().collect();
    assert!(
        first.iter().all(|b| ["0", "1", "2"].contains(&b.as_str())),
        "{first:?}"
    );
}

#[tokio::test]
async fn pause_holds_resume_releases_from_the_oldest_and_lag_counts() {
    let sink = Sink::start().await;
    let s = server();
    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "held", "parallelism": 1, "paused": true})),
    )
    .await;
    for i in 0..4 {
        send(
            &s,
            &format!("/v2/enqueue/held/{}", sink.at("/held")),
            &[],
            &i.to_string(),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        sink.received_at("/held").is_empty(),
        "a paused queue delivered"
    );
    let q = ok(&s, "GET", "/v2/queues/held", None).await;
    assert_eq!(
        (q["lag"].as_u64(), q["paused"].as_bool()),
        (Some(4), Some(true)),
        "{q}"
    );
    ok(&s, "POST", "/v2/queues/held/resume", None).await;
    assert_eq!(
        ok(&s, "GET", "/v2/queues/held", None).await["paused"],
        false
    );
    let got = sink.wait_for("/held", 4, WAIT).await;
    assert_eq!(bodies(&got), ["0", "1", "2", "3"]);
    wait_json(&s, "/v2/queues/held", WAIT, |q| q["lag"] == 0).await;

    // Pausing mid-way stops after what is in flight.
    sink.script(
        "/held2",
        vec![Reply::status(200).after(Duration::from_millis(300))],
    );
    for i in 0..3 {
        send(
            &s,
            &format!("/v2/enqueue/held/{}", sink.at("/held2")),
            &[],
            &i.to_string(),
        )
        .await;
    }
    sink.wait_for("/held2", 1, WAIT).await;
    ok(&s, "POST", "/v2/queues/held/pause", None).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        sink.received_at("/held2").len(),
        1,
        "delivered while paused"
    );
    ok(&s, "POST", "/v2/queues/held/resume", None).await;
    assert_eq!(
        bodies(&sink.wait_for("/held2", 3, WAIT).await),
        ["0", "1", "2"]
    );
}

#[tokio::test]
async fn queue_api_shapes_validation_and_per_user_names() {
    let s = server();
    let (status, body) = call(
        &s,
        0,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "bad name", "parallelism": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Queue name is invalid"),
        "{body}"
    );
    let (status, _) = call(
        &s,
        0,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "q", "parallelism": 0})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &s,
        0,
        "POST",
        "/v2/enqueue/bad!name/http://127.0.0.1:9/x",
        None,
    )
    .await;
    assert_eq!(status, 400);

    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "mine", "parallelism": 2, "paused": false})),
    )
    .await;
    let q = ok(&s, "GET", "/v2/queues/mine", None).await;
    for field in [
        "name",
        "parallelism",
        "createdAt",
        "updatedAt",
        "lag",
        "paused",
    ] {
        assert!(q.get(field).is_some(), "{field} missing: {q}");
    }
    assert_eq!(q["parallelism"], 2);
    // Another user sees nothing of it.
    assert_eq!(call(&s, 1, "GET", "/v2/queues/mine", None).await.0, 404);
    assert_eq!(
        call(&s, 1, "POST", "/v2/queues/mine/pause", None).await.0,
        404
    );
    assert_eq!(call(&s, 1, "GET", "/v2/queues", None).await.1, json!([]));
    assert_eq!(
        ok(&s, "GET", "/v2/queues", None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    ok(&s, "DELETE", "/v2/queues/mine", None).await;
    assert_eq!(call(&s, 0, "GET", "/v2/queues/mine", None).await.0, 404);
    assert_eq!(ok(&s, "GET", "/v2/queues", None).await, json!([]));
}

#[tokio::test]
async fn enqueue_and_batch_with_queue_create_the_queue() {
    let sink = Sink::start().await;
    let s = server();
    let res = send(
        &s,
        &format!("/v2/enqueue/auto-q/{}", sink.at("/auto")),
        &[],
        "a",
    )
    .await;
    let id = res["messageId"].as_str().unwrap();
    let q = ok(&s, "GET", "/v2/queues/auto-q", None).await;
    assert_eq!(
        (q["parallelism"].as_u64(), q["paused"].as_bool()),
        (Some(1), Some(false))
    );
    sink.wait_for("/auto", 1, WAIT).await;
    let _ = id;

    let batch = json!([
        {"destination": sink.at("/b"), "body": "1", "queue": "batch-q", "headers": {}},
        {"destination": sink.at("/b"), "body": "2", "queue": "batch-q", "headers": null},
        {"destination": sink.at("/plain"), "body": "3", "queue": null}
    ]);
    let resp = ok(&s, "POST", "/v2/batch", Some(batch)).await;
    assert_eq!(resp.as_array().unwrap().len(), 3);
    let got = sink.wait_for("/b", 2, WAIT).await;
    assert_eq!(bodies(&got), ["1", "2"]);
    ok(&s, "GET", "/v2/queues/batch-q", None).await;
    let (status, body) = call(
        &s,
        0,
        "POST",
        "/v2/batch",
        Some(json!([{"destination": sink.at("/b"), "queue": "no good"}])),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_waiting_messages() {
    let sink = Sink::start().await;
    let s = server();
    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "gone", "parallelism": 1, "paused": true})),
    )
    .await;
    let id = send(
        &s,
        &format!("/v2/enqueue/gone/{}", sink.at("/gone")),
        &[],
        "x",
    )
    .await["messageId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ok(&s, "DELETE", "/v2/queues/gone", None).await["cancelled"],
        1
    );
    wait_message_status(&s, &id, 404, WAIT).await;
}

#[tokio::test]
async fn queue_order_limits_and_pause_survive_kill_9() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(bin(), dir.path(), &[]);
    sink.script(
        "/crash",
        vec![Reply::status(200).after(Duration::from_millis(400))],
    );
    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "crash-q", "parallelism": 1, "paused": false})),
    )
    .await;
    ok(
        &s,
        "POST",
        "/v2/queues",
        Some(json!({"queueName": "still-paused", "parallelism": 4, "paused": true})),
    )
    .await;
    for i in 0..6 {
        send(
            &s,
            &format!("/v2/enqueue/crash-q/{}", sink.at("/crash")),
            &[],
            &i.to_string(),
        )
        .await;
    }
    send(
        &s,
        &format!("/v2/enqueue/still-paused/{}", sink.at("/paused")),
        &[],
        "p",
    )
    .await;
    sink.wait_for("/crash", 2, WAIT).await;
    s.kill9();
    let before = sink.received_at("/crash").len();

    let s = Server::start_in(bin(), dir.path(), &[]);
    let q = ok(&s, "GET", "/v2/queues/still-paused", None).await;
    assert_eq!(
        (
            q["parallelism"].as_u64(),
            q["paused"].as_bool(),
            q["lag"].as_u64()
        ),
        (Some(4), Some(true), Some(1))
    );
    wait_json(&s, "/v2/queues/crash-q", Duration::from_secs(20), |q| {
        q["lag"] == 0
    })
    .await;
    let got = sink.received_at("/crash");
    // At-least-once: the message in flight at the crash may come twice,
    // but order holds and nothing runs beside another.
    let mut seen: Vec<String> = bodies(&got);
    seen.dedup();
    assert_eq!(
        seen,
        ["0", "1", "2", "3", "4", "5"],
        "all: {:?}",
        bodies(&got)
    );
    assert_eq!(max_overlap(&got[before..], Duration::from_millis(400)), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received_at("/paused").is_empty());
}
