//! The `qstash` binary: `qstash dev` for a laptop, `qstash serve` for a
//! long-running server.

mod config;
mod data_dir;
mod listener;
mod server;

use anyhow::Result;
use clap::Parser;

use config::Cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // One line, not a backtrace: "qstash: cannot listen on ...: Address in use".
    if let Err(e) = start() {
        eprintln!("qstash: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn start() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse_from(config::go_style_flags(std::env::args()));
    let plan = config::plan(cli)?;
    server::run(plan).await
}
