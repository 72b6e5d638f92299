//! Limits: slow clients, sizes, timeouts and delays, amplification.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `within` passes);
/// answers what arrived and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[tokio::test]
async fn silent_and_slow_clients_cannot_hold_the_server() {
    let s = Server::start(
        bin(),
        &[
            "--max-connections",
            "8",
            "--header-read-timeout",
            "500ms",
            "--body-read-timeout",
            "500ms",
            "--idle-timeout",
            "700ms",
        ],
    );
    // Silent sockets fill every connection slot...
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    // ...yet a normal request is served once they time out.
    let started = Instant::now();
    let resp = s.get("/v2/keys").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (_, closed) = read_until_closed(&mut silent[0], Duration::from_secs(3)).await;
    assert!(closed, "a silent connection was kept open");
    // A body that never finishes is a 408.
    let mut slow = TcpStream::connect(addr(&s)).await.unwrap();
    let token = dev_user(0).token;
    slow.write_all(
        format!("POST /v2/publish/http://127.0.0.1:9/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\nonly ten..").as_bytes(),
    )
    .await
    .unwrap();
    let (answer, _) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    // An idle keep-alive connection is closed.
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(
        format!("GET /v2/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && closed,
        "{answer} closed={closed}"
    );
}

#[tokio::test]
async fn a_refused_upload_is_not_buffered_and_keeps_the_connection() {
    let s = Server::start(bin(), &["--max-body-bytes", "1024"]);
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    // Unauthenticated and over the body limit: the answer is 401 (the body
    // was not read into memory first, or it would be a 413)...
    let body = "x".repeat(4000);
    conn.write_all(
        format!("POST /v2/publish/http://127.0.0.1:9/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{}", &body[..1000]).as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    // ...and the same connection serves the next request.
    let token = dev_user(0).token;
    conn.write_all(
        format!("GET /v2/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let second = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Over the limit and unauthenticated: still a 401, not a 413.
    let resp = s
        .http
        .post(format!("{}/v2/publish/http://127.0.0.1:9/x", s.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn timeouts_and_delays_have_maxima_and_never_overflow() {
    let s = Server::start(bin(), &["--max-timeout", "1h", "--max-delay", "2d"]);
    let sink = Sink::start().await;
    let url = sink.at("/m");
    for (header, value) in [
        ("Upstash-Timeout", "2h"),
        ("Upstash-Timeout", "213503982335d"),
        ("Upstash-Delay", "3d"),
        ("Upstash-Delay", "200000000000d"),
        ("Upstash-Not-Before", "9999999999"),
    ] {
        let (status, v) = publish(&s, &url, &[(header, value)], "").await;
        assert_eq!(status, 400, "{header}: {value}: {v}");
        assert!(v["error"].as_str().unwrap().contains(header), "{v}");
        if header == "Upstash-Not-Before" {
            continue; // Schedules take no absolute time.
        }
        let resp = s
            .post(&format!("/v2/schedules/{url}"))
            .header("Upstash-Cron", "* * * * *")
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "schedule {header}: {value}");
    }
    publish_ok(
        &s,
        &url,
        &[("Upstash-Timeout", "1h"), ("Upstash-Delay", "1d")],
        "",
    )
    .await;
}

#[tokio::test]
async fn url_groups_and_batches_are_bounded() {
    let s = Server::start(
        bin(),
        &["--max-url-group-endpoints", "3", "--max-batch-items", "5"],
    );
    let sink = Sink::start().await;
    let eps = |n: usize| -> Value {
        json!({"endpoints": (0..n).map(|i| json!({"url": sink.at(&format!("/e{i}"))})).collect::<Vec<_>>()})
    };
    assert_eq!(
        s.post("/v2/topics/g/endpoints")
            .json(&eps(3))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = s
        .post("/v2/topics/g/endpoints")
        .json(&eps(4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A batch counts messages: two items to a 3-endpoint group are 6.
    let item = json!({"destination": "g", "headers": {"Upstash-Delay": "1h"}});
    let resp = s
        .post("/v2/batch")
        .json(&json!([item, item]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("--max-batch-items"),
        "{v}"
    );
    let plain = json!({"destination": sink.at("/p"), "headers": {"Upstash-Delay": "1h"}});
    let six = json!([plain, plain, plain, plain, plain, plain]);
    assert_eq!(
        s.post("/v2/batch")
            .json(&six)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let v: Value = s
        .get("/v2/events")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["events"].as_array().unwrap().len(),
        0,
        "nothing stored: {v}"
    );
    assert_eq!(
        s.post("/v2/batch")
            .json(&json!([item]))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
}

/// How long the capped user's deliveries take: long enough that the checks
/// below are done before any of them ends, even on a busy 2-core machine.
const SLOW: Duration = Duration::from_secs(10);

#[tokio::test]
async fn one_user_cannot_take_every_delivery_slot() {
    let s = Server::start(
        bin(),
        &["--max-in-flight", "4", "--max-in-flight-per-user", "2"],
    );
    let sink = Sink::start().await;
    sink.script("/slow", vec![Reply::status(200).after(SLOW)]);
    for i in 0..4 {
        publish_ok(&s, &sink.at("/slow"), &[], &i.to_string()).await;
    }
    sink.wait_for("/slow", 2, WAIT).await;
    let started = Instant::now();
    let other = dev_user(1);
    let resp = s
        .request(
            reqwest::Method::POST,
            &format!("/v2/publish/{}", sink.at("/fast")),
            &other,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    sink.wait_for("/fast", 1, WAIT).await;
    assert!(
        started.elapsed() < SLOW / 2,
        "the other user waited {:?}",
        started.elapsed()
    );
    // The first user never had more than two in flight at once.
    assert_eq!(sink.received_at("/slow").len(), 2);
    sink.wait_for("/slow", 4, SLOW + WAIT).await;
}

#[tokio::test]
async fn the_per_user_cap_covers_queues_and_global_parallelism() {
    let s = Server::start(
        bin(),
        &["--max-in-flight", "4", "--max-in-flight-per-user", "2"],
    );
    let sink = Sink::start().await;
    sink.script("/q", vec![Reply::status(200).after(SLOW)]);
    sink.script("/p", vec![Reply::status(200).after(SLOW)]);
    // One plain delivery in flight: it counts against the same cap.
    publish_ok(&s, &sink.at("/p"), &[], "plain").await;
    sink.wait_for("/p", 1, WAIT).await;
    let resp = s
        .post("/v2/queues")
        .json(&json!({"queueName": "wide", "parallelism": 4}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    for i in 0..4 {
        let resp = s
            .post(&format!("/v2/enqueue/wide/{}", sink.at("/q")))
            .body(i.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    sink.wait_for("/q", 1, WAIT).await;
    let v: Value = s
        .get("/v2/globalParallelism")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["parallelismMax"], 2, "{v}");
    let started = Instant::now();
    let resp = s
        .request(
            reqwest::Method::POST,
            &format!("/v2/publish/{}", sink.at("/other")),
            &dev_user(2),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    sink.wait_for("/other", 1, WAIT).await;
    assert!(started.elapsed() < SLOW / 2, "{:?}", started.elapsed());
    // One plain and one queued: the queue's parallelism of 4 never got
    // past the user's cap of 2.
    assert_eq!(sink.received_at("/q").len(), 1);
    // Once the plain delivery ends, the queue takes its place.
    sink.wait_for("/q", 2, SLOW + WAIT).await;
}
