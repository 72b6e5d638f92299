//! The scenarios of the issue, each on a fresh server and data directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use crate::body::{self, Stamp};
use crate::client::{Conn, Req};
use crate::clock::now_us;
use crate::database::Database;
use crate::load::{Gate, Load, LoadOut, MakeReq};
use crate::plan::Plan;
use crate::qstash::{self, CpuMeter, Qstash};
use crate::report::{Figure, Scenario, Status, Target, Unit};
use crate::sink::{Sink, KEYED_PREFIX};
use crate::stats::{per_second, percentiles_us, Percentiles};

pub struct Ctx {
    pub sink: Sink,
    pub bin: PathBuf,
    pub server_args: Vec<String>,
    pub plan: Plan,
    /// Set for runs on PostgreSQL (`--database-url`).
    pub database: Option<Database>,
}

impl Ctx {
    /// A fresh server: a new data directory, and on PostgreSQL a new schema.
    async fn server(&self) -> anyhow::Result<Qstash> {
        let mut args = self.server_args.clone();
        if let Some(db) = &self.database {
            args.extend(["--database-url".to_string(), db.fresh_url()]);
        }
        Qstash::start(&self.bin, &args).await
    }

    /// A throughput target: a share of the HTTP ceiling on SQLite, a
    /// multiple of pgbench's one-row rate on PostgreSQL.
    fn throughput_target(&self, of_http: f64, of_pgbench: f64) -> Target {
        match self.database {
            Some(_) => Target::MinDatabaseRatio(of_pgbench),
            None => Target::MinRatio(of_http),
        }
    }

    /// A plain body of the configured size (throughput runs need no stamp).
    fn plain_body(&self) -> Bytes {
        body::encode(
            Stamp {
                seq: 0,
                reference_us: 0,
                record: false,
            },
            self.plan.body_bytes,
        )
    }

    /// `POST /v2/publish/<sink path>`.
    fn publish(&self, sink_path: &str, body: Bytes) -> Req {
        Req::post(format!("/v2/publish/{}", self.sink.url(sink_path)), body)
            .header("authorization", &Qstash::token())
            .header("content-type", "application/octet-stream")
    }
}

/// Throughput of a running load over the measured window: requests
/// answered and sink arrivals per second, and what the server spent
/// meanwhile.
struct Window {
    acked: f64,
    arrived: f64,
    cpu: qstash::CpuUse,
    cost: Cost,
}

/// What the server spent over a window, in totals: CPU seconds of the
/// process and of its storage writer thread (SQLite; None on PostgreSQL,
/// whose writers are tasks), and bytes written: to the disk by the process
/// on SQLite (WAL, checkpoints), to the write-ahead log on PostgreSQL.
struct Cost {
    server_s: f64,
    writer_s: Option<f64>,
    written: u64,
    acked: u64,
    arrived: u64,
}

/// The storage writer thread's name as /proc shows it (cut to 15 bytes).
const WRITER_THREAD: &str = "qstash-store-wr";

async fn written_so_far(ctx: &Ctx, pid: u32) -> u64 {
    match &ctx.database {
        Some(db) => db.wal_position().await.unwrap_or(0),
        None => qstash::written_bytes(pid),
    }
}

async fn measure(ctx: &Ctx, load: &Load, pid: u32) -> Window {
    tokio::time::sleep(ctx.plan.warmup).await;
    let (a0, s0, t0) = (load.ok(), ctx.sink.arrivals(), Instant::now());
    let cpu = CpuMeter::start(pid);
    let (server0, writer0) = (
        qstash::cpu_seconds(pid),
        qstash::thread_cpu_seconds(pid, WRITER_THREAD),
    );
    let written0 = written_so_far(ctx, pid).await;
    tokio::time::sleep(ctx.plan.measure).await;
    let secs = t0.elapsed().as_secs_f64();
    let (acked, arrived) = (load.ok() - a0, ctx.sink.arrivals() - s0);
    let cost = Cost {
        server_s: qstash::cpu_seconds(pid) - server0,
        writer_s: qstash::thread_cpu_seconds(pid, WRITER_THREAD)
            .zip(writer0)
            .map(|(now, then)| now - then),
        written: written_so_far(ctx, pid).await.saturating_sub(written0),
        acked,
        arrived,
    };
    Window {
        acked: per_second(acked, secs),
        arrived: per_second(arrived, secs),
        cpu: cpu.read(),
        cost,
    }
}

