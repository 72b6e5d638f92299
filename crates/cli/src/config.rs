//! Command line and configuration file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use qstash_api::rate_limit::UserRateLimits;
use qstash_core::users::{dev_users, User};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "qstash",
    version,
    about = "A self-hosted server for the QStash REST API v2"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Local development server with the four documented dev users.
    Dev(DevArgs),
    /// Long-running server; users come from a config file or the environment.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port of the HTTP API.
    #[arg(long, env = "QSTASH_DEV_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Keep data here across restarts (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Plan whose limits to simulate (`free`, `payg`, `pro`); none by
    /// default, so a dev server has no rate limits unless asked.
    #[arg(long, env = "QSTASH_DEV_QUOTA", value_enum)]
    pub quota: Option<Quota>,
    /// Port of the log server of the official dev server (its console's
    /// local mode); here the same API is served on it too.
    #[arg(long, env = "QSTASH_DEV_LOG_PORT")]
    pub log_port: Option<u16>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "QSTASH_PORT", default_value_t = 8080)]
    pub port: u16,
    #[arg(long, env = "QSTASH_DATA_DIR", default_value = "./qstash-data")]
    pub data_dir: PathBuf,
    /// TOML file with `[[users]]` entries (id, token, current_signing_key,
    /// next_signing_key).
    #[arg(long, env = "QSTASH_CONFIG")]
    pub config: Option<PathBuf>,
    /// A user from the environment, alongside any in the config file.
    #[arg(long, env = "QSTASH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, env = "QSTASH_CURRENT_SIGNING_KEY", hide_env_values = true)]
    pub current_signing_key: Option<String>,
    #[arg(long, env = "QSTASH_NEXT_SIGNING_KEY", hide_env_values = true)]
    pub next_signing_key: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Address to listen on.
    #[arg(long, env = "QSTASH_HOST")]
    pub host: Option<String>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "QSTASH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// `full` fsyncs every commit; `normal` survives a crash of the process
    /// but not of the machine.
    #[arg(long, env = "QSTASH_DURABILITY", value_enum, default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,
    /// Deliveries in flight at once.
    #[arg(long, env = "QSTASH_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Most queued and flow-controlled deliveries of one user in flight at
    /// once (`GET /v2/globalParallelism`).
    #[arg(long, env = "QSTASH_GLOBAL_PARALLELISM", default_value_t = 512)]
    pub global_parallelism: u32,
    /// Per-attempt timeout when a message sets none.
    #[arg(long, env = "QSTASH_DEFAULT_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub default_timeout: Duration,
    /// How long finished messages and logs are kept.
    #[arg(long, env = "QSTASH_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// How long messages stay in the dead-letter queue.
    #[arg(long, env = "QSTASH_DLQ_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub dlq_retention: Duration,
    /// How long shutdown waits for deliveries in flight.
    #[arg(long, env = "QSTASH_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// At start, a schedule tick missed while the server was down fires
    /// once if it is at most this old; older ones are skipped (`0s`: never
    /// catch up).
    #[arg(long, env = "QSTASH_SCHEDULE_CATCH_UP", default_value = "1d", value_parser = humantime::parse_duration)]
    pub schedule_catch_up: Duration,
    /// Keep everything in this PostgreSQL database
    /// (`postgres://user:password@host:5432/db`) instead of the embedded
    /// SQLite file in the data directory. Tables go into the first schema
    /// of the connection's search_path (`?options=-csearch_path%3Dqstash`),
    /// created if missing.
    #[arg(long, env = "QSTASH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most connections to PostgreSQL.
    #[arg(long, env = "QSTASH_DATABASE_POOL", default_value_t = 16)]
    pub database_pool: usize,
    /// Group commits to PostgreSQL in flight at once: more overlap commits
    /// of one node; fewer make bigger groups (see docs/ARCHITECTURE.md).
    #[arg(long, env = "QSTASH_DATABASE_WRITERS", default_value_t = 2)]
    pub database_writers: usize,
    /// Serve the web console at `/` (`--console=false` turns it off).
    #[arg(long, env = "QSTASH_CONSOLE", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub console: bool,
    /// This node's name in a cluster (default: one made up at the first
    /// start and kept in the data directory, so a restarted node takes its
    /// own unfinished deliveries back at once).
    #[arg(long, env = "QSTASH_NODE_ID")]
    pub node_id: Option<String>,
    /// In a cluster, how long a node's claims on deliveries outlive its last
    /// heartbeat: after that, another node delivers them.
    #[arg(long, env = "QSTASH_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Destinations allowed even when a deny rule matches them:
    /// comma-separated CIDRs, addresses, host names, `*.domain` or `*`.
    #[arg(long, env = "QSTASH_DESTINATION_ALLOW", default_value = "")]
    pub destination_allow: String,
    /// Destinations refused (besides the defaults of `serve`): same forms.
    #[arg(long, env = "QSTASH_DESTINATION_DENY", default_value = "")]
    pub destination_deny: String,
    /// Largest `Upstash-Timeout` accepted.
    #[arg(long, env = "QSTASH_MAX_TIMEOUT", default_value = "1d", value_parser = humantime::parse_duration)]
    pub max_timeout: Duration,
    /// Largest `Upstash-Delay` (or `Upstash-Not-Before` from now) accepted,
    /// schedules included.
    #[arg(long, env = "QSTASH_MAX_DELAY", default_value = "365d", value_parser = humantime::parse_duration)]
    pub max_delay: Duration,
    /// Most messages one `POST /v2/batch` may create (a URL group item
    /// counts one per endpoint).
    #[arg(long, env = "QSTASH_MAX_BATCH_ITEMS", default_value_t = 1000)]
    pub max_batch_items: usize,
    /// Most endpoints in one URL group.
    #[arg(long, env = "QSTASH_MAX_URL_GROUP_ENDPOINTS", default_value_t = 100)]
    pub max_url_group_endpoints: usize,
    /// Open client connections at once; more wait in the listen backlog.
    #[arg(long, env = "QSTASH_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Time a client has to send a request's headers; also how long a
    /// keep-alive connection may sit idle between requests.
    #[arg(long, env = "QSTASH_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body.
    #[arg(long, env = "QSTASH_BODY_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,
    /// How long a connection may stall (no byte read or written while one
    /// is awaited) before it is closed.
    #[arg(long, env = "QSTASH_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Most deliveries of one user in flight at once (default: all of
    /// --max-in-flight for one user, half of it with several users).
    #[arg(long, env = "QSTASH_MAX_IN_FLIGHT_PER_USER")]
    pub max_in_flight_per_user: Option<usize>,
    /// Management API calls per second per user (429 with Burst-RateLimit-*).
    #[arg(long, env = "QSTASH_BURST_RATE_LIMIT")]
    pub burst_rate_limit: Option<u32>,
    /// Publish/enqueue/batch calls per day per user (429 with RateLimit-*).
    #[arg(long, env = "QSTASH_DAILY_RATE_LIMIT")]
    pub daily_rate_limit: Option<u32>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "QSTASH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "QSTASH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Proxies whose X-Forwarded-For / Forwarded headers name the caller
    /// (comma-separated CIDRs); from anyone else they are ignored.
    #[arg(long, env = "QSTASH_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// OpenAI-compatible API behind the `api/llm` destination.
    #[arg(
        long,
        env = "QSTASH_LLM_BASE_URL",
        default_value = "https://api.openai.com"
    )]
    pub llm_base_url: String,
    /// Database size past which writes are refused with 507 (bytes).
    #[arg(long, env = "QSTASH_MAX_DB_SIZE")]
    pub max_db_size: Option<u64>,
    /// Serve Prometheus metrics at `/metrics`, without auth
    /// (`--metrics=false` turns them off).
    #[arg(long, env = "QSTASH_METRICS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics: bool,
    /// Serve `/metrics` on this port instead of the API's.
    #[arg(long, env = "QSTASH_METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// Label message and delivery metrics with the user id too.
    #[arg(long, env = "QSTASH_METRICS_PER_USER", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_per_user: bool,
    /// Log lines as `text` or `json` (default: text on a terminal, json
    /// otherwise). Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "QSTASH_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    pub fn common(&self) -> &CommonArgs {
        match &self.command {
            Command::Dev(a) => &a.common,
            Command::Serve(a) => &a.common,
        }
    }
}

