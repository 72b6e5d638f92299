//! The server under test: the real `qstash` binary on a fresh data
//! directory (through the testkit launcher), and what /proc says about it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use qstash_testkit::{dev_user, Server};

pub struct Qstash {
    server: Option<Server>,
    pub addr: SocketAddr,
    pub bin: PathBuf,
    args: Vec<String>,
    dir: tempfile::TempDir,
    /// How long the last start took until the server printed its address.
    pub started_in: Duration,
}

impl Qstash {
    pub async fn start(bin: &Path, args: &[String]) -> anyhow::Result<Qstash> {
        let dir = tempfile::Builder::new()
            .prefix("qstash-bench-")
            .tempdir()
            .context("temp dir")?;
        let mut q = Qstash {
            server: None,
            addr: "127.0.0.1:0".parse()?,
            bin: bin.to_path_buf(),
            args: args.to_vec(),
            dir,
            started_in: Duration::ZERO,
        };
        q.launch().await?;
        Ok(q)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let (bin, dir, args) = (
            self.bin.clone(),
            self.dir.path().to_path_buf(),
            self.args.clone(),
        );
        let t = Instant::now();
        let server = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Server::start_in(&bin, &dir, &args)
        })
        .await
        .context("starting the qstash binary")?;
        self.started_in = t.elapsed();
        self.addr = server
            .url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("server url {}", server.url))?;
        self.server = Some(server);
        Ok(())
    }

    /// SIGTERM and wait for a clean exit; answers how long it took.
    pub async fn stop(&mut self) -> anyhow::Result<Duration> {
        let server = self.server.take().context("not running")?;
        let t = Instant::now();
        let clean =
            tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(120))).await?;
        anyhow::ensure!(clean, "the server did not stop cleanly on SIGTERM");
        Ok(t.elapsed())
    }

    /// Starts the binary again on the same data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.launch().await
    }

    pub fn pid(&self) -> u32 {
        self.server.as_ref().map(|s| s.pid()).unwrap_or(0)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn token() -> String {
        format!("Bearer {}", dev_user(0).token)
    }
}

/// Resident and peak resident memory of `pid`, in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// User plus system CPU time of `pid` so far, in seconds (0 for self).
pub fn cpu_seconds(pid: u32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    stat_cpu_seconds(&stat)
}

/// utime + stime of one /proc stat line, in seconds.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// CPU seconds of the threads of `pid` whose name starts with `prefix`
/// (Linux cuts thread names to 15 bytes), or None when there is none.
pub fn thread_cpu_seconds(pid: u32, prefix: &str) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut found = None;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        *found.get_or_insert(0.0) += stat_cpu_seconds(&stat);
    }
    found
}

/// Bytes `pid` caused to be sent to the storage layer (`write_bytes` of
/// /proc/<pid>/io: WAL, checkpoints and database pages, not page-cache
/// hits), or 0 where the kernel does not account it.
pub fn written_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Total size of the files under `dir`, in bytes.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// CPU used by the server and by this process over a stretch of time.
pub struct CpuMeter {
    pid: u32,
    server0: f64,
    bench0: f64,
    t0: Instant,
}

/// Cores used on average (1.0 = one core busy the whole time).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CpuUse {
    pub server_cores: f64,
    pub bench_cores: f64,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            server0: cpu_seconds(pid),
            bench0: cpu_seconds(0),
            t0: Instant::now(),
        }
    }

    pub fn read(&self) -> CpuUse {
        let secs = self.t0.elapsed().as_secs_f64().max(1e-9);
        // pid 0: no server in this scenario (cpu_seconds(0) is this process).
        let server = if self.pid == 0 {
            0.0
        } else {
            cpu_seconds(self.pid) - self.server0
        };
        CpuUse {
            server_cores: server / secs,
            bench_cores: (cpu_seconds(0) - self.bench0) / secs,
        }
    }
}
