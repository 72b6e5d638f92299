//! Readiness: whether this node can take work now (`GET /readyz`).

use std::time::{Duration, Instant};

use crate::Engine;

/// One thing readiness depends on, as last probed.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    /// What went wrong; None when it passed.
    pub error: Option<String>,
    /// How long the probe took.
    pub took: Duration,
}

/// A storage probe's result, kept for `PROBE_REUSE`: `/readyz` needs no
/// token, and each probe is a committed write, so a caller polling it in a
/// loop must not turn into a stream of writes.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    at: Instant,
    error: Option<String>,
    took: Duration,
}

const PROBE_REUSE: Duration = Duration::from_secs(1);

impl Engine {
    /// Probes what a node needs to accept messages: a store that commits a
    /// write within `within` (with PostgreSQL: a database that answers),
    /// and not shutting down.
    pub async fn readiness(&self, within: Duration) -> Vec<Check> {
        let probe = self.storage_probe(within).await;
        vec![
            Check {
                name: "storage",
                error: probe.error,
                took: probe.took,
            },
            Check {
                name: "accepting",
                error: self
                    .stopping()
                    .then(|| "shutting down: finishing deliveries in flight".to_string()),
                took: Duration::ZERO,
            },
        ]
    }

    /// The storage probe, or the last one if it ran less than a second ago.
    async fn storage_probe(&self, within: Duration) -> Probe {
        let recent = self
            .last_probe
            .lock()
            .expect("probe cache")
            .clone()
            .filter(|p| p.at.elapsed() < PROBE_REUSE);
        if let Some(p) = recent {
            return p;
        }
        let started = Instant::now();
        let error = match tokio::time::timeout(within, self.store.probe()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "no write committed within {} ms",
                within.as_millis()
            )),
        };
        let probe = Probe {
            at: Instant::now(),
            error,
            took: started.elapsed(),
        };
        *self.last_probe.lock().expect("probe cache") = Some(probe.clone());
        probe
    }
}
