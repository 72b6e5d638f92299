//! Publishing through raw HTTP: what reaches the destination, and what the
//! API answers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn delivers_method_body_and_forwarded_headers_only() {
    let (s, sink) = (server(), Sink::start().await);
    let url = sink.at("/hook?a=b&c=d");
    let id = publish_ok(
        &s,
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Upstash-Method", "PUT"),
            (
                "Upstash-Forward-Test-Header",
                "value-uppercase, value-lowercase",
            ),
            ("upstash-forward-x-api-key", "k1"),
            ("Upstash-Telemetry-Sdk", "upstash-qstash-js@2.12.0"),
            ("X-Not-Forwarded", "nope"),
        ],
        r#"{"hello":"world"}"#,
    )
    .await;
    let got = sink.wait_for("/hook", 1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/hook?a=b&c=d", "the destination keeps its query");
    assert_eq!(&r.body[..], br#"{"hello":"world"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("test-header"),
        Some("value-uppercase, value-lowercase")
    );
    assert_eq!(r.header("x-api-key"), Some("k1"));
    assert_eq!(r.header("upstash-message-id"), Some(id.as_str()));
    assert_eq!(r.header("upstash-retried"), Some("0"));
    assert_eq!(r.header("user-agent"), Some("Upstash-QStash"));
    for hidden in [
        "authorization",
        "x-not-forwarded",
        "upstash-telemetry-sdk",
        "upstash-method",
    ] {
        assert!(
            r.header(hidden).is_none(),
            "{hidden} must not reach the destination"
        );
    }
    let claims =
        verify(r, dev_user(0).current_key, &url).expect("signature verifies with the current key");
    assert!(claims.jti.starts_with("jwt_") && claims.nbf == 0 && claims.exp > claims.iat);
    assert!(
        verify(r, dev_user(0).next_key, &url).is_err(),
        "signed with the current key only"
    );
}

#[tokio::test]
async fn binary_body_is_passed_through_byte_for_byte() {
    let (s, sink) = (server(), Sink::start().await);
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let resp = s
        .post(&format!("/v2/publish/{}", sink.at("/bin")))
        .header("Content-Type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = sink.wait_for("/bin", 1, WAIT).await;
    assert_eq!(&got[0].body[..], &body[..]);
    verify(&got[0], dev_user(0).current_key, &sink.at("/bin")).unwrap();
}

#[tokio::test]
async fn delayed_message_is_visible_then_delivered_on_time() {
    let (s, sink) = (server(), Sink::start().await);
    let start = Instant::now();
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let id = publish_ok(
        &s,
        &sink.at("/late"),
        &[("Upstash-Delay", "2s"), ("Upstash-Label", "x,y")],
        "later",
    )
    .await;
    let m: Value = s
        .get(&format!("/v2/messages/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["messageId"], json!(id));
    assert_eq!(m["body"], json!("later"));
    assert_eq!(m["method"], json!("POST"));
    assert_eq!(m["maxRetries"], json!(3));
    assert_eq!(m["labels"], json!(["x", "y"]));
    assert!(m["notBefore"].as_i64().unwrap() >= before_ms + 2000);
    assert!(m["createdAt"].as_i64().unwrap() >= before_ms);
    let got = sink.wait_for("/late", 1, WAIT).await;
    let waited = got[0].at - start;
    assert!(
        waited >= Duration::from_millis(1950),
        "delivered too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(2500),
        "delivered too late: {waited:?}"
    );
    wait_message_status(&s, &id, 404, WAIT).await;
}

#[tokio::test]
async fn not_before_wins_over_delay() {
    let (s, sink) = (server(), Sink::start().await);
    let in_1s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let start = Instant::now();
    publish_ok(
        &s,
        &sink.at("/nb"),
        &[
            ("Upstash-Delay", "1h"),
            ("Upstash-Not-Before", &in_1s.to_string()),
        ],
        "",
    )
    .await;
    let got = sink.wait_for("/nb", 1, WAIT).await;
    assert!(got[0].at - start < Duration::from_secs(3));
}

#[tokio::test]
async fn batch_answers_in_order_and_delivers_each() {
    let (s, sink) = (server(), Sink::start().await);
    let items = json!([
        {"destination": sink.at("/b0"), "headers": {"Upstash-Forward-N": "0"}, "body": "zero"},
        {"destination": sink.at("/b1"), "headers": {"upstash-method": "PUT"}, "body": null, "queue": null},
        {"destination": sink.at("/b2?q=1")},
    ]);
    let resp = s.post("/v2/batch").json(&items).send().await.unwrap();
    assert!(resp.status().is_success());
    let answers: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[2]["url"], json!(sink.at("/b2?q=1")));
    let r0 = sink.wait_for("/b0", 1, WAIT).await;
    assert_eq!(
        (&r0[0].body[..], r0[0].header("n")),
        (&b"zero"[..], Some("0"))
    );
    assert_eq!(
        r0[0].header("upstash-message-id"),
        answers[0]["messageId"].as_str()
    );
    assert_eq!(sink.wait_for("/b1", 1, WAIT).await[0].method, "PUT");
    sink.wait_for("/b2", 1, WAIT).await;
}

#[tokio::test]
async fn batch_with_one_bad_item_stores_nothing() {
    let (s, sink) = (server(), Sink::start().await);
    let items = json!([
        {"destination": sink.at("/ok"), "body": "a"},
        {"destination": sink.at("/bad"), "headers": {"Upstash-Delay": "never"}},
    ]);
    let resp = s.post("/v2/batch").json(&items).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("batch item 1"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn deduplication_id_delivers_once_and_answers_the_first_id() {
    let (s, sink) = (server(), Sink::start().await);
    let url = sink.at("/dedup");
    let (st1, first) = publish(&s, &url, &[("Upstash-Deduplication-Id", "abc")], "1").await;
    let (st2, second) = publish(&s, &url, &[("Upstash-Deduplication-Id", "abc")], "2").await;
    assert_eq!((st1, st2), (201, 202));
    assert_eq!(first["messageId"], second["messageId"]);
    assert!(first.get("deduplicated").is_none());
    assert_eq!(second["deduplicated"], json!(true));
    let (_, content1) = publish(
        &s,
        &url,
        &[("Upstash-Content-Based-Deduplication", "True")],
        "same",
    )
    .await;
    let (_, content2) = publish(
        &s,
        &url,
        &[("Upstash-Content-Based-Deduplication", "true")],
        "same",
    )
    .await;
    let (_, other) = publish(
        &s,
        &url,
        &[("Upstash-Content-Based-Deduplication", "true")],
        "different",
    )
    .await;
    assert_eq!(content1["messageId"], content2["messageId"]);
    assert_ne!(content1["messageId"], other["messageId"]);
    sink.wait_for("/dedup", 3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.received_at("/dedup").len(),
        3,
        "one delivery per distinct message"
    );
}

#[tokio::test]
async fn bad_input_answers_4xx_naming_the_problem_and_stores_nothing() {
    let (s, sink) = (server(), Sink::start().await);
    let url = sink.at("/never");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("Upstash-Delay", "tomorrow")], "Upstash-Delay"),
        (vec![("Upstash-Not-Before", "soon")], "Upstash-Not-Before"),
        (vec![("Upstash-Retries", "-1")], "Upstash-Retries"),
        (vec![("Upstash-Retries", "lots")], "Upstash-Retries"),
        (vec![("Upstash-Method", "TRACE")], "Upstash-Method"),
        (vec![("Upstash-Timeout", "fast")], "Upstash-Timeout"),
        (
            vec![("Upstash-Retry-Delay", "pow(2,")],
            "Upstash-Retry-Delay",
        ),
        (
            vec![("Upstash-Retry-Delay", "os.system(1)")],
            "Upstash-Retry-Delay",
        ),
        (
            vec![
                ("Upstash-Flow-Control-Key", "k"),
                ("Upstash-Flow-Control-Value", "rate=fast"),
            ],
            "Upstash-Flow-Control-Value",
        ),
        (vec![("Upstash-Callback", "not a url")], "Upstash-Callback"),
        (
            vec![("Upstash-Redact-Fields", "everything")],
            "Upstash-Redact-Fields",
        ),
        (vec![("Upstash-Forward-", "nameless")], "Forward-"),
    ];
    for (headers, named) in cases {
        let (status, body) = publish(&s, &url, &headers, "x").await;
        assert_eq!(status, 400, "{headers:?}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(named),
            "{headers:?}: error {error:?} should name {named}"
        );
    }
    for dest in [
        "ftp://example.com/x",
        "http://",
        "http:///path",
        "not a group!",
    ] {
        let (status, body) = publish(&s, dest, &[], "x").await;
        assert_eq!(status, 400, "{dest}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("destination")
                || body["error"].as_str().unwrap().contains("URL group")
        );
    }
    let (status, body) = publish(&s, "no-such-group", &[], "x").await;
    assert_eq!(status, 404, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received().is_empty(), "nothing delivered");
    let cancelled: Value = s
        .delete("/v2/messages")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["cancelled"], json!(0), "nothing stored");
}