/// Plans of the official dev server's `-quota`; see README for the limits.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Quota {
    Free,
    Payg,
    Pro,
}

impl Quota {
    /// (API calls per second, messages per day) of the plan.
    pub fn rate_limits(self) -> (Option<u32>, Option<u32>) {
        match self {
            Quota::Free => (Some(100), Some(1_000)),
            Quota::Payg => (Some(100), None),
            Quota::Pro => (Some(1_000), None),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DurabilityArg {
    Full,
    Normal,
}

/// What to start, resolved from the command line.
pub struct Plan {
    pub dev: bool,
    pub host: String,
    pub port: u16,
    /// A second port serving the same API (dev `--log-port`).
    pub log_port: Option<u16>,
    /// Rate limits per user id.
    pub rate_limits: Vec<(String, UserRateLimits)>,
    pub data_dir: PathBuf,
    /// Keeps a dev server's temporary data directory alive until exit.
    pub _temp_dir: Option<tempfile::TempDir>,
    pub users: Vec<User>,
    pub common: CommonArgs,
}

pub fn plan(cli: Cli) -> Result<Plan> {
    match cli.command {
        Command::Dev(a) => {
            let (data_dir, temp) = match a.data_dir {
                Some(d) => (d, None),
                None => {
                    let t = tempfile::tempdir().context("creating a temporary data directory")?;
                    (t.path().to_path_buf(), Some(t))
                }
            };
            let users = dev_users();
            let (burst, daily) = a.quota.map(Quota::rate_limits).unwrap_or((None, None));
            let limits = UserRateLimits {
                burst_per_second: a.common.burst_rate_limit.or(burst),
                daily: a.common.daily_rate_limit.or(daily),
            };
            Ok(Plan {
                dev: true,
                host: a.common.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
                port: a.port,
                log_port: a.log_port,
                rate_limits: users.iter().map(|u| (u.id.clone(), limits)).collect(),
                data_dir,
                _temp_dir: temp,
                users,
                common: a.common,
            })
        }
        Command::Serve(a) => {
            let (users, rate_limits) = serve_users(&a)?;
            Ok(Plan {
                dev: false,
                host: a.common.host.clone().unwrap_or_else(|| "0.0.0.0".into()),
                port: a.port,
                log_port: None,
                rate_limits,
                data_dir: a.data_dir,
                _temp_dir: None,
                users,
                common: a.common,
            })
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Debug, Deserialize)]
struct UserEntry {
    id: String,
    token: String,
    current_signing_key: String,
    next_signing_key: String,
    /// Overrides --burst-rate-limit for this user.
    burst_rate_limit: Option<u32>,
    /// Overrides --daily-rate-limit for this user.
    daily_rate_limit: Option<u32>,
}

type UsersAndLimits = (Vec<User>, Vec<(String, UserRateLimits)>);

fn serve_users(a: &ServeArgs) -> Result<UsersAndLimits> {
    let mut users = Vec::new();
    let flags = UserRateLimits {
        burst_per_second: a.common.burst_rate_limit,
        daily: a.common.daily_rate_limit,
    };
    let mut limits = Vec::new();
    if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ConfigFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let from_file: Vec<User> = file
            .users
            .into_iter()
            .map(|u| {
                limits.push((
                    u.id.clone(),
                    UserRateLimits {
                        burst_per_second: u.burst_rate_limit.or(flags.burst_per_second),
                        daily: u.daily_rate_limit.or(flags.daily),
                    },
                ));
                User::new(&u.id, &u.token, &u.current_signing_key, &u.next_signing_key)
            })
            .collect();
        qstash_core::users::validate(&from_file)
            .with_context(|| format!("in {}", path.display()))?;
        users.extend(from_file);
    }
    if let Some(token) = &a.token {
        let (Some(current), Some(next)) = (&a.current_signing_key, &a.next_signing_key) else {
            bail!("QSTASH_TOKEN needs QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY");
        };
        for (var, value) in [
            ("QSTASH_TOKEN", token),
            ("QSTASH_CURRENT_SIGNING_KEY", current),
            ("QSTASH_NEXT_SIGNING_KEY", next),
        ] {
            if value.trim().is_empty() {
                bail!("user \"default\" (from the environment): {var} is empty");
            }
        }
        users.push(User::new("default", token, current, next));
        limits.push(("default".to_string(), flags));
    }
    if users.is_empty() {
        bail!("no users: set QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or pass --config");
    }
    qstash_core::users::validate(&users)?;
    Ok((users, limits))
}

/// The official dev server takes Go-style flags (`-port=8081`); accept them
/// by rewriting single-dash long flags to clap's double-dash form.
pub fn go_style_flags(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| {
        let is_go_long = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
        if is_go_long {
            format!("-{a}")
        } else {
            a
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_flags_become_long_flags() {
        let args = ["qstash", "dev", "-port=8081", "-quota", "pro", "-h"].map(String::from);
        assert_eq!(
            go_style_flags(args.into_iter()),
            vec!["qstash", "dev", "--port=8081", "--quota", "pro", "-h"]
        );
    }
}
