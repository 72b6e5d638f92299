//! `GET /metrics`: the Prometheus text format, rendered by
//! metrics-exporter-prometheus from what the engine, the store and the
//! API record through the `metrics` facade. Gauges are sampled at scrape
//! time from the engine's state and index-backed counts (at most once a
//! second, however often it is scraped).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use qstash_engine::Engine;

/// Seconds: from a fast local commit to a destination's timeout.
const SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Write requests per group commit (at most 1024).
const BATCH: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];
/// Gauges are sampled at most this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub struct Metrics {
    handle: PrometheusHandle,
    engine: Arc<Engine>,
    sampled: Mutex<Option<Instant>>,
}

/// Installs the global recorder (from here on, what the engine, store and
/// API record is exported, and the engine and API may keep their metric
/// handles: `meter::installed`) and answers the `/metrics` route.
pub fn install(engine: Arc<Engine>, per_user: bool) -> Result<Router> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("qstash_store_commit_batch_size".into()),
                &BATCH,
            )
        })
        .and_then(|b| b.install_recorder())
        .context("installing the metrics recorder")?;
    qstash_engine::meter::installed(per_user);
    qstash_engine::meter::describe();
    // Histogram samples are kept raw until folded into buckets: fold them
    // regularly even when nobody scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let metrics = Arc::new(Metrics {
        handle,
        engine,
        sampled: Mutex::new(None),
    });
    Ok(Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics))
}

async fn scrape(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let due = {
        let mut sampled = m.sampled.lock().expect("metrics lock");
        let due = sampled.is_none_or(|at| at.elapsed() >= SAMPLE_EVERY);
        if due {
            *sampled = Some(Instant::now());
        }
        due
    };
    if due {
        if let Err(e) = m.engine.sample_gauges().await {
            tracing::warn!(error = %e, "metrics: sampling the gauges failed; they keep their last values");
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        m.handle.render(),
    )
}