/// The cost figures of a window, per message handled (`messages` of it):
/// server CPU (with the ceiling as target), writer-thread CPU and
/// bytes written.
fn cost_figures(s: &mut Scenario, cost: &Cost, messages: u64, cpu_target: Option<f64>) {
    if messages == 0 {
        return;
    }
    let per = |total: f64| total / messages as f64;
    let mut cpu = Figure::new(
        "server CPU per message",
        per(cost.server_s) * 1e6,
        Unit::Micros,
    );
    if let Some(t) = cpu_target {
        cpu = cpu.target(Target::Max(t));
    }
    s.figure(cpu);
    if let Some(w) = cost.writer_s {
        s.figure(Figure::new(
            "writer CPU per message",
            per(w) * 1e6,
            Unit::Micros,
        ));
    }
    s.figure(Figure::new(
        "written per message",
        per(cost.written as f64),
        Unit::ByteCount,
    ));
}

/// What the server keeps on disk per message once `messages` went through
/// it: the data directory on SQLite, the schema's tables on PostgreSQL.
async fn stored_figure(ctx: &Ctx, s: &mut Scenario, server: &Qstash, messages: u64) {
    let bytes = match &ctx.database {
        Some(db) => db.last_schema_bytes().await.unwrap_or(0),
        None => qstash::dir_size(server.data_dir()),
    };
    if messages > 0 {
        s.figure(Figure::new(
            "stored per message",
            bytes as f64 / messages as f64,
            Unit::ByteCount,
        ));
    }
}

fn latency_figures(s: &mut Scenario, prefix: &str, p: &Percentiles, p99_target: Option<f64>) {
    s.figure(Figure::new(
        &format!("{prefix} p50"),
        p.p50_ms,
        Unit::Millis,
    ));
    let mut p99 = Figure::new(&format!("{prefix} p99"), p.p99_ms, Unit::Millis);
    if let Some(t) = p99_target {
        p99 = p99.target(Target::Max(t));
    }
    s.figure(p99);
    s.figure(Figure::new(
        &format!("{prefix} p99.9"),
        p.p999_ms,
        Unit::Millis,
    ));
}

/// Fails the scenario when requests failed, naming the first error.
fn check_load(out: &LoadOut, what: &str) -> anyhow::Result<()> {
    if out.failed > 0 {
        anyhow::bail!(
            "{} of {} {what} requests failed, first: {}",
            out.failed,
            out.ok + out.failed,
            out.first_error.as_deref().unwrap_or("?")
        );
    }
    anyhow::ensure!(out.ok > 0, "no {what} request succeeded");
    Ok(())
}

/// Waits until every one of `expected` deliveries since `base` arrived.
async fn drain(ctx: &Ctx, base: u64, expected: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    if !ctx
        .sink
        .wait_arrivals(base + expected, ctx.plan.drain)
        .await
    {
        anyhow::bail!(
            "only {} of {expected} deliveries arrived within {:?}",
            ctx.sink.arrivals() - base,
            ctx.plan.drain
        );
    }
    Ok(t.elapsed())
}

/// 7. The machine's ceiling: the load generator straight to the sink.
pub async fn ceiling(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("ceiling", "direct to sink (ceiling)");
    ctx.sink.reset(Duration::ZERO);
    let body = ctx.plain_body();
    let make: MakeReq = Arc::new(move |_, _| Req::post("/direct", body.clone()));
    let load = Load::closed(ctx.sink.addr, ctx.plan.workers, None, make, None);
    let w = measure(ctx, &load, 0).await;
    let out = load.stop().await;
    check_load(&out, "direct")?;
    s.figure(Figure::new("requests", w.acked, Unit::PerSecond));
    if let Some(p) = percentiles_us(out.ack_us) {
        latency_figures(&mut s, "round trip", &p, None);
    }
    s.cpu = Some(w.cpu);
    s.note(format!(
        "{} keep-alive clients, {} B bodies, sink answers 200 at once",
        ctx.plan.workers, ctx.plan.body_bytes
    ));
    Ok(s)
}

