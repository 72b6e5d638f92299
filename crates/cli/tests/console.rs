//! The web console through the real binary: its page and assets at `/`,
//! `--console=false`, the dev users it offers, and the extension endpoints
//! it reads (`GET /v2/messages`, `GET /v2/stats`, `GET /v2/cron/next`).
//! The browser tests (tests/console) drive the pages themselves.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::Value;

async fn get_json(s: &Server, path: &str, user: usize) -> (u16, Value) {
    let resp = s
        .request(Method::GET, path, &dev_user(user))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn plain_get(s: &Server, path: &str) -> reqwest::Response {
    s.http.get(format!("{}{path}", s.url)).send().await.unwrap()
}

#[tokio::test]
async fn the_console_is_served_at_the_root_unless_turned_off() {
    let s = server();
    let page = plain_get(&s, "/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("QStash console"));
    assert_eq!(plain_get(&s, "/console/js/app.js").await.status(), 200);
    let users: Value = plain_get(&s, "/console/dev-users.json")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["defaultUser", "testUser1", "testUser2", "testUser3"]);
    assert_eq!(users[0]["token"], dev_user(0).token);

    let off = Server::start(bin(), &["--console=false"]);
    for path in ["/", "/console/js/app.js", "/console/dev-users.json"] {
        let r = plain_get(&off, path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().is_some(), "{path}: {body}");
    }
    // The API itself is unchanged.
    assert_eq!(get_json(&off, "/v2/keys", 0).await.0, 200);
}

#[tokio::test]
async fn live_messages_are_paged_newest_first_and_counted_per_user() {
    let s = server();
    let mut ids = Vec::new();
    for i in 0..5 {
        let label = format!("batch-{}", i % 2);
        let headers = [("Upstash-Delay", "1h"), ("Upstash-Label", label.as_str())];
        ids.push(publish_ok(&s, "http://127.0.0.1:9/x", &headers, "hi").await);
    }
    let other = s
        .request(
            Method::POST,
            "/v2/publish/http://127.0.0.1:9/y",
            &dev_user(1),
        )
        .header("Upstash-Delay", "1h")
        .send()
        .await
        .unwrap();
    assert!(other.status().is_success());

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v2/messages?count=2&cursor={cursor}");
        let (status, page) = get_json(&s, &path, 0).await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap();
        assert!(messages.len() <= 2);
        for m in messages {
            assert_eq!(m["state"], "DELAYED");
            assert!(m["nextDeliveryTime"].as_i64().unwrap() > 0);
            seen.push(m["messageId"].as_str().unwrap().to_string());
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once, only this user's");

    let (_, labelled) = get_json(&s, "/v2/messages?label=batch-1&withTotal=true", 0).await;
    assert_eq!(labelled["messages"].as_array().unwrap().len(), 2);
    assert_eq!(labelled["total"]["all"], 2);
    assert_eq!(labelled["total"]["delayed"], 2);
    assert_eq!(labelled["total"]["capped"], false);

    let (_, theirs) = get_json(&s, "/v2/messages?withTotal=true", 1).await;
    assert_eq!(theirs["messages"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["total"]["all"], 1);

    for bad in [
        "/v2/messages?bogus=1",
        "/v2/messages?cursor=abc",
        "/v2/messages?withTotal=yes",
        "/v2/messages?count=0",
    ] {
        let (status, body) = get_json(&s, bad, 0).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some());
    }
    let anonymous = plain_get(&s, "/v2/messages").await;
    assert_eq!(anonymous.status(), 401);

    // A cancelled message leaves the list.
    let cancel = s
        .delete(&format!("/v2/messages/{}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let (_, after) = get_json(&s, "/v2/messages?withTotal=true", 0).await;
    assert_eq!(after["total"]["all"], 4);
}

#[tokio::test]
async fn stats_count_the_last_hour_per_user() {
    let sink = Sink::start().await;
    sink.script("/fail", vec![Reply::status(500)]);
    let s = server();
    let ok = sink.at("/ok");
    publish_ok(&s, &ok, &[], "a").await;
    publish_ok(&s, &ok, &[], "b").await;
    let failing = [("Upstash-Retries", "1"), ("Upstash-Retry-Delay", "10")];
    let id = publish_ok(&s, &sink.at("/fail"), &failing, "c").await;
    sink.wait_for("/ok", 2, WAIT).await;
    sink.wait_for("/fail", 2, WAIT).await;
    // The failure is recorded after the second attempt's answer. The live
    // and DLQ counts are two reads, so wait until both show it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let stats = loop {
        let (status, stats) = get_json(&s, "/v2/stats", 0).await;
        assert_eq!(status, 200, "{stats}");
        if stats["dlq"]["all"] == 1 && stats["messages"]["all"] == 0 {
            break stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let minutes = stats["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let sum = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (
            sum("published"),
            sum("delivered"),
            sum("retried"),
            sum("failed")
        ),
        (3, 2, 1, 1)
    );
    assert_eq!(stats["messages"]["all"], 0);
    assert!(stats["since"].as_i64().unwrap() > 0);

    let (_, theirs) = get_json(&s, "/v2/stats", 1).await;
    let minutes = theirs["minutes"].as_array().unwrap();
    assert!(minutes.iter().all(|m| m["published"] == 0));
    assert_eq!(theirs["dlq"]["all"], 0);
}

#[tokio::test]
async fn cron_next_answers_ticks_in_the_expression_zone() {
    let s = server();
    let (status, next) = get_json(
        &s,
        "/v2/cron/next?cron=CRON_TZ%3DEurope%2FBerlin%200%209%20*%20*%20*&count=3",
        0,
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["timeZone"], "Europe/Berlin");
    let ticks = next["next"].as_array().unwrap();
    assert_eq!(ticks.len(), 3);
    for t in ticks {
        let local = t["local"].as_str().unwrap();
        assert!(local.contains(" 09:00 CE"), "{local}");
    }
    assert!(ticks[0]["time"].as_i64() < ticks[1]["time"].as_i64());

    let (status, bad) = get_json(&s, "/v2/cron/next?cron=61%20*%20*%20*%20*", 0).await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("minute"), "{bad}");
    assert_eq!(get_json(&s, "/v2/cron/next", 0).await.0, 400);
}
