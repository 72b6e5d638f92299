//! `qstash-bench`: starts the real `qstash` binary on fresh data
//! directories and its own local sink, drives it over HTTP on 127.0.0.1,
//! and reports throughput, latency, delay precision, a large backlog and
//! fan-out, each throughput beside the machine's own ceiling (the load
//! generator straight to the sink).
//!
//! `--smoke` runs every scenario with tiny counts in a few seconds; CI runs
//! it so the harness cannot rot. Full runs want `--release`.

mod body;
mod client;
mod clock;
mod database;
mod load;
mod plan;
mod qstash;
mod report;
mod scenarios;
mod sink;
mod stats;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use plan::Plan;
use report::{Machine, Report, Scenario, Status};
use scenarios::Ctx;

const ALL: &[&str] = &[
    "ceiling",
    "floor",
    "pgbench",
    "publish",
    "e2e",
    "latency_fixed",
    "latency_half",
    "delay",
    "backlog",
    "fanout",
    "flow_control",
    "cluster",
];

#[derive(Debug, Parser)]
#[command(
    name = "qstash-bench",
    about = "Benchmarks the qstash binary over HTTP"
)]
struct Args {
    /// Every scenario with tiny counts, in a few seconds.
    #[arg(long)]
    smoke: bool,
    /// The qstash binary (default: `qstash` next to this program).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/report.json")]
    json: PathBuf,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Extra arguments for `qstash dev`, e.g. `--server-arg=--durability=normal`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Concurrent keep-alive clients.
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds of each throughput measurement.
    #[arg(long)]
    seconds: Option<f64>,
    /// Messages in the backlog scenario.
    #[arg(long)]
    backlog: Option<u64>,
    /// Offered rate of the fixed-rate latency scenario.
    #[arg(long)]
    rate: Option<f64>,
    /// End-to-end and fan-out: deliveries allowed to lag behind publishes.
    #[arg(long)]
    window: Option<u64>,
    /// Run every server on this PostgreSQL database (a fresh schema each,
    /// dropped at the end) and measure the database's ceiling with pgbench.
    #[arg(long)]
    database_url: Option<String>,
    /// Internal: serve as the bare HTTP server of the floor scenario and
    /// print its address.
    #[arg(long, hide = true)]
    serve_floor: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_floor {
        return serve_floor();
    }
    for s in &args.only {
        anyhow::ensure!(
            ALL.contains(&s.as_str()),
            "unknown scenario {s:?}: one of {ALL:?}"
        );
    }
    let mut plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::full()
    };
    if let Some(w) = args.workers {
        plan.workers = w.max(1);
    }
    if let Some(s) = args.seconds {
        plan.measure = std::time::Duration::from_secs_f64(s);
    }
    if let Some(n) = args.backlog {
        plan.backlog_count = n;
    }
    if let Some(w) = args.window {
        plan.e2e_window = w.max(1);
    }
    if let Some(r) = args.rate {
        plan.latency_rate = r;
    }
    let bin = match args.bin.clone() {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("the directory of this program")?
            .join("qstash"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build [--release]) or pass --bin",
        bin.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(run(&args, plan, bin))?;
    report.machine.load_after = report::load_average();
    report.finish();
    println!("{}", report.table());
    for s in &report.scenarios {
        for n in &s.notes {
            println!("- {}: {n}", s.title);
        }
        if let Some(c) = s.cpu {
            println!(
                "- {}: CPU cores used: server {:.2}, bench (load generator + sink) {:.2}",
                s.title, c.server_cores, c.bench_cores
            );
        }
    }
    println!(
        "\nmachine: {} cores, {:.1} GB, {}; load average before {}, after {}",
        report.machine.nproc,
        report.machine.memory_bytes as f64 / 1e9,
        report.machine.cpu_model,
        report.machine.load_before,
        report.machine.load_after
    );
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("JSON report: {}", args.json.display());
    let failed: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.status, Status::Failed(_)))
        .map(|s| s.id)
        .collect();
    anyhow::ensure!(failed.is_empty(), "scenarios failed: {failed:?}");
    Ok(())
}

/// The floor scenario's server: the sink alone, until killed.
fn serve_floor() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sink = sink::Sink::start().await?;
        println!("{}", sink.addr);
        std::future::pending::<()>().await;
        Ok(())
    })
}

async fn run(args: &Args, plan: Plan, bin: PathBuf) -> anyhow::Result<Report> {
    let database = match &args.database_url {
        Some(url) => Some(database::Database::connect(url).await?),
        None => None,
    };
    let ctx = Ctx {
        sink: sink::Sink::start().await?,
        bin: bin.clone(),
        server_args: args.server_args.clone(),
        plan,
        database,
    };
    let wanted = |id: &str| args.only.is_empty() || args.only.iter().any(|o| o == id);
    let mut report = Report {
        mode: if ctx.plan.smoke { "smoke" } else { "full" },
        command: std::env::args().collect::<Vec<_>>().join(" "),
        binary: bin.display().to_string(),
        server_args: args.server_args.clone(),
        machine: Machine::read(),
        ceiling_per_second: None,
        database_ceiling_per_second: None,
        scenarios: Vec::new(),
    };
    let mut max_delivery = None;
    for &id in ALL {
        // The database's ceiling only means something on PostgreSQL.
        let postgres_only = matches!(id, "pgbench" | "cluster");
        if !wanted(id) || (postgres_only && ctx.database.is_none()) {
            continue;
        }
        eprintln!("running {id} ...");
        let result = match id {
            "ceiling" => scenarios::ceiling(&ctx).await,
            "floor" => scenarios::floor(&ctx).await,
            "pgbench" => scenarios::pgbench(&ctx).await,
            "publish" => scenarios::publish(&ctx).await,
            "e2e" => scenarios::end_to_end(&ctx).await,
            "latency_fixed" => scenarios::latency(&ctx, id, ctx.plan.latency_rate).await,
            "latency_half" => match max_delivery {
                Some(max) => scenarios::latency(&ctx, id, max * 0.5).await,
                None => Ok(not_available(id, "needs the end-to-end maximum (run e2e)")),
            },
            "delay" => scenarios::delay_precision(&ctx).await,
            "backlog" => scenarios::backlog(&ctx).await,
            "fanout" => scenarios::fanout(&ctx).await,
            "flow_control" => scenarios::flow_control(&ctx).await,
            "cluster" => scenarios::cluster(&ctx).await,
            _ => unreachable!("checked against ALL"),
        };
        let scenario = result.unwrap_or_else(|e| {
            let mut s = Scenario::new(id, id);
            s.status = Status::Failed(format!("{e:#}"));
            s
        });
        if scenario.id == "e2e" && scenario.status == Status::Ok {
            max_delivery = scenario.get("delivered");
        }
        eprintln!("  {:?}", scenario.status);
        report.scenarios.push(scenario);
    }
    if let Some(db) = &ctx.database {
        db.cleanup().await;
    }
    Ok(report)
}

fn not_available(id: &'static str, why: &str) -> Scenario {
    let mut s = Scenario::new(id, "latency at 50% of max");
    s.status = Status::NotAvailable(why.into());
    s
}
