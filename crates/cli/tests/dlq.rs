//! The dead-letter queue API (WIRE.md §3.8): list with filters and
//! paging, get, delete one and many, retry one and many, retention.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn get_json(s: &Server, path: &str) -> (u16, Value) {
    let resp = s.get(path).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Publishes a message that fails at once; returns (messageId, dlqId).
async fn dead(s: &Server, url: &str, headers: &[(&str, &str)], body: &str) -> (String, String) {
    let mut all = vec![("Upstash-Retries", "0")];
    all.extend_from_slice(headers);
    let id = publish_ok(s, url, &all, body).await;
    wait_dead(s, &id).await
}

/// Publishes `body` (any bytes) with no retries; answers the message id.
async fn publish_raw(s: &Server, url: &str, body: &[u8]) -> String {
    let resp = s
        .post(&format!("/v2/publish/{url}"))
        .header("Upstash-Retries", "0")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let json: Value = resp.json().await.unwrap();
    json["messageId"].as_str().unwrap().to_string()
}

/// Waits until message `id` is in the DLQ; returns (messageId, dlqId).
async fn wait_dead(s: &Server, id: &str) -> (String, String) {
    let id = id.to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, page) = get_json(s, &format!("/v2/dlq?messageId={id}")).await;
        if let Some(m) = page["messages"].as_array().and_then(|a| a.first()) {
            return (id, m["dlqId"].as_str().unwrap().to_string());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn ids(page: &Value, key: &str) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[key].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn dlq_entry_keeps_the_message_and_its_last_response() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/fail",
        vec![Reply::status(404).body("404 Not Found").header("X-R", "1")],
    );
    let (id, dlq_id) = dead(
        &s,
        &sink.at("/fail"),
        &[
            ("Upstash-Label", "dl"),
            ("Upstash-Forward-Authorization", "Bearer hidden"),
            ("Upstash-Forward-X-Shown", "shown"),
            ("Upstash-Redact-Fields", "body, header[Authorization]"),
            ("Content-Type", "text/plain"),
        ],
        "the body",
    )
    .await;
    let (status, m) = get_json(&s, &format!("/v2/dlq/{dlq_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(m["dlqId"], dlq_id);
    assert_eq!(m["messageId"], id);
    assert_eq!(m["url"], sink.at("/fail"));
    assert_eq!(m["method"], "POST");
    assert_eq!(m["responseStatus"], 404);
    assert_eq!(m["responseBody"], "404 Not Found");
    assert_eq!(m["responseHeader"]["X-R"][0], "1");
    assert_eq!(m["maxRetries"], 0);
    assert_eq!(m["label"], "dl");
    assert_eq!(m["header"]["X-Shown"][0], "shown");
    assert_eq!(m["header"]["Content-Type"][0], "text/plain");
    // Redacted in the DLQ, delivered in full.
    assert!(m["header"]["Authorization"][0]
        .as_str()
        .unwrap()
        .starts_with("REDACTED:"));
    assert!(m["body"].as_str().unwrap().starts_with("REDACTED:"));
    let got = &sink.received_at("/fail")[0];
    assert_eq!(got.header("authorization"), Some("Bearer hidden"));
    assert_eq!(&got.body[..], b"the body");

    // Control characters are valid UTF-8 and stay in responseBody.
    sink.script(
        "/bin",
        vec![Reply::status(500).body("\u{0}\u{1}").header("X", "y")],
    );
    let (_, bin) = dead(&s, &sink.at("/bin"), &[], "\u{0}").await;
    let (_, m) = get_json(&s, &format!("/v2/dlq/{bin}")).await;
    assert_eq!(m["responseBody"], "\u{0}\u{1}");

    // Bytes that are not UTF-8 come back base64-encoded, under the
    // *Base64 names, for the response and the message body alike.
    sink.script(
        "/raw",
        vec![Reply::status(500).raw_body(&[0xff, 0xfe, 0x00])],
    );
    let id = publish_raw(&s, &sink.at("/raw"), &[0xc3, 0x28]).await;
    let (_, raw) = wait_dead(&s, &id).await;
    let (_, m) = get_json(&s, &format!("/v2/dlq/{raw}")).await;
    assert_eq!(m["responseBodyBase64"], "//4A", "{m}");
    assert!(m.get("responseBody").is_none(), "{m}");
    assert_eq!(m["bodyBase64"], "wyg=", "{m}");
    assert!(m.get("body").is_none(), "{m}");

    // Another user sees none of it.
    let other = s
        .request(
            reqwest::Method::GET,
            &format!("/v2/dlq/{dlq_id}"),
            &dev_user(1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn dlq_list_filters_and_pages() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/a", vec![Reply::status(500)]);
    sink.script("/b", vec![Reply::status(502)]);
    let before = now_ms();
    let mut all = Vec::new();
    for i in 0..5 {
        let label = if i % 2 == 0 { "even" } else { "odd" };
        all.push(dead(&s, &sink.at("/a"), &[("Upstash-Label", label)], "a").await);
    }
    let (b_id, b_dlq) = dead(&s, &sink.at("/b"), &[], "b").await;
    let after = now_ms();

    // Paging: earliest first by default, cursor omitted on the last page.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v2/dlq?count=4&cursor={c}"),
            None => "/v2/dlq?count=4".into(),
        };
        let (status, page) = get_json(&s, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page, "messageId"));
        match page.get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => break,
        }
    }
    let mut want: Vec<String> = all.iter().map(|(m, _)| m.clone()).collect();
    want.push(b_id.clone());
    assert_eq!(seen, want, "every entry once, earliest first");
    let (_, latest) = get_json(&s, "/v2/dlq?order=latestFirst&count=1").await;
    assert_eq!(ids(&latest, "messageId"), vec![b_id.clone()]);
    assert!(latest.get("cursor").is_some());

    let url_a = sink.at("/a");
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("url={url_a}"),
            all.iter().map(|x| x.0.clone()).collect(),
        ),
        ("responseStatus=502".into(), vec![b_id.clone()]),
        ("responseStatus=502&responseStatus=500".into(), want.clone()),
        ("label=odd".into(), vec![all[1].0.clone(), all[3].0.clone()]),
        (format!("messageId={}", all[2].0), vec![all[2].0.clone()]),
        (
            format!("dlqIds={}&dlqIds={b_dlq}", all[0].1),
            vec![all[0].0.clone(), b_id.clone()],
        ),
        ("callerIp=127.0.0.1".into(), want.clone()),
        ("callerIp=0.0.0.0".into(), vec![]),
        (format!("fromDate={before}&toDate={after}"), want.clone()),
        (format!("fromDate={}", after + 1), vec![]),
        (format!("toDate={}", before - 1), vec![]),
        ("topicName=nope".into(), vec![]),
        ("queueName=nope".into(), vec![]),
        ("scheduleId=nope".into(), vec![]),
        ("flowControlKey=nope".into(), vec![]),
    ];
    for (q, want) in cases {
        let (status, page) = get_json(&s, &format!("/v2/dlq?{q}")).await;
        assert_eq!(status, 200, "{q}: {page}");
        assert_eq!(ids(&page, "messageId"), want, "{q}");
        assert!(page.get("cursor").is_none(), "{q}");
    }
}