/// 7b. The floor of the HTTP part: a bare hyper server in its own process
/// (this program with `--serve-floor`: the sink, on a multi-threaded
/// runtime like the server's) answering the same 1 KB POSTs with no work.
/// Its CPU per request is what no QStash server can go below.
pub async fn floor(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("floor", "bare hyper server (HTTP floor)");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--serve-floor")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("floor server stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr: std::net::SocketAddr = lines
        .next_line()
        .await?
        .context("the floor server printed no address")?
        .parse()?;
    let pid = child.id().context("floor server pid")?;
    let body = ctx.plain_body();
    let make: MakeReq = Arc::new(move |_, _| Req::post("/floor", body.clone()));
    let load = Load::closed(addr, ctx.plan.workers, None, make, None);
    let w = measure(ctx, &load, pid).await;
    check_load(&load.stop().await, "floor")?;
    child.kill().await?;
    s.figure(Figure::new("requests", w.acked, Unit::PerSecond));
    if w.cost.acked > 0 {
        s.figure(Figure::new(
            "server CPU per request",
            w.cost.server_s / w.cost.acked as f64 * 1e6,
            Unit::Micros,
        ));
    }
    s.cpu = Some(w.cpu);
    s.note("the HTTP part of a publish cannot cost less than this");
    Ok(s)
}

/// The database's own ceiling, for runs on PostgreSQL: pgbench inserting
/// a 1 KB row into a one-index table, one row per transaction and 100 rows
/// per transaction, with as many clients as the load generator.
pub async fn pgbench(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("pgbench", "pgbench INSERT 1 KB (database ceiling)");
    let Some(db) = &ctx.database else {
        s.status = Status::NotAvailable("runs on PostgreSQL only (--database-url)".into());
        return Ok(s);
    };
    let secs = ctx.plan.measure.as_secs().max(1);
    let one = db.pgbench(1, ctx.plan.workers, secs).await?;
    let hundred = db.pgbench(100, ctx.plan.workers, secs).await?;
    s.figure(Figure::new("one row per transaction", one, Unit::PerSecond));
    s.figure(Figure::new(
        "rows, 100 per transaction",
        hundred * 100.0,
        Unit::PerSecond,
    ));
    s.note(format!(
        "{} clients, {secs} s each; the publish and end-to-end targets are multiples of the one-row rate",
        ctx.plan.workers
    ));
    Ok(s)
}