#[tokio::test]
async fn oversized_body_answers_413() {
    let s = Server::start(bin(), &["--max-body-bytes", "1000"]);
    let sink = Sink::start().await;
    let (status, body) = publish(&s, &sink.at("/big"), &[], &"x".repeat(1001)).await;
    assert_eq!(status, 413);
    assert!(body["error"].as_str().unwrap().contains("1000"));
    let (status, _) = publish(&s, &sink.at("/big"), &[], &"x".repeat(1000)).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn query_settings_configure_webhook_publishes() {
    let (s, sink) = (server(), Sink::start().await);
    sink.script("/wh", vec![Reply::status(500), Reply::status(200)]);
    let url = format!(
        "{}?keep=1&upstash-retries=1&upstash-retry-delay=100",
        sink.at("/wh")
    );
    let id = publish_ok(&s, &url, &[], "w").await;
    let m: Value = s
        .get(&format!("/v2/messages/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["url"], json!(sink.at("/wh?keep=1")));
    let got = sink.wait_for("/wh", 2, WAIT).await;
    assert_eq!(got[1].header("upstash-retried"), Some("1"));
    assert_eq!(got[0].path, "/wh?keep=1");
}

/// An early answer (a 400 on the destination, a 401) must still leave the
/// keep-alive connection usable when the body arrives after the headers,
/// as it does from clients that write them separately (httpx does).
#[tokio::test]
async fn an_early_rejection_keeps_the_connection_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server();
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let token = dev_user(0).token;
    for (path, auth) in [
        ("/v2/publish/ftp://x", format!("Bearer {token}")),
        ("/v2/publish/http://127.0.0.1:9/a", "Bearer wrong".into()),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Length: 1\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.write_all(b"x").await.unwrap();
    }
    let keys = format!(
        "GET /v2/keys HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(keys.as_bytes()).await.unwrap();
    let mut answers = String::new();
    tokio::time::timeout(WAIT, conn.read_to_string(&mut answers))
        .await
        .expect("answers within the wait")
        .unwrap();
    // Bodies end without a newline, so a status line can follow one directly.
    let statuses: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| answers[at..].split("\r\n").next())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 401 Unauthorized",
            "HTTP/1.1 200 OK"
        ],
        "{answers}"
    );
}
