//! Command line and configuration file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// Plan whose limits to simulate; accepted for compatibility.
    #[arg(long, env = "QSTASH_DEV_QUOTA", default_value = "payg")]
    pub quota: String,
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
            Ok(Plan {
                dev: true,
                host: a.common.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
                port: a.port,
                data_dir,
                _temp_dir: temp,
                users: dev_users(),
                common: a.common,
            })
        }
        Command::Serve(a) => {
            let users = serve_users(&a)?;
            Ok(Plan {
                dev: false,
                host: a.common.host.clone().unwrap_or_else(|| "0.0.0.0".into()),
                port: a.port,
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
}

fn serve_users(a: &ServeArgs) -> Result<Vec<User>> {
    let mut users = Vec::new();
    if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ConfigFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let from_file: Vec<User> = file
            .users
            .into_iter()
            .map(|u| User::new(&u.id, &u.token, &u.current_signing_key, &u.next_signing_key))
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
    }
    if users.is_empty() {
        bail!("no users: set QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY, or pass --config");
    }
    qstash_core::users::validate(&users)?;
    Ok(users)
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