/// A cluster: the same publish and end-to-end loads spread over one, two
/// and three nodes of one database (runs on PostgreSQL only). On one
/// machine more nodes add no CPU, so the figure that matters is what the
/// extra nodes cost: three nodes' throughput as a share of one node's.
pub async fn cluster(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("cluster", "cluster on one database");
    let Some(db) = &ctx.database else {
        s.status = Status::NotAvailable("runs on PostgreSQL only (--database-url)".into());
        return Ok(s);
    };
    let mut publish = Vec::new();
    let mut delivered = Vec::new();
    for nodes in 1..=3usize {
        let url = db.fresh_url();
        let mut servers = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            let mut args = ctx.server_args.clone();
            args.extend(["--database-url".to_string(), url.clone()]);
            servers.push(Qstash::start(&ctx.bin, &args).await?);
        }
        let addrs: Vec<_> = servers.iter().map(|q| q.addr).collect();
        let pids: Vec<u32> = servers.iter().map(Qstash::pid).collect();
        ctx.sink.reset(Duration::ZERO);
        let req = ctx
            .publish("/cp", ctx.plain_body())
            .header("upstash-delay", "1h");
        let make: MakeReq = Arc::new(move |_, _| req.clone());
        let load = Load::closed_over(&addrs, ctx.plan.workers, None, make, None);
        let w = measure(ctx, &load, pids[0]).await;
        check_load(&load.stop().await, "publish")?;
        publish.push(w.acked);

        let base = ctx.sink.arrivals();
        let sent = Arc::new(AtomicU64::new(0));
        let req = ctx.publish("/ce", ctx.plain_body());
        let counter = sent.clone();
        let make: MakeReq = Arc::new(move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            req.clone()
        });
        let (sink, window, counter) = (ctx.sink.clone(), ctx.plan.e2e_window, sent.clone());
        let gate: Gate =
            Arc::new(move || counter.load(Ordering::Relaxed) < sink.arrivals() - base + window);
        let load = Load::closed_over(&addrs, ctx.plan.workers, None, make, Some(gate));
        let w = measure(ctx, &load, pids[0]).await;
        let out = load.stop().await;
        check_load(&out, "publish")?;
        drain(ctx, base, out.ok).await?;
        delivered.push(w.arrived);
        s.figure(Figure::new(
            &format!("publish, {nodes} node{}", if nodes > 1 { "s" } else { "" }),
            publish[nodes - 1],
            Unit::PerSecond,
        ));
        s.figure(Figure::new(
            &format!(
                "end-to-end, {nodes} node{}",
                if nodes > 1 { "s" } else { "" }
            ),
            w.arrived,
            Unit::PerSecond,
        ));
        for mut q in servers {
            q.stop().await?;
        }
    }
    s.figure(
        Figure::new(
            "publish, 3 nodes ÷ 1 node",
            publish[2] / publish[0],
            Unit::Ratio,
        )
        .target(Target::Min(0.8)),
    );
    s.figure(
        Figure::new(
            "end-to-end, 3 nodes ÷ 1 node",
            delivered[2] / delivered[0],
            Unit::Ratio,
        )
        .target(Target::Min(0.8)),
    );
    s.note(format!(
        "{} keep-alive clients spread evenly over the nodes (no load balancer); every node on the same machine and database",
        ctx.plan.workers
    ));
    Ok(s)
}

/// Scenario 1, publish throughput, durable: messages are delayed by an hour
/// so no delivery competes for the CPU (end-to-end measures both at once).
pub async fn publish(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("publish", "publish (durable, 1 KB)");
    ctx.sink.reset(Duration::ZERO);
    let server = ctx.server().await?;
    let req = ctx
        .publish("/p", ctx.plain_body())
        .header("upstash-delay", "1h");
    let make: MakeReq = Arc::new(move |_, _| req.clone());
    let load = Load::closed(server.addr, ctx.plan.workers, None, make, None);
    let w = measure(ctx, &load, server.pid()).await;
    let out = load.stop().await;
    check_load(&out, "publish")?;
    let target = ctx.throughput_target(0.5, 1.5);
    s.figure(Figure::new("acknowledged", w.acked, Unit::PerSecond).target(target));
    if let Some(p) = percentiles_us(out.ack_us) {
        latency_figures(&mut s, "answer", &p, None);
    }
    let cpu_target = ctx.database.is_none().then_some(30.0);
    cost_figures(&mut s, &w.cost, w.cost.acked, cpu_target);
    stored_figure(ctx, &mut s, &server, out.ok).await;
    s.cpu = Some(w.cpu);
    s.note(format!(
        "{} keep-alive clients; Upstash-Delay: 1h so nothing is delivered meanwhile",
        ctx.plan.workers
    ));
    Ok(s)
}

