//! Wiring: store, key ring, engine, HTTP API; and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use qstash_api::{ApiConfig, AppState};
use qstash_core::clock::SystemClock;
use qstash_engine::{Engine, EngineConfig, KeyRing};
use qstash_store::sqlite::{Durability, SqliteStore};
use qstash_store::Store;

use crate::config::{DurabilityArg, Plan};

pub async fn run(plan: Plan) -> Result<()> {
    let c = &plan.common;
    let durability = match c.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    let _lock = crate::data_dir::prepare(&plan.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&plan.data_dir, durability)
            .with_context(|| format!("opening the store in {}", plan.data_dir.display()))?,
    );
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
    let app = qstash_api::router(state);
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

fn announce(plan: &Plan, addr: SocketAddr, keys: &KeyRing) {
    let url = format!("http://{addr}");
    if !plan.dev {
        println!(
            "QStash server is running at {url} (data in {})",
            plan.data_dir.display()
        );
        return;
    }
    println!("QStash dev server is running at {url}\n");
    println!("A default user has been created for you to authorize your requests.");
    for u in &plan.users {
        let k = keys.get(&u.id).unwrap_or_else(|| u.initial_keys.clone());
        println!("\nUser: {}", u.id);
        println!("QSTASH_URL=\"{url}\"");
        println!("QSTASH_TOKEN=\"{}\"", u.token);
        println!("QSTASH_CURRENT_SIGNING_KEY=\"{}\"", k.current);
        println!("QSTASH_NEXT_SIGNING_KEY=\"{}\"", k.next);
    }
    println!("\nData directory: {}", plan.data_dir.display());
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
