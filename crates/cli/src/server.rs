//! Wiring: store, key ring, engine, HTTP API; and a graceful stop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use qstash_api::{ApiConfig, AppState};
use qstash_core::clock::SystemClock;
use qstash_core::policy::{parse_rules, serve_default_deny, DestinationPolicy};
use qstash_core::publish::Limits;
use qstash_engine::{Engine, EngineConfig, KeyRing};
use qstash_store::postgres::{masked, PgOptions, PgStore};
use qstash_store::sqlite::{Durability, SqliteStore};
use qstash_store::Store;
use tokio::net::TcpListener;

use crate::config::{DurabilityArg, Plan};
use crate::data_dir::DataDirLock;
use crate::listener;

pub async fn run(plan: Plan) -> Result<()> {
    let c = &plan.common;
    // Bind first: a taken port is the most common start-up error, and the
    // destination policy needs the address we listen on.
    let listener = bind(&plan.host, plan.port).await?;
    let addr = listener.local_addr()?;
    let log_listener = match plan.log_port {
        Some(port) => Some(bind(&plan.host, port).await?),
        None => None,
    };
    let metrics_listener = match c.metrics_port.filter(|_| c.metrics) {
        Some(port) => Some(bind(&plan.host, port).await.context("--metrics-port")?),
        None => None,
    };
    let tls = match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => Some(listener::tls_acceptor(cert, key)?),
        _ => None,
    };
    let node_id = node_id(&plan)?;
    let (store, _lock) = open_store(&plan, &node_id).await?;
    let keys = Arc::new(KeyRing::load(store.clone(), &plan.users).await?);
    let max_in_flight = c.max_in_flight.max(1);
    // By default a server with several users keeps half the slots from
    // any one of them; `dev` and single-user servers do not cap.
    let per_user = c
        .max_in_flight_per_user
        .or_else(|| (!plan.dev && plan.users.len() > 1).then_some(max_in_flight / 2))
        .map(|n| n.max(1))
        .filter(|n| *n < max_in_flight);
    let engine_config = EngineConfig {
        max_in_flight,
        default_timeout: c.default_timeout,
        retention: c.retention,
        // The per-user cap bounds a user's queued and flow-controlled
        // deliveries too (`GET /v2/globalParallelism` shows it).
        global_parallelism: per_user
            .map_or(c.global_parallelism, |cap| {
                c.global_parallelism
                    .min(u32::try_from(cap).unwrap_or(u32::MAX))
            })
            .max(1),
        dlq_retention: c.dlq_retention,
        schedule_catch_up: c.schedule_catch_up,
        destination_policy: Arc::new(policy(&plan, addr)?),
        limits: Limits {
            max_timeout: c.max_timeout,
            max_delay: c.max_delay,
        },
        max_in_flight_per_user: per_user,
        node_id: node_id.clone(),
        lease: c.lease.max(Duration::from_millis(300)),
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(SystemClock), keys.clone(), engine_config)?;
    engine.set_address(addr.to_string());
    let scheduler = engine.start().await?;

    let trusted_proxies = c
        .trusted_proxies
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| format!("--trusted-proxies: {s:?} is not a CIDR or address"))
        })
        .collect::<Result<Vec<_>>>()?;
    let state = AppState::new(
        engine.clone(),
        &plan.users,
        ApiConfig {
            max_body_bytes: c.max_body_bytes,
            max_batch_items: c.max_batch_items.max(1),
            max_url_group_endpoints: c.max_url_group_endpoints.max(1),
            rate_limits: plan.rate_limits.clone(),
            trusted_proxies,
            llm_base_url: c.llm_base_url.trim_end_matches('/').to_string(),
            body_read_timeout: c.body_read_timeout,
        },
    );
    let mut app = qstash_api::router(state);
    if c.console {
        let console = qstash_console::router(console_config(&plan));
        app = app.merge(qstash_api::observe::layer(console));
    }
    let metrics = match c.metrics {
        true => Some(crate::metrics::install(engine.clone(), c.metrics_per_user)?),
        false => None,
    };
    let metrics_app = match (metrics, &metrics_listener) {
        (Some(m), None) => {
            app = app.merge(qstash_api::observe::layer(m));
            None
        }
        (m, _) => m.map(qstash_api::observe::layer),
    };
    announce(&plan, addr, &keys, tls.is_some());

    let limits = listener::Limits {
        max_connections: c.max_connections,
        header_read_timeout: c.header_read_timeout,
        idle_timeout: c.idle_timeout,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let log_server = log_listener.map(|l| {
        tokio::spawn(listener::serve(
            l,
            app.clone(),
            limits.clone(),
            tls.clone(),
            stop_rx.clone(),
            c.shutdown_grace,
        ))
    });
    let metrics_server = metrics_listener.zip(metrics_app).map(|(l, m)| {
        tokio::spawn(listener::serve(
            l,
            m,
            limits.clone(),
            None,
            stop_rx.clone(),
            c.shutdown_grace,
        ))
    });
    let api = listener::serve(listener, app, limits, tls, stop_rx, c.shutdown_grace);
    let signal = async {
        stop_signal().await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(api, signal);
    if let Some(log_server) = log_server {
        let _ = log_server.await;
    }
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    tracing::info!("stopped accepting requests; finishing deliveries in flight");
    engine.shutdown(scheduler, c.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port)).await.with_context(|| {
        format!("cannot listen on {host}:{port} (is another server using that port? pick another with --port)")
    })
}