/// Scenario 2, end-to-end: publish and deliver at once. Publishers pause
/// while more than a window of messages is published but not delivered,
/// so the figure is the rate the whole system sustains, not a backlog.
pub async fn end_to_end(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("e2e", "end-to-end delivery");
    ctx.sink.reset(Duration::ZERO);
    let server = ctx.server().await?;
    let base = ctx.sink.arrivals();
    let sent = Arc::new(AtomicU64::new(0));
    let req = ctx.publish("/e", ctx.plain_body());
    let counter = sent.clone();
    let make: MakeReq = Arc::new(move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        req.clone()
    });
    let (sink, window, counter) = (ctx.sink.clone(), ctx.plan.e2e_window, sent.clone());
    let gate: Gate =
        Arc::new(move || counter.load(Ordering::Relaxed) < sink.arrivals() - base + window);
    let load = Load::closed(server.addr, ctx.plan.workers, None, make, Some(gate));
    let w = measure(ctx, &load, server.pid()).await;
    let out = load.stop().await;
    check_load(&out, "publish")?;
    let drained = drain(ctx, base, out.ok).await?;
    let target = ctx.throughput_target(0.3, 0.6);
    s.figure(Figure::new("delivered", w.arrived, Unit::PerSecond).target(target));
    s.figure(Figure::new("published", w.acked, Unit::PerSecond));
    let cpu_target = ctx.database.is_none().then_some(60.0);
    cost_figures(&mut s, &w.cost, w.cost.arrived, cpu_target);
    stored_figure(ctx, &mut s, &server, out.ok).await;
    s.cpu = Some(w.cpu);
    s.note(format!(
        "at most {window} messages published but not yet delivered; all {} delivered, the last {:.2} s after publishing stopped",
        out.ok,
        drained.as_secs_f64()
    ));
    Ok(s)
}

/// 3. Publish-to-arrival latency at a fixed offered rate.
pub async fn latency(ctx: &Ctx, id: &'static str, rate: f64) -> anyhow::Result<Scenario> {
    let title = if id == "latency_fixed" {
        "latency at fixed rate"
    } else {
        "latency at 50% of max"
    };
    let mut s = Scenario::new(id, title);
    ctx.sink.reset(Duration::ZERO);
    let server = ctx.server().await?;
    let base = ctx.sink.arrivals();
    let warm = ctx.plan.latency_warmup_count(rate);
    let size = ctx.plan.body_bytes;
    let template = ctx.publish("/l", Bytes::new());
    let make: MakeReq = Arc::new(move |seq, intended| {
        let mut req = template.clone();
        req.body = body::encode(
            Stamp {
                seq,
                reference_us: intended,
                record: seq >= warm,
            },
            size,
        );
        req
    });
    let cpu = CpuMeter::start(server.pid());
    let load = Load::fixed_rate(
        server.addr,
        ctx.plan.workers,
        rate,
        ctx.plan.latency_time,
        make,
    );
    let out = load.join().await;
    check_load(&out, "publish")?;
    drain(ctx, base, out.ok).await?;
    s.cpu = Some(cpu.read());
    let p = percentiles_us(ctx.sink.take_samples()).ok_or_else(|| anyhow::anyhow!("no samples"))?;
    s.figure(Figure::new("offered", rate, Unit::PerSecond));
    let p99 = if ctx.database.is_some() { 25.0 } else { 10.0 };
    let target = (id == "latency_fixed" && rate >= 1000.0).then_some(p99);
    latency_figures(&mut s, "publish→arrival", &p, target);
    if let Some(a) = percentiles_us(out.ack_us) {
        s.figure(Figure::new("publish answer p99", a.p99_ms, Unit::Millis));
    }
    s.note(format!(
        "{} samples after a warm-up of {warm}; latency from the intended send time, so generator stalls count",
        p.count
    ));
    Ok(s)
}

