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

impl Engine {
    /// Probes what a node needs to accept messages: a store that commits a
    /// write within `within` (with PostgreSQL: a database that answers),
    /// and not shutting down.
    pub async fn readiness(&self, within: Duration) -> Vec<Check> {
        let started = Instant::now();
        let storage = match tokio::time::timeout(within, self.store.probe()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "no write committed within {} ms",
                within.as_millis()
            )),
        };
        vec![
            Check {
                name: "storage",
                error: storage,
                took: started.elapsed(),
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
}
