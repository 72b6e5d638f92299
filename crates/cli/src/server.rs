//! Wiring: store, key ring, engine, HTTP API; and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use qstash_api::{ApiConfig, AppState};
use qstash_core::clock::SystemClock;
use qstash_engine::{Engine, EngineConfig, KeyRing};
use qstash_store::postgres::{masked, PgOptions, PgStore};
use qstash_store::sqlite::{Durability, SqliteStore};
use qstash_store::Store;

use crate::config::{DurabilityArg, Plan};

pub async fn run(plan: Plan) -> Result<()> {
    let c = &plan.common;
    let node_id = node_id(&plan)?;
    let store = open_store(&plan, &node_id).await?;
    let keys = Arc::new(KeyRing::load(store.clone(), &plan.users).await?);
    let engine_config = EngineConfig {
        max_in_flight: c.max_in_flight.max(1),
        default_timeout: c.default_timeout,
        retention: c.retention,
        global_parallelism: c.global_parallelism.max(1),
        dlq_retention: c.dlq_retention,
        schedule_catch_up: c.schedule_catch_up,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(SystemClock), keys.clone(), engine_config)?;
    let scheduler = engine.start().await?;

    let state = AppState::new(
        engine.clone(),
        &plan.users,
        ApiConfig {
            max_body_bytes: c.max_body_bytes,
        },
    );
    let mut app = qstash_api::router(state);
    if c.console {
        app = app.merge(qstash_console::router(console_config(&plan)));
    }
    let listener = tokio::net::TcpListener::bind((plan.host.as_str(), plan.port))
        .await
        .with_context(|| format!("binding {}:{}", plan.host, plan.port))?;
    let addr = listener.local_addr()?;
    announce(&plan, addr, &keys);

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop_signal())
    .await?;
    tracing::info!("stopped accepting requests; finishing deliveries in flight");
    engine.shutdown(scheduler, c.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// PostgreSQL when a database URL is given, else SQLite in the data dir.
async fn open_store(plan: &Plan, node_id: &str) -> Result<Arc<dyn Store>> {
    let c = &plan.common;
    if let Some(url) = &c.database_url {
        let options = PgOptions {
            pool_size: c.database_pool.max(4),
            node_id: node_id.to_string(),
            ..PgOptions::new(url.clone())
        };
        let store = PgStore::connect(&options)
            .await
            .with_context(|| format!("opening the PostgreSQL store at {}", masked(url)))?;
        return Ok(Arc::new(store));
    }
    let durability = match c.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    let store = SqliteStore::open(&plan.data_dir, durability)
        .with_context(|| format!("opening the store in {}", plan.data_dir.display()))?;
    Ok(Arc::new(store))
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

fn announce(plan: &Plan, addr: SocketAddr, keys: &KeyRing) {
    let url = format!("http://{addr}");
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