/// 4. Delay precision: messages due at spread-out times, published ahead.
pub async fn delay_precision(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("delay", "delay precision");
    ctx.sink.reset(Duration::ZERO);
    let server = ctx.server().await?;
    let base = ctx.sink.arrivals();
    let (n, span, size) = (
        ctx.plan.delay_count,
        ctx.plan.delay_span.as_micros() as i64,
        ctx.plan.body_bytes,
    );
    let first_due = now_us() + ctx.plan.delay_lead.as_micros() as i64;
    let late_publish = Arc::new(AtomicU64::new(0));
    let late = late_publish.clone();
    let template = ctx.publish("/d", Bytes::new());
    let make: MakeReq = Arc::new(move |seq, now| {
        let due = first_due + span * seq as i64 / n as i64;
        // Whole milliseconds, as Upstash-Delay takes them; the reference
        // is the due time the server computes from its receipt of this
        // request, which is at or just after `now`.
        let delay_ms = ((due - now) / 1000).max(1);
        if due <= now {
            late.fetch_add(1, Ordering::Relaxed);
        }
        let mut req = template
            .clone()
            .header("upstash-delay", &format!("{delay_ms}ms"));
        req.body = body::encode(
            Stamp {
                seq,
                reference_us: now + delay_ms * 1000,
                record: true,
            },
            size,
        );
        req
    });
    let load = Load::closed(server.addr, ctx.plan.workers, Some(n), make, None);
    let out = load.join().await;
    check_load(&out, "publish")?;
    let published_in = out.elapsed;
    let cpu = CpuMeter::start(server.pid());
    drain(ctx, base, out.ok).await?;
    s.cpu = Some(cpu.read());
    let p = percentiles_us(ctx.sink.take_samples()).ok_or_else(|| anyhow::anyhow!("no samples"))?;
    s.figure(Figure::new("messages", n as f64, Unit::Count));
    s.figure(Figure::new("arrival − due p50", p.p50_ms, Unit::Millis));
    s.figure(Figure::new("arrival − due p99", p.p99_ms, Unit::Millis).target(Target::Max(20.0)));
    s.figure(Figure::new("arrival − due max", p.max_ms, Unit::Millis));
    let ack = percentiles_us(out.ack_us).map(|a| a.p99_ms).unwrap_or(0.0);
    s.note(format!(
        "due times spread over {:.1} s, starting {:.1} s after publishing began; all {n} published in {:.2} s ({} after their due time); the due time is taken at send, so each figure may overstate lateness by up to the publish answer time (p99 {ack:.2} ms)",
        ctx.plan.delay_span.as_secs_f64(),
        ctx.plan.delay_lead.as_secs_f64(),
        published_in.as_secs_f64(),
        late_publish.load(Ordering::Relaxed),
    ));
    Ok(s)
}

