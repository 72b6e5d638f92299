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
    one_c_arena();
    // One line, not a backtrace: "qstash: cannot listen on ...: Address in use".
    if let Err(e) = start() {
        eprintln!("qstash: {e:#}");
        std::process::exit(1);
    }
}

/// Rust allocates through mimalloc; the C library's `malloc` serves only C
/// code, SQLite above all. glibc gives each thread that calls it an arena
/// of its own, and a thread's arena grows one page at a time, each with
/// an `mprotect`: SQLite's writer filling its 64 MB page cache made 0.44
/// of them per delivered message (issue 17, `scripts/syscalls`). One
/// arena, the main one, grows with `brk` 128 KiB at a time: 0.03 per
/// message. Set before any thread starts: glibc fixes the arena limit the
/// first time a thread needs an arena.
fn one_c_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; no other thread
    // exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
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