/// `dev` allows every destination unless rules are given; `serve` adds its
/// default deny list and its own listening address.
fn policy(plan: &Plan, listen: SocketAddr) -> Result<DestinationPolicy> {
    let c = &plan.common;
    let allow = parse_rules(&c.destination_allow).context("--destination-allow")?;
    let deny = parse_rules(&c.destination_deny).context("--destination-deny")?;
    if plan.dev {
        return Ok(DestinationPolicy::new(allow, deny, vec![]));
    }
    let local_ips = if listen.ip().is_unspecified() {
        if_addrs::get_if_addrs()
            .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(DestinationPolicy::new(allow, deny, serve_default_deny())
        .deny_own_address(listen, local_ips))
}

/// PostgreSQL when a database URL is given, else SQLite in the data dir.
async fn open_store(plan: &Plan, node_id: &str) -> Result<(Arc<dyn Store>, Option<DataDirLock>)> {
    let c = &plan.common;
    if let Some(url) = &c.database_url {
        let options = PgOptions {
            pool_size: c.database_pool.max(4),
            writers: c.database_writers.max(1),
            node_id: node_id.to_string(),
            ..PgOptions::new(url.clone())
        };
        let store = PgStore::connect(&options)
            .await
            .with_context(|| format!("opening the PostgreSQL store at {}", masked(url)))?;
        return Ok((Arc::new(store), None));
    }
    let durability = match c.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    // The lock keeps a second server off this SQLite file; PostgreSQL
    // servers share their database on purpose (scale-out).
    let lock = crate::data_dir::prepare(&plan.data_dir)?;
    let store = SqliteStore::open_limited(&plan.data_dir, durability, c.max_db_size)
        .with_context(|| format!("opening the store in {}", plan.data_dir.display()))?;
    Ok((Arc::new(store), Some(lock)))
}

/// `--node-id`, else the id kept in the data directory (made up and kept
/// there at the first start).
fn node_id(plan: &Plan) -> Result<String> {
    if let Some(id) = &plan.common.node_id {
        return Ok(id.clone());
    }
    let file = plan.data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&file) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let id = qstash_core::ids::node_id();
    std::fs::create_dir_all(&plan.data_dir)
        .and_then(|_| std::fs::write(&file, &id))
        .with_context(|| format!("keeping the node id in {}", file.display()))?;
    Ok(id)
}

/// Where the data lives, for the start-up banner.
fn storage(plan: &Plan) -> String {
    match &plan.common.database_url {
        Some(url) => format!("PostgreSQL {}", masked(url)),
        None => plan.data_dir.display().to_string(),
    }
}

/// The dev server's sign-in page offers its users (public dev tokens);
/// `serve` asks for a token.
fn console_config(plan: &Plan) -> qstash_console::ConsoleConfig {
    let dev_users = match plan.dev {
        true => plan
            .users
            .iter()
            .map(|u| qstash_console::DevUser {
                id: u.id.clone(),
                token: u.token.clone(),
            })
            .collect(),
        false => Vec::new(),
    };
    qstash_console::ConsoleConfig { dev_users }
}

fn announce(plan: &Plan, addr: SocketAddr, keys: &KeyRing, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    if !plan.dev {
        println!(
            "QStash server is running at {url} (data in {})",
            storage(plan)
        );
        if plan.common.console {
            println!("Console: {url}/ (sign in with a user's token)");
        }
        return;
    }
    println!("QStash dev server is running at {url}\n");
    if plan.common.console {
        println!("Console: {url}/\n");
    }
    if let Some(port) = plan.log_port {
        println!("The same API is served on the log port {port}.\n");
    }
    println!("A default user has been created for you to authorize your requests.");
    for u in &plan.users {
        let k = keys.get(&u.id).unwrap_or_else(|| u.initial_keys.clone());
        println!("\nUser: {}", u.id);
        println!("QSTASH_URL=\"{url}\"");
        println!("QSTASH_TOKEN=\"{}\"", u.token);
        println!("QSTASH_CURRENT_SIGNING_KEY=\"{}\"", k.current);
        println!("QSTASH_NEXT_SIGNING_KEY=\"{}\"", k.next);
    }
    println!("\nData: {}", storage(plan));
}

async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
