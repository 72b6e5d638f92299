//! The log API (`GET /v2/events`, `GET /v2/logs`): every state change,
//! newest first, filters, stable paging, redaction, retention.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use serde_json::Value;

async fn events(s: &Server, query: &str) -> (u16, Value) {
    let resp = s.get(&format!("/v2/events?{query}")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn states(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect()
}

/// Polls the log of `id` until its states (newest first) are `want`.
async fn wait_states(s: &Server, id: &str, want: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, page) = events(s, &format!("messageId={id}")).await;
        if states(&page) == want {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log of {id}: {:?}, want {want:?}",
            states(&page)
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn log_follows_the_lifecycle_with_all_fields() {
    let sink = Sink::start().await;
    let s = server();
    sink.script(
        "/life",
        vec![Reply::status(500).body("nope"), Reply::status(200)],
    );
    let id = publish_ok(
        &s,
        &sink.at("/life"),
        &[
            ("Upstash-Retries", "2"),
            ("Upstash-Retry-Delay", "pow(2, retried) * 50"),
            ("Upstash-Timeout", "5s"),
            ("Upstash-Label", "life"),
            ("Upstash-Callback", &sink.at("/life-cb")),
            ("Upstash-Callback-Retries", "1"),
            ("Upstash-Forward-Authorization", "Bearer x"),
            ("Upstash-Redact-Fields", "header[Authorization]"),
        ],
        "life body",
    )
    .await;
    let page = wait_states(
        &s,
        &id,
        &["DELIVERED", "ACTIVE", "RETRY", "ERROR", "ACTIVE", "CREATED"],
    )
    .await;
    let entries = page["events"].as_array().unwrap();
    let times: Vec<i64> = entries
        .iter()
        .map(|e| e["time"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    for e in entries {
        assert_eq!(e["messageId"], id);
        assert_eq!(e["url"], sink.at("/life"));
        assert_eq!(e["method"], "POST");
        assert_eq!(e["maxRetries"], 2);
        assert_eq!(e["timeout"], 5000);
        assert_eq!(e["retryDelayExpr"], "pow(2, retried) * 50");
        assert_eq!(e["retryDelayExpression"], "pow(2, retried) * 50");
        assert_eq!(e["label"], "life");
        assert_eq!(e["callback"], sink.at("/life-cb"));
        assert_eq!(e["callbackHeaders"]["Upstash-Callback-Retries"][0], "1");
        assert_eq!(
            STANDARD.decode(e["body"].as_str().unwrap()).unwrap(),
            b"life body"
        );
        let auth = e["header"]["Authorization"][0].as_str().unwrap();
        assert!(auth.starts_with("REDACTED:"), "{auth}");
    }
    let error = &entries[3];
    assert_eq!(error["responseStatus"], 500);
    assert_eq!(
        STANDARD
            .decode(error["responseBody"].as_str().unwrap())
            .unwrap(),
        b"nope"
    );
    assert!(error["error"].as_str().unwrap().contains("500"));
    let retry = &entries[2];
    assert!(retry["nextDeliveryTime"].as_i64().unwrap() >= retry["time"].as_i64().unwrap());
    assert_eq!(entries[0]["responseStatus"], 200);

    // Failed and cancelled messages end in FAILED and CANCELED.
    sink.script("/dead", vec![Reply::status(500)]);
    let dead = publish_ok(&s, &sink.at("/dead"), &[("Upstash-Retries", "0")], "x").await;
    wait_states(&s, &dead, &["FAILED", "ERROR", "ACTIVE", "CREATED"]).await;
    let later = publish_ok(&s, &sink.at("/later"), &[("Upstash-Delay", "1h")], "x").await;
    let r = s
        .delete(&format!("/v2/messages/{later}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_states(&s, &later, &["CANCELED", "CANCEL_REQUESTED", "CREATED"]).await;

    // /v2/logs answers the same entries under "logs".
    let logs: Value = s
        .get(&format!("/v2/logs?messageId={later}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logs["logs"].as_array().unwrap().len(), 3);
    assert!(logs.get("cursor").is_none());
}

#[tokio::test]
async fn every_filter_selects_its_entries() {
    let sink = Sink::start().await;
    let s = server();
    let before = now_ms();
    let red = publish_ok(&s, &sink.at("/f/red"), &[("Upstash-Label", "red")], "r").await;
    let blue = publish_ok(
        &s,
        &sink.at("/f/blue"),
        &[("Upstash-Label", "blue,sky")],
        "b",
    )
    .await;
    wait_states(&s, &red, &["DELIVERED", "ACTIVE", "CREATED"]).await;
    wait_states(&s, &blue, &["DELIVERED", "ACTIVE", "CREATED"]).await;
    let after = now_ms();
    let later = publish_ok(&s, &sink.at("/f/later"), &[("Upstash-Delay", "1h")], "l").await;

    let ids = |page: &Value| -> Vec<(String, String)> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["messageId"].as_str().unwrap().to_string(),
                    e["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let all3 = |id: &str| {
        ["DELIVERED", "ACTIVE", "CREATED"]
            .iter()
            .map(|st| (id.to_string(), st.to_string()))
            .collect::<Vec<_>>()
    };
    let cases: Vec<(String, Vec<(String, String)>)> = vec![
        (format!("messageId={red}"), all3(&red)),
        (
            format!("messageIds={red}&messageIds={later}&state=CREATED"),
            vec![
                (later.clone(), "CREATED".into()),
                (red.clone(), "CREATED".into()),
            ],
        ),
        (format!("url={}", sink.at("/f/blue")), all3(&blue)),
        ("label=red".into(), all3(&red)),
        ("label=sky".into(), all3(&blue)),
        (
            format!("label=red&state=DELIVERED&fromDate={before}&toDate={after}"),
            vec![(red.clone(), "DELIVERED".into())],
        ),
        (
            format!("state=CREATED&fromDate={before}"),
            vec![
                (later.clone(), "CREATED".into()),
                (blue.clone(), "CREATED".into()),
                (red.clone(), "CREATED".into()),
            ],
        ),
        (format!("state=CREATED&toDate={}", before - 1), vec![]),
        ("host=127.0.0.1&path=/f/red".into(), all3(&red)),
        ("path=/f/blue".into(), all3(&blue)),
        ("host=example.org".into(), vec![]),
        ("topicName=none".into(), vec![]),
        ("queueName=none".into(), vec![]),
        ("scheduleId=none".into(), vec![]),
        (format!("messageId={later}&state=IN_PROGRESS"), vec![]),
    ];
    for (q, want) in cases {
        let (status, page) = events(&s, &q).await;
        assert_eq!(status, 200, "{q}: {page}");
        assert_eq!(ids(&page), want, "{q}");
        assert!(page.get("cursor").is_none(), "{q}");
    }
    // count limits the page and leaves a cursor.
    let (_, page) = events(&s, "count=2").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert!(page["cursor"].is_string());
}

#[tokio::test]
async fn paging_is_stable_while_new_entries_arrive() {
    let sink = Sink::start().await;
    let s = server();
    let mut first = HashSet::new();
    for i in 0..30 {
        first.insert(
            publish_ok(
                &s,
                &sink.at("/page"),
                &[("Upstash-Delay", "1h")],
                &format!("{i}"),
            )
            .await,
        );
    }
    // Publishes keep landing while we page through the CREATED entries.
    let writer = {
        let req = s.post(&format!("/v2/publish/{}", sink.at("/page")));
        tokio::spawn(async move {
            for i in 0..40 {
                let r = req
                    .try_clone()
                    .unwrap()
                    .header("Upstash-Delay", "1h")
                    .body(format!("late {i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let page_url = sink.at("/page");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("url={page_url}&count=4&cursor={c}"),
            None => format!("url={page_url}&count=4"),
        };
        let (status, page) = events(&s, &q).await;
        assert_eq!(status, 200, "{page}");
        for e in page["events"].as_array().unwrap() {
            seen.push((
                e["messageId"].as_str().unwrap().to_string(),
                e["time"].as_i64().unwrap(),
            ));
        }
        match page.get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => break,
        }
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), seen.len(), "an entry was listed twice");
    let missing: Vec<_> = first.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "skipped: {missing:?}");
    assert!(seen.windows(2).all(|w| w[0].1 >= w[1].1), "newest first");
}

#[tokio::test]
async fn log_bad_input_is_a_400_naming_the_parameter() {
    let s = server();
    for (q, name) in [
        ("state=DONE", "state"),
        ("fromDate=today", "fromDate"),
        ("toDate=x", "toDate"),
        ("count=many", "count"),
        ("count=0", "count"),
        ("cursor=abc", "cursor"),
    ] {
        let (status, body) = events(&s, q).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(name),
            "{q}: {body}"
        );
    }
}

#[tokio::test]
async fn log_entries_are_pruned_after_the_retention() {
    let sink = Sink::start().await;
    let s = Server::start(bin(), &["--retention", "2s"]);
    let id = publish_ok(&s, &sink.at("/old"), &[], "x").await;
    wait_states(&s, &id, &["DELIVERED", "ACTIVE", "CREATED"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = events(&s, &format!("messageId={id}")).await;
        if states(&page).is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, page) = events(&s, &format!("url={}", sink.at("/old"))).await;
    assert!(states(&page).is_empty(), "keys pruned with the entries");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
