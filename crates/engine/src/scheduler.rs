//! The scheduler task: sleep until the next due message, claim what is due,
//! hand each message to a delivery task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use qstash_core::clock::Millis;

use crate::Engine;

/// Most messages claimed in one store round trip.
const CLAIM_BATCH: usize = 256;
/// Back-off after a store error, so a broken disk does not spin the CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

pub async fn run(engine: Arc<Engine>) {
    let mut shutdown = engine.shutdown.subscribe();
    while !*shutdown.borrow() {
        // Claim no more than there are free delivery slots, so claimed
        // messages never wait in memory.
        let free = engine.in_flight.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            let Ok(permit) = engine.in_flight.clone().acquire_owned().await else {
                return;
            };
            drop(permit);
            continue;
        }
        // Announce the wake-up target before looking, so a publish that
        // lands during the look still wakes us.
        engine.sleeping_until.store(Millis::MAX, Ordering::Release);
        let now = engine.now();
        let claimed = match engine.store.claim_due(now, free).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "claiming due messages failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let full = claimed.len() == free;
        for message in claimed {
            let permit = engine
                .in_flight
                .clone()
                .try_acquire_owned()
                .expect("claimed within free permits");
            let engine = engine.clone();
            tokio::spawn(async move {
                engine.deliver(message).await;
                drop(permit);
            });
        }
        if full {
            continue;
        }
        let next = match engine.store.next_due_at().await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "reading the next due time failed");
                Some(engine.now() + ERROR_PAUSE.as_millis() as Millis)
            }
        };
        sleep_until(&engine, next, &mut shutdown).await;
    }
}

async fn sleep_until(
    engine: &Engine,
    next: Option<Millis>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let target = next.unwrap_or(Millis::MAX);
    engine.sleeping_until.store(target, Ordering::Release);
    let now = engine.now();
    if target <= now {
        return;
    }
    let wait = Duration::from_millis((target - now) as u64).min(Duration::from_secs(3600));
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = engine.wake.notified() => {}
        _ = shutdown.changed() => {}
    }
}

/// Periodic clean-up: expired dedup keys, and finished messages and log
/// entries past retention.
pub async fn housekeeping(engine: Arc<Engine>) {
    // Every minute, or often enough that a short retention (tests) is kept
    // to within a quarter of itself.
    let shortest = engine.config.retention.min(engine.config.dlq_retention);
    let every = (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = engine.now();
        let retain_before = now - engine.config.retention.as_millis() as Millis;
        match engine.store.purge(now, retain_before).await {
            Ok(c) if c.messages + c.events + c.dedup > 0 => tracing::debug!(?c, "purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
        let dlq_before = now - engine.config.dlq_retention.as_millis() as Millis;
        if let Err(e) = engine.store.purge_history(retain_before, dlq_before).await {
            tracing::warn!(error = %e, "purging the DLQ failed");
        }
    }
}
