//! The scheduler task: sleep until the next due message, claim what is due,
//! hand each message to a delivery task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use qstash_core::clock::Millis;
use tokio::sync::OwnedSemaphorePermit;

use crate::cluster::Term;
use crate::Engine;

/// Most messages claimed in one store round trip.
const CLAIM_BATCH: usize = 256;
/// Back-off after a store error, so a broken disk does not spin the CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

pub async fn run(engine: Arc<Engine>) {
    let mut shutdown = engine.shutdown.subscribe();
    while !*shutdown.borrow() {
        // Take the delivery slots first and claim no more messages than
        // slots, so claimed messages never wait in memory. (Publishes take
        // slots too, for due messages they start at once: counting free
        // slots and taking them after the claim would race with them.)
        let Some(mut slots) = take_slots(&engine).await else {
            return;
        };
        if *shutdown.borrow() {
            return;
        }
        let free = slots.len();
        // Announce the wake-up target before looking, so a publish that
        // lands during the look still wakes us.
        engine.sleeping_until.store(Millis::MAX, Ordering::Release);
        let now = engine.now();
        let claimed = if engine.user_slots.cap().is_some() {
            let rooms = engine
                .gate
                .with_gated(|gated| engine.user_slots.rooms(gated));
            engine.store.claim_due_of_users(now, rooms, free).await
        } else {
            engine.store.claim_due(now, free).await
        };
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "claiming due messages failed");
                drop(slots);
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let full = claimed.len() == free;
        for message in claimed {
            let permit = slots.pop().expect("claimed within the slots taken");
            // Claimed within the user's room. A publish or the gate may
            // have taken it during the claim (a store call: no lock is held
            // across it, and holding every user's room for its length
            // stalled their publishes and gated lines): then this one
            // goes one over, but counted, so nothing else starts until the
            // user is below its cap again.
            let user = &message.user_id;
            let user_slot = engine
                .gate
                .with_gated(|gated| engine.user_slots.try_take(user, gated(user)))
                .unwrap_or_else(|| engine.user_slots.take_over(user));
            engine.spawn_delivery(message, permit, |e| e.plain_done(user_slot));
        }
        // Never sleep on slots: publishes and retries need them.
        drop(slots);
        if full {
            continue;
        }
        let next = if engine.user_slots.cap().is_some() {
            let users = engine
                .gate
                .with_gated(|gated| engine.user_slots.rooms(gated))
                .into_iter()
                .map(|(u, _)| u)
                .collect();
            engine.store.next_due_of_users(users).await
        } else {
            engine.store.next_due_at().await
        };
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "reading the next due time failed");
                Some(engine.now() + ERROR_PAUSE.as_millis() as Millis)
            }
        };
        sleep_until(&engine, next, &mut shutdown).await;
    }
}

/// Up to `CLAIM_BATCH` delivery slots, waiting for the first one (in the
/// semaphore's FIFO line, so publishes cannot starve the scheduler). None
/// once the semaphore is closed.
async fn take_slots(engine: &Engine) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = engine.in_flight.clone().acquire_owned().await.ok()?;
    let mut slots = vec![first];
    while slots.len() < CLAIM_BATCH {
        match engine.in_flight.clone().try_acquire_owned() {
            Ok(permit) => slots.push(permit),
            Err(_) => break,
        }
    }
    Some(slots)
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
    // In a cluster, other nodes do not signal plain messages due later than
    // a second ahead: every node reads the due index again within a lease.
    let longest = match engine.store.cluster() {
        Some(_) => engine.config.lease,
        None => Duration::from_secs(3600),
    };
    let wait = Duration::from_millis((target - now) as u64).min(longest);
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = engine.wake.notified() => {}
        _ = engine.user_slots.freed.notified() => {}
        _ = shutdown.changed() => {}
    }
}

/// Periodic clean-up: expired dedup keys, and finished messages and log
/// entries past retention. The leader's, until its term is over (so it
/// runs once for a cluster).
pub(crate) async fn housekeeping(engine: Arc<Engine>, mut term: Term) {
    // Every minute, or often enough that a short retention (tests) is kept
    // to within a quarter of itself.
    let shortest = engine.config.retention.min(engine.config.dlq_retention);
    let every = (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    while !term.over() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = term.ended() => return,
        }
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
        engine.repair_failing_runs().await;
    }
}
