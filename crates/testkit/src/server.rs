//! The `qstash` binary as a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A dev user with the documented token and keys.
#[derive(Debug, Clone)]
pub struct DevUser {
    pub token: &'static str,
    pub current_key: &'static str,
    pub next_key: &'static str,
}

pub fn dev_user(n: usize) -> DevUser {
    const USERS: [DevUser; 4] = [
        DevUser {
            token: "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=",
            current_key: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
            next_key: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
        },
        DevUser {
            token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
            current_key: "sig_7GVPjvuwsfqF65iC8fSrs1dfYruM",
            next_key: "sig_5NoELc3EFnZn4DVS5bDs2Nk4b7Ua",
        },
        DevUser {
            token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjIiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
            current_key: "sig_6jWGaWRxHsw4vMSPJprXadyvrybF",
            next_key: "sig_7qHbvhmahe5GwfePDiS5Lg3pi6Qx",
        },
        DevUser {
            token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjMiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
            current_key: "sig_5T8FcSsynBjn9mMLBsXhpacRovJf",
            next_key: "sig_7GFR4YaDshFcqsxWRZpRB161jguD",
        },
    ];
    USERS[n].clone()
}

/// A running `qstash dev` on a random port. Killed (SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
    /// What the server printed on stdout after its banner (its log lines;
    /// the first [`KEPT_LINES`]).
    output: Arc<Mutex<Vec<String>>>,
}

/// Most output lines a [`Server`] keeps.
const KEPT_LINES: usize = 10_000;

impl Server {
    /// `qstash dev` on a fresh data directory.
    pub fn start(bin: &Path, extra_args: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut s = Self::start_in(bin, temp.path(), extra_args);
        s._temp = Some(temp);
        s
    }

    /// `qstash dev` on `data_dir`, which outlives the server.
    pub fn start_in(bin: &Path, data_dir: &Path, extra_args: &[&str]) -> Server {
        Self::launch(bin, "dev", data_dir, extra_args, &[])
    }

    /// `qstash serve` on 127.0.0.1 and a fresh data directory, with
    /// `env` (users come from `QSTASH_TOKEN` and friends or `--config`).
    pub fn serve(bin: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["--host", "127.0.0.1"];
        args.extend_from_slice(extra_args);
        let mut s = Self::launch(bin, "serve", temp.path(), &args, env);
        s._temp = Some(temp);
        s
    }

    /// `qstash <command> --port 0 --data-dir <data_dir> <extra_args>`,
    /// once it prints the address it listens on.
    pub fn launch(
        bin: &Path,
        subcommand: &str,
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = Command::new(bin);
        command
            .args([subcommand, "--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra_args);
        let own_database = extra_args.contains(&"--database-url");
        if let Some(url) = crate::backend::database_url_for(data_dir).filter(|_| !own_database) {
            // Few connections each: many test servers share one database.
            command.args(["--database-url", &url, "--database-pool", "6"]);
        }
        let mut child = command
            .env(
                "RUST_LOG",
                std::env::var("QSTASH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the qstash binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server exited before it was running")
                .expect("read stdout");
            if let Some(rest) = line.split("running at ").nth(1) {
                break rest.split_whitespace().next().expect("url").to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        let output = Arc::new(Mutex::new(Vec::new()));
        let kept = output.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut kept = kept.lock().unwrap();
                if kept.len() < KEPT_LINES {
                    kept.push(line);
                }
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Server {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            http,
            output,
        }
    }

    /// The lines the server printed so far after its banner line.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns its success.
    pub fn terminate(mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A request to `path` (which starts with `/v2/...`) as `user`.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &DevUser,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(user.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path, &dev_user(0))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path, &dev_user(0))
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path, &dev_user(0))
    }
}

/// Runs the binary to its exit (at most `within`), for commands that must
/// refuse to start; answers its exit code and what it printed.
pub fn run_to_exit(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> (Option<i32>, String) {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the qstash binary");
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
