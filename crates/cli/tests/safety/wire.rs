//! Wire gaps: header forwarding, URL group defaults, trusted proxies, the
//! dev flags, TLS, a taken port, and the `api/llm` destination.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::*;
use crate::credentials::{user_env, TOKEN};

#[tokio::test]
async fn header_forward_sends_the_webhook_headers_but_not_the_token() {
    let s = server();
    let sink = Sink::start().await;
    let token = dev_user(0).token;
    let resp = s
        .http
        .post(format!(
            "{}/v2/publish/{}?qstash_token={token}&upstash-header-forward=true",
            s.url,
            sink.at("/hook")
        ))
        .header("Stripe-Signature", "t=1,v1=abc")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = sink.wait_for("/hook", 1, WAIT).await;
    assert_eq!(got[0].header("stripe-signature"), Some("t=1,v1=abc"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert!(got[0].header("upstash-header-forward").is_none());
    // The QStash token never reaches the destination.
    let resp = s
        .post(&format!("/v2/publish/{}", sink.at("/hook2")))
        .header("Upstash-Header-Forward", "true")
        .header("X-Custom", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = sink.wait_for("/hook2", 1, WAIT).await;
    assert_eq!(got[0].header("x-custom"), Some("1"));
    assert!(got[0].header("authorization").is_none());
}

#[tokio::test]
async fn url_group_default_headers_apply_to_its_publishes() {
    let s = server();
    let sink = Sink::start().await;
    let eps = json!({"endpoints": [{"url": sink.at("/g1")}]});
    assert_eq!(
        s.post("/v2/topics/hooks/endpoints")
            .json(&eps)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let patch = json!({"headers": {"Upstash-Header-Forward": ["true"], "Upstash-Retries": "0", "Upstash-Forward-X-Team": "blue"}});
    let resp = s
        .request(reqwest::Method::PATCH, "/v2/topics/hooks", &dev_user(0))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bad = json!({"headers": {"Upstash-Retries": "lots"}});
    let resp = s
        .request(reqwest::Method::PATCH, "/v2/topics/hooks", &dev_user(0))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = s
        .request(reqwest::Method::PATCH, "/v2/topics/nope", &dev_user(0))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = s
        .post("/v2/publish/hooks")
        .header("X-Webhook", "w")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    let got = sink.wait_for("/g1", 1, WAIT).await;
    assert_eq!(got[0].header("x-webhook"), Some("w"));
    assert_eq!(got[0].header("x-team"), Some("blue"));
    let id = v[0]["messageId"].as_str().unwrap();
    let m: Value = s
        .get(&format!("/v2/events?messageId={id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["events"][0]["maxRetries"], 0, "{m}");
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_trusted_proxies() {
    let sink = Sink::start().await;
    for (args, want) in [
        (vec!["--trusted-proxies", "127.0.0.0/8"], "203.0.113.9"),
        (vec![], "127.0.0.1"),
    ] {
        let s = Server::start(bin(), &args);
        let path = format!("/ip{}", want.len());
        let resp = s
            .post(&format!("/v2/publish/{}", sink.at(&path)))
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let got = sink.wait_for(&path, 1, WAIT).await;
        assert_eq!(got[0].header("upstash-caller-ip"), Some(want), "{args:?}");
    }
}

#[tokio::test]
async fn dev_quota_and_log_port_have_an_effect() {
    let free_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log_port = free_port.to_string();
    let limited = Server::start(bin(), &["-quota=free", "-log-port", &log_port]);
    let open = Server::start(bin(), &[]);
    let statuses = |s: &Server| {
        // Twice the free plan's 100 per second: even arriving over more
        // than a second on a busy machine, some must be refused.
        let calls: Vec<_> = (0..300).map(|_| s.get("/v2/queues").send()).collect();
        async move {
            let mut out = Vec::new();
            for r in futures_join(calls).await {
                let r = r.unwrap();
                out.push((
                    r.status().as_u16(),
                    r.headers().get("burst-ratelimit-limit").cloned(),
                ));
            }
            out
        }
    };
    // A machine too busy to serve 100 requests a second never exceeds the
    // rate: a few more bursts before concluding that nothing is refused.
    let mut got = Vec::new();
    for _ in 0..5 {
        got = statuses(&limited).await;
        if got.iter().any(|(s, _)| *s == 429) {
            break;
        }
    }
    let limited_429: Vec<_> = got.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!limited_429.is_empty(), "no 429 with -quota=free");
    assert_eq!(limited_429[0].1.as_ref().unwrap(), "100");
    assert!(statuses(&open).await.iter().all(|(s, _)| *s == 200));
    // The log port serves the API too.
    let resp = limited
        .http
        .get(format!("http://127.0.0.1:{log_port}/v2/keys"))
        .bearer_auth(dev_user(1).token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}

#[test]
fn a_taken_port_is_a_one_line_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let (code, out) = qstash_testkit::run_to_exit(
        bin(),
        &["dev", "--port", &port],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(
        out.contains("cannot listen") && out.contains(&port),
        "{out}"
    );
}

#[tokio::test]
async fn serve_speaks_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let s = Server::serve(
        bin(),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        &user_env(),
    );
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/v2/keys", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Plain HTTP on the TLS port gets no answer.
    let plain = s.url.replace("https://", "http://");
    assert!(s.http.get(format!("{plain}/v2/keys")).send().await.is_err());
}

/// A delivery to an `https://` destination verifies its certificate
/// against the system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` here):
/// trusted, the destination's answer is recorded; untrusted, the attempt
/// fails without one. The destination is a second server speaking TLS,
/// whose API answers 401 to the unsigned request.
#[tokio::test]
async fn https_deliveries_verify_the_destination_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = write("cert.pem", &cert.cert.pem());
    let key_path = write("key.pem", &cert.signing_key.serialize_pem());
    let other_path = write("other.pem", &other.cert.pem());
    let empty = dir.path().join("no-roots");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    let destination = Server::serve(
        bin(),
        &["--tls-cert", &cert_path, "--tls-key", &key_path],
        &user_env(),
    );
    let url = format!("{}/v2/keys", destination.url);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    for (roots, trusted) in [(&cert_path, true), (&other_path, false)] {
        let data = tempfile::tempdir().unwrap();
        let env = [("SSL_CERT_FILE", roots.as_str()), ("SSL_CERT_DIR", empty)];
        let s = Server::launch(bin(), "dev", data.path(), &[], &env);
        let id = publish_ok(&s, &url, &[("Upstash-Retries", "0")], "x").await;
        let event = wait_log_entry(&s, &id, "FAILED", Duration::from_secs(15)).await;
        if trusted {
            assert_eq!(event["responseStatus"], 401, "{event}");
        } else {
            let error = event["error"].as_str().unwrap_or_default();
            assert_eq!(event["responseStatus"], 0, "{event}");
            assert!(error.to_lowercase().contains("certificate"), "{event}");
        }
    }
}

#[tokio::test]
async fn api_llm_is_delivered_to_the_configured_provider() {
    let provider = Sink::start().await;
    let completion = r#"{"id":"chatcmpl-1","choices":[{"message":{"role":"assistant","content":"fn main() {}"}}]}"#;
    provider.script(
        "/v1/chat/completions",
        vec![Reply::status(200)
            .header("content-type", "application/json")
            .body(completion)],
    );
    let callback = Sink::start().await;
    let s = Server::start(bin(), &["--llm-base-url", &provider.url]);
    let request = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]});
    let resp = s
        .post("/v2/publish/api/llm")
        .header("Content-Type", "application/json")
        .header("Upstash-Forward-Authorization", "Bearer provider-key")
        .header("Upstash-Callback", callback.at("/cb"))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert!(v["messageId"].is_string() && v.get("url").is_none(), "{v}");
    let got = provider.wait_for("/v1/chat/completions", 1, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer provider-key"));
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        request
    );
    let cb = callback.wait_for("/cb", 1, WAIT).await;
    let report: Value = serde_json::from_slice(&cb[0].body).unwrap();
    assert_eq!(report["status"], 200);
    let body = base64::engine::general_purpose::STANDARD
        .decode(report["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, completion.as_bytes());
    // In a batch too.
    let resp = s
        .post("/v2/batch")
        .json(&json!([{"destination": "api/llm", "body": request.to_string(), "headers": {"Upstash-Callback": callback.at("/cb")}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    provider.wait_for("/v1/chat/completions", 2, WAIT).await;
}
