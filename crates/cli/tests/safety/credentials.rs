//! Credentials: no empty token or key, no empty query token, a private and
//! exclusive data directory.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use qstash_testkit::run_to_exit;

use crate::common::*;

pub const TOKEN: &str = "serve-token-1";
pub const CURRENT: &str = "sig_serveCurrent";
pub const NEXT: &str = "sig_serveNext";

/// The environment of a `qstash serve` with one user.
pub fn user_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("QSTASH_TOKEN", TOKEN),
        ("QSTASH_CURRENT_SIGNING_KEY", CURRENT),
        ("QSTASH_NEXT_SIGNING_KEY", NEXT),
    ]
}

fn refuses(args: &[&str], env: &[(&str, &str)]) -> String {
    let (code, out) = run_to_exit(bin(), args, env, Duration::from_secs(10));
    assert!(
        code.is_some_and(|c| c != 0),
        "expected a refusal to start, got {code:?}: {out}"
    );
    out
}

#[test]
fn serve_refuses_an_empty_token_or_signing_key_naming_user_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for var in [
        "QSTASH_TOKEN",
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
    ] {
        let env: Vec<_> = user_env()
            .into_iter()
            .map(|(k, v)| (k, if k == var { "" } else { v }))
            .collect();
        let out = refuses(
            &[
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--data-dir",
                data,
            ],
            &env,
        );
        assert!(
            out.contains("\"default\"") && out.contains(var),
            "{var}: {out}"
        );
    }
    let config = dir.path().join("users.toml");
    std::fs::write(
        &config,
        "[[users]]\nid = \"alice\"\ntoken = \"t-alice\"\ncurrent_signing_key = \"\"\nnext_signing_key = \"sig_n\"\n",
    )
    .unwrap();
    let out = refuses(
        &[
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            data,
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.contains("\"alice\"") && out.contains("current_signing_key"),
        "{out}"
    );
}

#[tokio::test]
async fn an_empty_or_bare_query_token_never_authenticates() {
    let s = Server::serve(bin(), &[], &user_env());
    for query in [
        "qstash_token=",
        "qstash_token",
        "qstash_token=&qstash_token=",
    ] {
        let status = s
            .http
            .get(format!("{}/v2/keys?{query}", s.url))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{query}");
    }
    let ok = s
        .http
        .get(format!("{}/v2/keys?qstash_token={TOKEN}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn data_dir_is_private_and_used_by_one_server_at_a_time() {
    if qstash_testkit::backend::postgres() {
        return; // The data dir holds the SQLite store; PostgreSQL nodes share one database.
    }
    let s = server();
    let sink = Sink::start().await;
    publish_ok(&s, &sink.at("/p"), &[], "x").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.data_dir), 0o700);
    for name in ["qstash.db", "qstash.db-wal"] {
        assert_eq!(mode(&s.data_dir.join(name)), 0o600, "{name}");
    }
    let data = s.data_dir.to_str().unwrap().to_string();
    let out = refuses(&["dev", "--port", "0", "--data-dir", &data], &[]);
    assert!(out.contains("already using the data directory"), "{out}");
    // The first server is untouched.
    publish_ok(&s, &sink.at("/p"), &[], "y").await;
    sink.wait_for("/p", 2, WAIT).await;
}
