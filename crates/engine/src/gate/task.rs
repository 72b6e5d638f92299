//! The gate task: a thin loop that reads and writes the store around the
//! gate's pure rules, and sleeps until the next mark or timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use qstash_core::gate::{GateClaim, GateRef, RateWindow};
use qstash_core::Message;
use qstash_store::StoreError;
use tokio::sync::OwnedSemaphorePermit;

use super::{decide, pick, Gate, ROUND};
use crate::Engine;

/// Back-off after a store error.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// The gate task: load every queue and key, then look at lines as they
/// are marked, until shutdown.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut shutdown = engine.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        match engine.store.gate_snapshot(engine.now()).await {
            Ok(snapshot) => {
                let mut book = engine.gate.book();
                for (user_id, name) in snapshot.queues {
                    book.queue(&user_id, &name);
                    book.mark(GateRef::Queue { user_id, name });
                }
                for (key, starts) in snapshot.keys {
                    let k = book.key(&key.user_id, &key.key);
                    k.limits = key.limits;
                    k.paused = key.paused;
                    k.fresh = true;
                    k.window = RateWindow::from_starts(starts, key.rate_reset_at);
                    book.mark(GateRef::Key {
                        user_id: key.user_id,
                        key: key.key,
                    });
                }
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "loading queues and flow-control keys failed");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    // A slot waited for in the semaphore's FIFO line, kept for the next
    // round: dropping it and taking it again later would let due publishes,
    // which take free slots too, starve queued messages.
    let mut reserved: Option<OwnedSemaphorePermit> = None;
    while !*shutdown.borrow() {
        // Register for a wake-up before looking, so a mark made during
        // the round is not missed.
        let notified = engine.gate.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next_timer = match round(&engine, reserved.take()).await {
            Ok(Next::More) => continue,
            Ok(Next::Idle) => engine.gate.book().timers.first().map(|(at, _)| *at),
            Ok(Next::NoSlot) => {
                // Every delivery slot is busy: wait for one, keeping the marks.
                tokio::select! {
                    permit = engine.in_flight.clone().acquire_owned() => reserved = permit.ok(),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "dispatching queued and flow-controlled messages failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let wait = next_timer
            .map(|at| Duration::from_millis((at - engine.now()).clamp(0, 3_600_000) as u64));
        if wait == Some(Duration::ZERO) {
            continue;
        }
        let sleep = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600)));
        tokio::select! {
            _ = sleep => {}
            _ = &mut notified => {}
            _ = shutdown.changed() => {}
        }
    }
}

enum Next {
    /// Marked lines remain: go again.
    More,
    /// Nothing marked: sleep until the next timer or mark.
    Idle,
    /// Lines are marked but every delivery slot is busy.
    NoSlot,
}

impl Next {
    fn after(gate: &Gate) -> Self {
        if gate.book().dirty.is_empty() {
            Next::Idle
        } else {
            Next::More
        }
    }
}

/// One round: look at marked lines, start what their limits allow, in the
/// `reserved` slot and the free ones.
async fn round(
    engine: &Arc<Engine>,
    reserved: Option<OwnedSemaphorePermit>,
) -> Result<Next, StoreError> {
    let gate = &engine.gate;
    let now = engine.now();
    let mut permits: Vec<OwnedSemaphorePermit> = reserved.into_iter().collect();
    let free = (permits.len() + engine.in_flight.available_permits()).min(ROUND);
    if free == 0 {
        return Ok(if gate.book().dirty.is_empty() {
            Next::Idle
        } else {
            Next::NoSlot
        });
    }
    let looks = pick(gate, now, free as u32);
    if looks.is_empty() {
        return Ok(Next::Idle);
    }
    let picked: Vec<GateRef> = looks.iter().map(|l| l.gate.clone()).collect();
    let views = match engine.store.gate_views(looks).await {
        Ok(v) => v,
        Err(e) => {
            let mut book = gate.book();
            picked.into_iter().for_each(|g| book.mark(g));
            return Err(e);
        }
    };
    permits.extend(
        (permits.len()..free).map_while(|_| engine.in_flight.clone().try_acquire_owned().ok()),
    );
    let now = engine.now();
    let admitted = decide(gate, views, now, permits.len());
    if admitted.is_empty() {
        return Ok(Next::after(gate));
    }
    let claims: Vec<GateClaim> = admitted.iter().map(|(c, _)| c.clone()).collect();
    let claimed = engine.store.claim_gated(claims, now).await;
    gate.claimed(&admitted);
    let claimed = match claimed {
        Ok(c) => c,
        Err(e) => {
            for (_, slots) in &admitted {
                gate.release(slots);
            }
            return Err(e);
        }
    };
    let mut by_id: HashMap<String, Message> =
        claimed.into_iter().map(|m| (m.id.clone(), m)).collect();
    for (claim, slots) in admitted {
        let Some(message) = by_id.remove(&claim.message_id) else {
            // Cancelled or deleted between the look and the claim.
            gate.release(&slots);
            continue;
        };
        let permit = permits.pop().expect("one permit per admitted message");
        let engine = engine.clone();
        tokio::spawn(async move {
            engine.deliver(message).await;
            drop(permit);
            engine.gate.release(&slots);
        });
    }
    Ok(Next::after(gate))
}