#[tokio::test]
async fn dlq_delete_one_and_many_in_every_form() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/d", vec![Reply::status(500)]);
    let mut dlq = Vec::new();
    for _ in 0..7 {
        dlq.push(dead(&s, &sink.at("/d"), &[], "x").await.1);
    }
    // One.
    let r = s
        .delete(&format!("/v2/dlq/{}", dlq[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .delete(&format!("/v2/dlq/{}", dlq[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "already deleted");
    let (status, _) = get_json(&s, &format!("/v2/dlq/{}", dlq[0])).await;
    assert_eq!(status, 404);

    // JSON body (Python SDK); unknown ids do not error.
    let r: Value = s
        .delete("/v2/dlq")
        .json(&json!({ "dlqIds": [dlq[1], dlq[0], "123-nope"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({ "deleted": 1 }));

    // Query ids.
    let r: Value = s
        .delete(&format!("/v2/dlq?dlqIds={}&dlqIds={}", dlq[2], dlq[3]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({ "deleted": 2 }));

    // A filter with count and cursor: 3 left, count 2 leaves a cursor.
    let url = sink.at("/d");
    let r: Value = s
        .delete(&format!("/v2/dlq?url={url}&count=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["deleted"], 2);
    let cursor = r["cursor"].as_str().expect("cursor while more remain");
    let r: Value = s
        .delete(&format!("/v2/dlq?url={url}&count=2&cursor={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({ "deleted": 1 }), "no cursor at the end");
    let (_, page) = get_json(&s, "/v2/dlq").await;
    assert!(page["messages"].as_array().unwrap().is_empty());

    // A typo in a filter must not widen the delete to everything.
    dead(&s, &sink.at("/d"), &[], "x").await;
    let r = s
        .delete("/v2/dlq?labeel=some-value&count=100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("labeel"));
    let (_, page) = get_json(&s, "/v2/dlq").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn dlq_retry_creates_a_new_message_with_overrides() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/r",
        vec![Reply::status(500), Reply::status(500), Reply::status(200)],
    );
    let (old_id, dlq_id) = dead(
        &s,
        &sink.at("/r"),
        &[
            ("Upstash-Forward-X-Keep", "k"),
            ("Upstash-Forward-X-Over", "old"),
        ],
        "retry me",
    )
    .await;
    // Single retry, with the retries overridden to 0 and a header replaced.
    let r = s
        .post(&format!("/v2/dlq/retry/{dlq_id}"))
        .header("Upstash-Retries", "0")
        .header("Upstash-Forward-X-Over", "new")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let new_id = r.json::<Value>().await.unwrap()["messageId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, old_id);
    let (status, _) = get_json(&s, &format!("/v2/dlq/{dlq_id}")).await;
    assert_eq!(status, 404, "the entry left the DLQ");
    let got = sink.wait_for("/r", 2, WAIT).await;
    let second = &got[1];
    assert_eq!(second.header("upstash-message-id"), Some(new_id.as_str()));
    assert_eq!(&second.body[..], b"retry me");
    assert_eq!(second.header("x-keep"), Some("k"));
    assert_eq!(second.header("x-over"), Some("new"));
    // Retries 0: the new message failed once and is in the DLQ again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let again = loop {
        let (_, page) = get_json(&s, &format!("/v2/dlq?messageId={new_id}")).await;
        if let Some(m) = page["messages"].as_array().unwrap().first() {
            break m.clone();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(again["maxRetries"], 0);
    assert_eq!(sink.received_at("/r").len(), 2, "exactly one attempt");

    // Unknown id: 404; bad override: 400 and the entry stays.
    let again_id = again["dlqId"].as_str().unwrap();
    let r = s.post("/v2/dlq/retry/123-0").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .post(&format!("/v2/dlq/retry/{again_id}"))
        .header("Upstash-Retries", "many")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = get_json(&s, &format!("/v2/dlq/{again_id}")).await;
    assert_eq!(status, 200);

    // Bulk by ids: the new message is delivered (200 is next in the script).
    let r: Value = s
        .post(&format!("/v2/dlq/retry?dlqIds={again_id}&dlqIds=999-9"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let responses = r["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 1, "{r}");
    assert!(r.get("cursor").is_none());
    sink.wait_for("/r", 3, WAIT).await;
}

#[tokio::test]
async fn dlq_bulk_retry_by_filter_count_and_cursor() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/bulk", vec![Reply::status(500)]);
    sink.script("/other", vec![Reply::status(500)]);
    let mut bulk = HashSet::new();
    for _ in 0..3 {
        bulk.insert(dead(&s, &sink.at("/bulk"), &[], "b").await.0);
    }
    dead(&s, &sink.at("/other"), &[], "o").await;
    let url = sink.at("/bulk");
    let r: Value = s
        .post(&format!("/v2/dlq/retry?url={url}&count=2"))
        .header("Upstash-Retries", "0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["responses"].as_array().unwrap().len(), 2, "{r}");
    let cursor = r["cursor"].as_str().expect("more to retry").to_string();
    let r: Value = s
        .post(&format!("/v2/dlq/retry?url={url}&count=2&cursor={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["responses"].as_array().unwrap().len(), 1, "{r}");
    assert!(r.get("cursor").is_none());
    // Nothing matches: responses present and empty.
    let r: Value = s
        .post("/v2/dlq/retry?responseStatus=999&callerIp=0.0.0.0&fromDate=4070908800000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({ "responses": [] }));
    let r = s.post("/v2/dlq/retry?labeel=x").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The /other entry is untouched; the three retried ones were delivered again.
    sink.wait_for("/bulk", 6, WAIT).await;
    let (_, page) = get_json(&s, &format!("/v2/dlq?url={}", sink.at("/other"))).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn dlq_bad_input_is_a_400_naming_the_parameter() {
    let s = server();
    for (q, name) in [
        ("fromDate=yesterday", "fromDate"),
        ("toDate=1.5", "toDate"),
        ("count=abc", "count"),
        ("count=0", "count"),
        ("order=newest", "order"),
        ("responseStatus=ok", "responseStatus"),
        ("cursor=garbage", "cursor"),
        ("host=example.com", "host"),
    ] {
        let (status, body) = get_json(&s, &format!("/v2/dlq?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(name),
            "{q}: {body}"
        );
    }
    let (status, body) = get_json(&s, "/v2/dlq/123-4").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn dlq_entries_are_purged_after_the_retention() {
    let sink = Sink::start().await;
    let s = Server::start(bin(), &["--dlq-retention", "2s"]);
    sink.script("/p", vec![Reply::status(500)]);
    let (_, dlq_id) = dead(&s, &sink.at("/p"), &[], "x").await;
    let (status, _) = get_json(&s, &format!("/v2/dlq/{dlq_id}")).await;
    assert_eq!(status, 200, "kept within the retention");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = get_json(&s, &format!("/v2/dlq/{dlq_id}")).await;
        if status == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A retried message that joins a queue or a flow-control key is handed
/// to the gate like a publish, not left waiting for an unrelated wake-up.
#[tokio::test]
async fn dlq_retry_into_a_queue_or_flow_control_key_is_delivered() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/q", vec![Reply::status(500), Reply::status(200)]);
    sink.script("/fc", vec![Reply::status(500), Reply::status(200)]);
    let r = s
        .post(&format!("/v2/enqueue/retry-queue/{}", sink.at("/q")))
        .header("Upstash-Retries", "0")
        .body("queued")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let queued: Value = r.json().await.unwrap();
    let (_, queued_dlq) = wait_dead(&s, queued["messageId"].as_str().unwrap()).await;
    let (_, keyed_dlq) = dead(
        &s,
        &sink.at("/fc"),
        &[
            ("Upstash-Flow-Control-Key", "retry-key"),
            ("Upstash-Flow-Control-Value", "parallelism=1"),
        ],
        "keyed",
    )
    .await;
    for dlq_id in [&queued_dlq, &keyed_dlq] {
        let r = s
            .post(&format!("/v2/dlq/retry/{dlq_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    sink.wait_for("/q", 2, WAIT).await;
    sink.wait_for("/fc", 2, WAIT).await;
}

/// Following the cursor of a bulk retry ends, even when every retried
/// message fails at once and lands in the DLQ again behind the cursor.
#[tokio::test]
async fn a_bulk_retry_sweep_ends_when_retried_messages_fail_again() {
    let sink = Sink::start().await;
    let s = server();
    sink.script("/down", vec![Reply::status(500)]);
    for _ in 0..5 {
        dead(&s, &sink.at("/down"), &[("Upstash-Label", "sweep")], "x").await;
    }
    let mut cursor: Option<String> = None;
    let (mut calls, mut retried) = (0, 0);
    loop {
        let path = match &cursor {
            Some(c) => format!("/v2/dlq/retry?label=sweep&count=2&cursor={c}"),
            None => "/v2/dlq/retry?label=sweep&count=2".to_string(),
        };
        let r: Value = s
            .post(&path)
            .header("Upstash-Retries", "0")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls += 1;
        retried += r["responses"].as_array().unwrap().len();
        // Let the retried messages fail and re-enter the DLQ first.
        sink.wait_for("/down", 5 + retried, WAIT).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        cursor = r["cursor"].as_str().map(str::to_string);
        if cursor.is_none() || calls == 10 {
            break;
        }
    }
    assert_eq!((calls, retried), (3, 5), "the sweep visits each entry once");
    let (_, page) = get_json(&s, "/v2/dlq?label=sweep").await;
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        5,
        "all failed again"
    );
}
