//! Log lines (`--log-format`): one JSON object per request and per
//! delivery attempt, and no secret in any of them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const TOKEN: &str = "tok_Zr8sEcretTokenNeverLogged";
const CURRENT: &str = "sig_CurrentKeyNeverLogged11";
const NEXT: &str = "sig_NextKeyNeverLogged22222";
const FORWARDED: &str = "Bearer fwd_DestinationSecret33";
const WRONG: &str = "wrong_TokenNeverLogged4444";

fn serve(env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("QSTASH_TOKEN", TOKEN),
        ("QSTASH_CURRENT_SIGNING_KEY", CURRENT),
        ("QSTASH_NEXT_SIGNING_KEY", NEXT),
        ("RUST_LOG", "info"),
    ];
    all.extend_from_slice(env);
    Server::serve(bin(), &["--destination-allow", "127.0.0.1"], &all)
}

/// Waits until a line satisfies `ok`; answers it.
async fn wait_line(s: &Server, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = s.output().into_iter().find(|l| ok(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} line in: {:#?}",
            s.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn traffic(s: &Server, sink: &Sink) -> String {
    let resp = s
        .http
        .post(format!("{}/v2/publish/{}", s.url, sink.at("/hook?k=v")))
        .bearer_auth(TOKEN)
        .header("Upstash-Forward-Authorization", FORWARDED)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["messageId"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = s
        .http
        .get(format!("{}/v2/messages/{id}", s.url))
        .bearer_auth(WRONG)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    sink.wait_for("/hook", 1, WAIT).await;
    id
}

fn banner(line: &str) -> bool {
    line.starts_with("Console: ") || line.trim().is_empty()
}

fn assert_no_secret(lines: &[String]) {
    for line in lines {
        for secret in [TOKEN, CURRENT, NEXT, "fwd_DestinationSecret33", WRONG] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
    }
}

#[tokio::test]
async fn json_lines_name_the_request_and_the_delivery_and_no_secret() {
    let sink = Sink::start().await;
    let s = serve(&[("QSTASH_LOG_FORMAT", "json")]);
    let id = traffic(&s, &sink).await;
    let attempt = wait_line(&s, "delivery attempt", |l| {
        l.contains("qstash::delivery") && l.contains(&id)
    })
    .await;
    let attempt: Value = serde_json::from_str(&attempt).expect("a JSON line");
    assert_eq!(attempt["level"], "INFO");
    assert_eq!(attempt["message_id"], id.as_str());
    assert_eq!(attempt["host"], "127.0.0.1");
    assert_eq!(attempt["status"], 200);
    assert_eq!(attempt["retry"], 0);
    assert_eq!(attempt["outcome"], "delivered");
    assert!(attempt["duration_ms"].is_u64(), "{attempt}");
    assert!(attempt["timestamp"].is_string(), "{attempt}");

    let publish = wait_line(&s, "publish request", |l| {
        l.contains("qstash::http") && l.contains("/v2/publish/")
    })
    .await;
    let publish: Value = serde_json::from_str(&publish).unwrap();
    assert_eq!(publish["method"], "POST");
    assert_eq!(publish["route"], "/v2/publish/{*destination}");
    assert_eq!(publish["status"], 201);
    assert_eq!(publish["user"], "default");
    assert!(publish["duration_ms"].is_f64(), "{publish}");
    let refused = wait_line(&s, "refused request", |l| l.contains("\"status\":401")).await;
    let refused: Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(refused["route"], "/v2/messages/{id}");
    assert!(refused.get("user").is_none(), "{refused}");
    // Every log line is JSON (the start-up banner stays plain text), and
    // none holds a secret.
    let lines = s.output();
    let logs: Vec<&String> = lines.iter().filter(|l| !banner(l)).collect();
    assert!(logs.len() >= 3, "{lines:#?}");
    for line in logs {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert_no_secret(&lines);
}

#[tokio::test]
async fn text_lines_on_request_and_rust_log_levels() {
    let sink = Sink::start().await;
    let s = serve(&[("QSTASH_LOG_FORMAT", "text")]);
    let id = traffic(&s, &sink).await;
    let line = wait_line(&s, "delivery attempt", |l| l.contains(&id)).await;
    assert!(serde_json::from_str::<Value>(&line).is_err(), "{line}");
    assert!(
        line.contains("INFO") && line.contains("delivery attempt"),
        "{line}"
    );
    assert_no_secret(&s.output());

    // RUST_LOG=warn silences the info lines.
    let quiet = serve(&[("QSTASH_LOG_FORMAT", "json"), ("RUST_LOG", "warn")]);
    traffic(&quiet, &sink).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        quiet.output().iter().all(|l| !l.contains("\"INFO\"")),
        "{:#?}",
        quiet.output()
    );
}
