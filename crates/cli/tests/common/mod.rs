//! Shared by the integration tests: start the real binary, verify
//! signatures the way the SDK receivers do.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use qstash_core::signing::Claims;
pub use qstash_testkit::{dev_user, DevUser, Received, Reply, Server, Sink};
use serde_json::Value;
use sha2::Digest;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_qstash"))
}

pub fn server() -> Server {
    Server::start(bin(), &[])
}

/// Publishes `body` to `url` with `headers`; returns status and JSON.
pub async fn publish(s: &Server, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = s.post(&format!("/v2/publish/{url}")).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("publish");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn publish_ok(s: &Server, url: &str, headers: &[(&str, &str)], body: &str) -> String {
    let (status, json) = publish(s, url, headers, body).await;
    assert!(
        (200..300).contains(&status),
        "publish answered {status}: {json}"
    );
    json["messageId"].as_str().expect("messageId").to_string()
}

/// Verifies `Upstash-Signature` as the SDK receivers do: HS256 with the
/// key's bytes, issuer Upstash, subject = url, body = base64url(sha256).
pub fn verify(r: &Received, key: &str, url: &str) -> Result<Claims, String> {
    let token = r
        .header("upstash-signature")
        .ok_or("no Upstash-Signature")?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["Upstash"]);
    v.set_required_spec_claims(&["iss", "sub", "exp", "nbf"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()),
        &v,
    )
    .map_err(|e| e.to_string())?;
    if data.claims.sub != url {
        return Err(format!("sub {} != {url}", data.claims.sub));
    }
    let want =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&r.body));
    if data.claims.body.trim_end_matches('=') != want {
        return Err("body hash mismatch".into());
    }
    Ok(data.claims)
}

/// Polls `GET /v2/messages/{id}` until it answers `status`.
pub async fn wait_message_status(s: &Server, id: &str, status: u16, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = s
            .get(&format!("/v2/messages/{id}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id} still answers {got}, want {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `GET /v2/events?messageId={id}&state={state}` until it lists an
/// entry; answers the newest.
pub async fn wait_log_entry(s: &Server, id: &str, state: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v: Value = s
            .get(&format!("/v2/events?messageId={id}&state={state}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["events"][0].is_object() {
            return v["events"][0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {state} entry for {id}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
