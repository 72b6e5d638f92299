//! Probes (`GET /healthz`, `GET /readyz`) and clear start-up failures.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use qstash_testkit::cluster::Cluster;
use qstash_testkit::run_to_exit;
use serde_json::Value;

async fn probe(s: &Server, path: &str) -> (u16, Value) {
    // No token: orchestrators call these unauthenticated.
    let resp = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `/readyz` until it answers `want`; answers its last body.
async fn wait_ready(s: &Server, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = probe(s, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {status} (wanted {want}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn probes_answer_without_a_token() {
    let s = server();
    let (status, body) = probe(&s, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = probe(&s, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["storage"]["ok"], true, "{body}");
    assert!(body.get("error").is_none(), "{body}");
}

/// A tmpfs of its own, so the data directory can really be filled up (the
/// tests run as root, so taking write permission away would not stop the
/// server's writes). Unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs (needs root/CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir, _temp: temp }
    }

    /// Writes a ballast file until the file system refuses more.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("ballast");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        loop {
            if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                return path;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_unready_when_storage_fails_and_ready_when_it_recovers() {
    if qstash_testkit::backend::postgres() {
        return database_stopped_and_started().await;
    }
    let disk = SmallDisk::mount(16);
    let data = disk.dir.join("data");
    let s = Server::start_in(bin(), &data, &[]);
    wait_ready(&s, 200, WAIT).await;
    let ballast = disk.fill();
    let body = wait_ready(&s, 503, WAIT).await;
    eprintln!("with the disk full: {body}");
    assert_eq!(body["status"], "unready");
    assert_eq!(body["checks"]["storage"]["ok"], false, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("storage: "), "{error}");
    assert!(error.contains("storage is full"), "{error}");
    std::fs::remove_file(ballast).unwrap();
    let body = wait_ready(&s, 200, WAIT).await;
    assert_eq!(body["checks"]["storage"]["ok"], true, "{body}");
    drop(s);
}

/// With PostgreSQL: a private database server, stopped like a crash and
/// started again.
async fn database_stopped_and_started() {
    if let Some(why) = Cluster::unavailable() {
        assert!(std::env::var("CI").is_err(), "CI must run this test: {why}");
        eprintln!("SKIPPED the PostgreSQL readiness test: {why}");
        return;
    }
    let cluster = Cluster::start();
    let s = Server::start(bin(), &["--database-url", &cluster.url()]);
    wait_ready(&s, 200, WAIT).await;
    tokio::task::block_in_place(|| cluster.stop());
    let started = Instant::now();
    let body = wait_ready(&s, 503, WAIT).await;
    // The probe gives up within its second even when the database is gone.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(body["checks"]["storage"]["ok"], false, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("storage: "),
        "{body}"
    );
    tokio::task::block_in_place(|| cluster.start_again());
    wait_ready(&s, 200, Duration::from_secs(30)).await;
}

#[test]
fn a_taken_port_is_one_clear_line_and_a_failed_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out) = run_to_exit(
        bin(),
        &["dev", "--port", &port, "--data-dir", data],
        &[("RUST_LOG", "warn")],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, &format!("cannot listen on 127.0.0.1:{port}"));
}

#[test]
fn an_unusable_data_dir_is_one_clear_line_and_a_failed_exit() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let data = file.join("data");
    let (code, out) = run_to_exit(
        bin(),
        &["dev", "--port", "0", "--data-dir", data.to_str().unwrap()],
        &[("RUST_LOG", "warn")],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, &display(&data));
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn assert_one_line(out: &str, must_contain: &str) {
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "wanted one line: {out}");
    assert!(lines[0].starts_with("qstash: "), "{out}");
    assert!(lines[0].contains(must_contain), "{out}");
    assert!(
        !out.contains("panicked") && !out.contains("backtrace"),
        "{out}"
    );
}
