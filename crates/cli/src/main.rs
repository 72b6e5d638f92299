//! The `qstash` binary: `qstash dev` for a laptop, `qstash serve` for a
//! long-running server.

mod config;
mod data_dir;
mod listener;
mod logs;
mod metrics;
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
    let cli = Cli::parse_from(config::go_style_flags(std::env::args()));
    // Held until the server has stopped, so its last lines are written.
    let _log = logs::init(cli.common().log_format);
    let plan = config::plan(cli)?;
    server::run(plan).await
}
