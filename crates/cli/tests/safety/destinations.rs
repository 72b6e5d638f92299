//! The destination policy, at publish and at delivery.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::credentials::{user_env, TOKEN};

async fn status_and_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

fn serve_post(s: &Server, path: &str) -> reqwest::RequestBuilder {
    s.http.post(format!("{}{path}", s.url)).bearer_auth(TOKEN)
}

#[tokio::test]
async fn serve_refuses_metadata_and_its_own_api_in_every_numeric_form() {
    let s = Server::serve(bin(), &[], &user_env());
    let sink = Sink::start().await;
    let own = s.url.trim_start_matches("http://").to_string();
    let port = own.rsplit(':').next().unwrap().to_string();
    let refused = [
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://2852039166/".into(),
        "http://0xa9fea9fe/".into(),
        "http://[::ffff:169.254.169.254]/".into(),
        "http://metadata.google.internal/computeMetadata/v1/".into(),
        format!("http://{own}/v2/keys"),
        format!("http://0x7f000001:{port}/v2/keys"),
        format!("http://localhost:{port}/v2/keys"),
    ];
    for dest in &refused {
        let (status, error) = status_and_error(
            serve_post(&s, &format!("/v2/publish/{dest}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{dest}: {error}");
        assert!(
            error.contains("rule") || error.contains("own"),
            "{dest}: {error}"
        );
    }
    // Every other way a destination comes in.
    let ok = sink.at("/ok");
    let bad = &refused[0];
    let cases: Vec<(String, reqwest::RequestBuilder)> = vec![
        (
            "enqueue".into(),
            serve_post(&s, &format!("/v2/enqueue/q/{bad}")),
        ),
        (
            "batch".into(),
            serve_post(&s, "/v2/batch").json(&json!([{"destination": bad}])),
        ),
        (
            "callback".into(),
            serve_post(&s, &format!("/v2/publish/{ok}")).header("Upstash-Callback", bad.as_str()),
        ),
        (
            "failure callback".into(),
            serve_post(&s, &format!("/v2/publish/{ok}"))
                .header("Upstash-Failure-Callback", bad.as_str()),
        ),
        (
            "url group endpoint".into(),
            serve_post(&s, "/v2/topics/g/endpoints").json(&json!({"endpoints": [{"url": bad}]})),
        ),
        (
            "schedule".into(),
            serve_post(&s, &format!("/v2/schedules/{bad}")).header("Upstash-Cron", "* * * * *"),
        ),
    ];
    for (what, req) in cases {
        let (status, error) = status_and_error(req.send().await.unwrap()).await;
        assert_eq!(status, 400, "{what}: {error}");
        assert!(error.contains("169.254.0.0/16"), "{what}: {error}");
    }
    // Loopback on another port is allowed: self-hosters deliver locally.
    let resp = serve_post(&s, &format!("/v2/publish/{ok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    sink.wait_for("/ok", 1, WAIT).await;
}

#[tokio::test]
async fn dlq_retry_is_checked_against_the_policy_of_today() {
    // A message that failed while allowed, retried after the address was
    // denied (a restart with new rules), is refused.
    let sink = Sink::start().await;
    sink.script("/gone", vec![Reply::status(500)]);
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(bin(), dir.path(), &[]);
    publish_ok(&s, &sink.at("/gone"), &[("Upstash-Retries", "0")], "x").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let dlq_id = loop {
        let v: Value = s.get("/v2/dlq").send().await.unwrap().json().await.unwrap();
        if let Some(id) = v["messages"][0]["dlqId"].as_str() {
            break id.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(s);
    let s = Server::start_in(bin(), dir.path(), &["--destination-deny", "127.0.0.1"]);
    let (status, error) = status_and_error(
        s.post(&format!("/v2/dlq/retry/{dlq_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("127.0.0.1/32") && error.contains("--destination-deny"),
        "{error}"
    );
}

/// A host name other than `localhost` that resolves to 127.0.0.1 here:
/// the machine's own name (Debian maps it in /etc/hosts).
async fn loopback_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string();
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .unwrap_or_else(|e| panic!("{name} must resolve for this test: {e}"))
        .collect();
    assert!(
        addrs.iter().all(|a| a.ip().is_loopback()),
        "{name} resolves to {addrs:?}"
    );
    name
}

#[tokio::test]
async fn a_name_resolving_to_a_denied_address_fails_at_delivery() {
    // The machine's name passes at publish (no rule names it), then
    // resolves to a denied loopback address: the attempt fails and the
    // sink hears nothing (as with DNS rebinding).
    let sink = Sink::start().await;
    let s = Server::start(bin(), &["--destination-deny", "127.0.0.0/8,::1/128"]);
    let port = sink.url.rsplit(':').next().unwrap().to_string();
    let name = loopback_name().await;
    let id = publish_ok(
        &s,
        &format!("http://{name}:{port}/rebound"),
        &[("Upstash-Retries", "0")],
        "x",
    )
    .await;
    let failed = wait_log_entry(&s, &id, "FAILED", WAIT).await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("127.0.0.0/8") || error.contains("::1/128"),
        "{error}"
    );
    assert!(sink.received().is_empty());
    // A literal address is refused at publish.
    let (status, _) = publish(&s, &sink.at("/x"), &[], "").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    let sink = Sink::start().await;
    let inner = Sink::start_on("127.0.0.2").await;
    sink.script(
        "/hop",
        vec![Reply::status(302).header("Location", &inner.at("/secret"))],
    );
    sink.script(
        "/fine",
        vec![Reply::status(307).header("Location", &sink.at("/landed"))],
    );
    let s = Server::start(bin(), &["--destination-deny", "127.0.0.2"]);
    publish_ok(&s, &sink.at("/hop"), &[("Upstash-Retries", "0")], "x").await;
    publish_ok(&s, &sink.at("/fine"), &[], "y").await;
    sink.wait_for("/landed", 1, WAIT).await;
    sink.wait_for("/hop", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        inner.received().is_empty(),
        "the redirect to a denied address was followed"
    );
}

#[tokio::test]
async fn credentials_stay_with_their_host_when_a_redirect_leaves_it() {
    let sink = Sink::start().await;
    let other = Sink::start().await;
    sink.script(
        "/away",
        vec![Reply::status(307).header("Location", &other.at("/elsewhere"))],
    );
    sink.script(
        "/near",
        vec![Reply::status(308).header("Location", &sink.at("/landed"))],
    );
    sink.script(
        "/loop",
        vec![Reply::status(302).header("Location", &sink.at("/loop"))],
    );
    let s = Server::start(bin(), &[]);
    let secret = [
        ("Upstash-Forward-Authorization", "Bearer secret"),
        ("Upstash-Forward-Cookie", "session=1"),
        ("Upstash-Forward-X-Kept", "yes"),
    ];
    publish_ok(&s, &sink.at("/away"), &secret, "across").await;
    publish_ok(&s, &sink.at("/near"), &secret, "within").await;
    // A 307 and a 308 keep the method and the body; only a hop to another
    // host loses the credentials.
    let across = &other.wait_for("/elsewhere", 1, WAIT).await[0];
    assert_eq!(&across.body[..], b"across");
    assert_eq!(across.header("x-kept"), Some("yes"));
    assert_eq!(across.header("authorization"), None);
    assert_eq!(across.header("cookie"), None);
    let within = &sink.wait_for("/landed", 1, WAIT).await[0];
    assert_eq!(&within.body[..], b"within");
    assert_eq!(within.header("authorization"), Some("Bearer secret"));
    assert_eq!(within.header("cookie"), Some("session=1"));

    // A redirect loop ends after 10 hops, as a failed attempt.
    let id = publish_ok(&s, &sink.at("/loop"), &[("Upstash-Retries", "0")], "l").await;
    let failed = wait_log_entry(&s, &id, "FAILED", WAIT).await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("too many redirects"), "{error}");
    assert_eq!(sink.received_at("/loop").len(), 11);
}