/// 5. A backlog of delayed messages: load it, measure the server, restart.
pub async fn backlog(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("backlog", "backlog, delayed 1 h");
    ctx.sink.reset(Duration::ZERO);
    let mut server = ctx.server().await?;
    let (n, per) = (ctx.plan.backlog_count, ctx.plan.backlog_batch.max(1));
    let destination = ctx.sink.url("/b");
    let body = String::from_utf8(ctx.plain_body().to_vec())?;
    let item = json!({
        "destination": destination,
        "headers": {"Upstash-Delay": "1h", "Content-Type": "application/octet-stream"},
        "body": body,
    });
    let batch = |count: u64| {
        let items: Vec<Value> = (0..count).map(|_| item.clone()).collect();
        Bytes::from(serde_json::to_vec(&items).expect("json"))
    };
    let full = Req::post("/v2/batch", batch(per))
        .header("authorization", &Qstash::token())
        .header("content-type", "application/json");
    let requests = n / per;
    let make: MakeReq = Arc::new(move |_, _| full.clone());
    let cpu = CpuMeter::start(server.pid());
    let load = Load::closed(server.addr, ctx.plan.workers, Some(requests), make, None);
    let out = load.join().await;
    check_load(&out, "batch")?;
    let mut published = out.ok * per;
    let rest = n - requests * per;
    if rest > 0 {
        let mut conn = Conn::new(server.addr);
        let req = Req::post("/v2/batch", batch(rest))
            .header("authorization", &Qstash::token())
            .header("content-type", "application/json");
        let (status, _) = conn.send(&req).await?;
        anyhow::ensure!(status == 201, "batch answered {status}");
        published += rest;
    }
    let load_secs = out.elapsed.as_secs_f64();
    s.cpu = Some(cpu.read());
    let id = out
        .last_body
        .as_ref()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|v| v[0]["messageId"].as_str().map(String::from))
        .ok_or_else(|| anyhow::anyhow!("no message id in the batch answer"))?;
    let (rss, peak) = qstash::memory(server.pid()).unwrap_or((0, 0));
    let size = match &ctx.database {
        Some(db) => db.last_schema_bytes().await?,
        None => qstash::dir_size(server.data_dir()),
    };
    s.figure(Figure::new("messages", published as f64, Unit::Count));
    s.figure(Figure::new("publish time", load_secs, Unit::Seconds));
    s.figure(Figure::new(
        "publish rate",
        per_second(published, load_secs),
        Unit::PerSecond,
    ));
    s.figure(Figure::new("server RSS", rss as f64, Unit::Bytes));
    s.figure(Figure::new("server peak RSS", peak as f64, Unit::Bytes).target(Target::Max(300e6)));
    let where_ = if ctx.database.is_some() {
        "database tables"
    } else {
        "data dir"
    };
    s.figure(Figure::new(where_, size as f64, Unit::Bytes));

    let stopped_in = server.stop().await?;
    let t = Instant::now();
    server.restart().await?;
    let listening = server.started_in;
    let mut conn = Conn::new(server.addr);
    let get = Req::get(format!("/v2/messages/{id}")).header("authorization", &Qstash::token());
    loop {
        if let Ok((200, _)) = conn.send(&get).await {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "the restarted server never answered GET /v2/messages/{id}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answering = t.elapsed();
    let base = ctx.sink.arrivals();
    let (status, body) = conn.send(&ctx.publish("/ready", ctx.plain_body())).await?;
    anyhow::ensure!(
        status == 201,
        "publish after restart answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    drain(ctx, base, 1).await?;
    let delivering = t.elapsed();
    let (rss_after, _) = qstash::memory(server.pid()).unwrap_or((0, 0));
    s.figure(Figure::new(
        "restart: listening",
        listening.as_secs_f64(),
        Unit::Seconds,
    ));
    s.figure(
        Figure::new("restart: answers", answering.as_secs_f64(), Unit::Seconds)
            .target(Target::Max(3.0)),
    );
    s.figure(Figure::new(
        "restart: delivers",
        delivering.as_secs_f64(),
        Unit::Seconds,
    ));
    s.figure(Figure::new(
        "RSS after restart",
        rss_after as f64,
        Unit::Bytes,
    ));
    s.note(format!(
        "loaded with /v2/batch, {per} messages per request, {} clients; SIGTERM took {:.2} s; restart times count from spawning the binary: listening = address printed, answers = GET of a backlog message is 200, delivers = a message published then arrived",
        ctx.plan.workers,
        stopped_in.as_secs_f64()
    ));
    Ok(s)
}

/// Creates a URL group of `n` sink endpoints; None when the server has no
/// URL groups (yet), with its answer.
async fn url_group(
    ctx: &Ctx,
    server: &Qstash,
    name: &str,
    n: usize,
) -> anyhow::Result<Option<String>> {
    let endpoints: Vec<Value> = (0..n)
        .map(|i| json!({"url": ctx.sink.url(&format!("/g/{i}")), "name": format!("e{i}")}))
        .collect();
    let req = Req::post(
        format!("/v2/topics/{name}/endpoints"),
        Bytes::from(serde_json::to_vec(&json!({ "endpoints": endpoints }))?),
    )
    .header("authorization", &Qstash::token())
    .header("content-type", "application/json");
    let (status, body) = Conn::new(server.addr).send(&req).await?;
    if (200..300).contains(&status) {
        return Ok(None);
    }
    Ok(Some(format!(
        "POST /v2/topics/{name}/endpoints answered {status} {}",
        String::from_utf8_lossy(&body).trim()
    )))
}

/// 6a. Fan-out: each publish to a URL group of 10 endpoints.
pub async fn fanout(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("fanout", "fan-out, URL group");
    ctx.sink.reset(Duration::ZERO);
    let server = ctx.server().await?;
    let n = ctx.plan.fanout_endpoints;
    if let Some(why) = url_group(ctx, &server, "bench", n).await? {
        s.status = Status::NotAvailable(why);
        return Ok(s);
    }
    let base = ctx.sink.arrivals();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let req = Req::post("/v2/publish/bench", ctx.plain_body())
        .header("authorization", &Qstash::token())
        .header("content-type", "application/octet-stream");
    let make: MakeReq = Arc::new(move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        req.clone()
    });
    let (sink, window, counter) = (ctx.sink.clone(), ctx.plan.e2e_window, sent.clone());
    let gate: Gate = Arc::new(move || {
        counter.load(Ordering::Relaxed) * (n as u64) < sink.arrivals() - base + window
    });
    let load = Load::closed(server.addr, ctx.plan.workers, None, make, Some(gate));
    let w = measure(ctx, &load, server.pid()).await;
    let out = load.stop().await;
    check_load(&out, "publish")?;
    drain(ctx, base, out.ok * n as u64).await?;
    s.figure(Figure::new("delivered", w.arrived, Unit::PerSecond));
    s.figure(Figure::new("published", w.acked, Unit::PerSecond));
    // Per delivery: a fan-out's unit of work is one endpoint's message.
    cost_figures(&mut s, &w.cost, w.cost.arrived, None);
    stored_figure(ctx, &mut s, &server, out.ok * n as u64).await;
    s.cpu = Some(w.cpu);
    s.note(format!("{n} endpoints per publish; every delivery arrived"));
    Ok(s)
}

/// 6b. Flow control: many keys, parallelism 1 each. The sink holds each
/// delivery a while and records how many of one key overlap, so a server
/// that stores but does not enforce parallelism is reported as such.
pub async fn flow_control(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut s = Scenario::new("flow_control", "flow control, parallelism 1");
    ctx.sink.reset(ctx.plan.fc_sink_delay);
    ctx.sink.track_keys();
    let server = ctx.server().await?;
    let base = ctx.sink.arrivals();
    let (keys, per_key) = (ctx.plan.fc_keys, ctx.plan.fc_per_key);
    let total = keys * per_key;
    let plain = ctx.plain_body();
    let sink = ctx.sink.clone();
    let token = Qstash::token();
    let make: MakeReq = Arc::new(move |seq, _| {
        // Each key's messages back to back: the order that needs the
        // server to hold back the most.
        let key = seq / per_key;
        Req::post(
            format!("/v2/publish/{}", sink.url(&format!("{KEYED_PREFIX}{key}"))),
            plain.clone(),
        )
        .header("authorization", &token)
        .header("content-type", "application/octet-stream")
        .header("upstash-flow-control-key", &format!("bench-{key}"))
        .header("upstash-flow-control-value", "parallelism=1")
    });
    let t = Instant::now();
    let cpu = CpuMeter::start(server.pid());
    let load = Load::closed(server.addr, ctx.plan.workers, Some(total), make, None);
    let out = load.join().await;
    if out.ok == 0
        && out
            .first_error
            .as_deref()
            .is_some_and(|e| e.starts_with("HTTP 4"))
    {
        s.status = Status::NotAvailable(out.first_error.unwrap_or_default());
        return Ok(s);
    }
    check_load(&out, "publish")?;
    drain(ctx, base, out.ok).await?;
    let secs = t.elapsed().as_secs_f64();
    s.cpu = Some(cpu.read());
    let overlap = ctx.sink.max_per_key();
    let (status, _) = Conn::new(server.addr)
        .send(&Req::get("/v2/flowControl/bench-0").header("authorization", &Qstash::token()))
        .await?;
    s.figure(Figure::new(
        "delivered",
        per_second(out.ok, secs),
        Unit::PerSecond,
    ));
    s.figure(Figure::new("keys", keys as f64, Unit::Count));
    s.figure(Figure::new(
        "most in flight for one key",
        overlap as f64,
        Unit::Count,
    ));
    s.note(format!(
        "{total} messages, {per_key} per key published back to back, sink answers after {} ms; rate from the first publish to the last arrival",
        ctx.plan.fc_sink_delay.as_millis()
    ));
    if overlap > 1 {
        s.status = Status::NotAvailable(format!(
            "parallelism=1 not enforced: up to {overlap} deliveries of one key at once (GET /v2/flowControl/{{key}} answers {status})"
        ));
    }
    Ok(s)
}
