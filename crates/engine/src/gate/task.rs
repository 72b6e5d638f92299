//! The gate task: a thin loop that reads and writes the store around the
//! gate's pure rules, and sleeps until the next mark or timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use qstash_core::gate::{GateClaim, GateRef};
use qstash_core::Message;
use qstash_store::StoreError;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::rules::ROUND;
use super::{Gate, Slots};
use crate::cluster::Term;
use crate::Engine;

/// Back-off after a store error.
const ERROR_PAUSE: Duration = Duration::from_millis(500);
/// How often inherited deliveries (of an earlier leader) are counted again
/// while some remain in flight.
const INHERITED_REFRESH: Duration = Duration::from_secs(1);

/// The gate task of one leader term: a fresh book, every queue and key
/// loaded, the deliveries of earlier terms inherited; then look at lines
/// as they are marked, until the term is over.
pub(crate) async fn run(engine: Arc<Engine>, mut term: Term) {
    let number = engine.gate.start_term();
    let started = engine.now();
    if !load(&engine, &term).await {
        return;
    }
    let mut recount = inherit(&engine, started)
        .await
        .then(|| Instant::now() + INHERITED_REFRESH);
    // A slot waited for in the semaphore's FIFO line, kept for the next
    // round: dropping it and taking it again later would let due publishes,
    // which take free slots too, starve queued messages.
    let mut reserved: Option<OwnedSemaphorePermit> = None;
    while !term.over() {
        if recount.is_some_and(|at| at <= Instant::now()) {
            recount = inherit(&engine, started)
                .await
                .then(|| Instant::now() + INHERITED_REFRESH);
        }
        // Register for a wake-up before looking, so a mark made during
        // the round is not missed.
        let notified = engine.gate.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next_timer = match round(&engine, reserved.take(), number).await {
            Ok(Next::More) => continue,
            Ok(Next::Idle) => engine.gate.next_timer(),
            Ok(Next::NoSlot) => {
                // Every delivery slot is busy: wait for one, keeping the marks.
                tokio::select! {
                    permit = engine.in_flight.clone().acquire_owned() => reserved = permit.ok(),
                    _ = term.ended() => {}
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
        let mut until = Instant::now() + wait.unwrap_or(Duration::from_secs(3600));
        if let Some(at) = recount {
            until = until.min(at);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = &mut notified => {}
            _ = term.ended() => {}
        }
    }
}

/// Counts the gated deliveries in flight that this term did not start (a
/// cluster's earlier leaders'); answers whether to count them again later
/// (some remain, or the count failed).
async fn inherit(engine: &Engine, term_started: qstash_core::clock::Millis) -> bool {
    let Some(cluster) = engine.store.cluster() else {
        return false;
    };
    match cluster.inherited_claims(term_started).await {
        Ok(c) => engine.gate.inherit(&c.keys, &c.users),
        Err(e) => {
            tracing::warn!(error = %e, "counting the deliveries of earlier leaders failed");
            true
        }
    }
}

/// Loads every queue and key into the book, retrying store errors; false
/// when the term ended first.
async fn load(engine: &Engine, term: &Term) -> bool {
    loop {
        if term.over() {
            return false;
        }
        match engine.store.gate_snapshot(engine.now()).await {
            Ok(snapshot) => {
                engine.gate.load(snapshot);
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, "loading queues and flow-control keys failed");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
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
        if gate.has_marks() {
            Next::More
        } else {
            Next::Idle
        }
    }
}

/// One round: look at marked lines, start what their limits allow, in the
/// `reserved` slot and the free ones.
async fn round(
    engine: &Arc<Engine>,
    reserved: Option<OwnedSemaphorePermit>,
    term: u64,
) -> Result<Next, StoreError> {
    let gate = &engine.gate;
    let now = engine.now();
    let mut permits: Vec<OwnedSemaphorePermit> = reserved.into_iter().collect();
    let free = (permits.len() + engine.in_flight.available_permits()).min(ROUND);
    if free == 0 {
        return Ok(if gate.has_marks() {
            Next::NoSlot
        } else {
            Next::Idle
        });
    }
    let looks = gate.pick(now, free as u32);
    if looks.is_empty() {
        return Ok(Next::Idle);
    }
    let picked: Vec<GateRef> = looks.iter().map(|l| l.gate.clone()).collect();
    let views = match engine.store.gate_views(looks).await {
        Ok(v) => v,
        Err(e) => {
            gate.remark(picked);
            return Err(e);
        }
    };
    permits.extend(
        (permits.len()..free).map_while(|_| engine.in_flight.clone().try_acquire_owned().ok()),
    );
    let now = engine.now();
    let admitted = gate.decide(views, now, permits.len());
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
    deliver(engine, admitted, claimed, permits, term);
    Ok(Next::after(gate))
}

/// Delivers each claimed message in one of the `permits`, releasing its
/// gate slots when the attempt is over; admitted messages the claim did
/// not find (cancelled or deleted since the look) release theirs at once.
fn deliver(
    engine: &Arc<Engine>,
    admitted: Vec<(GateClaim, Slots)>,
    claimed: Vec<Message>,
    mut permits: Vec<OwnedSemaphorePermit>,
    term: u64,
) {
    let mut by_id: HashMap<String, Message> =
        claimed.into_iter().map(|m| (m.id.clone(), m)).collect();
    for (claim, slots) in admitted {
        let Some(message) = by_id.remove(&claim.message_id) else {
            engine.gate.release(&slots);
            continue;
        };
        let permit = permits.pop().expect("one permit per admitted message");
        engine.spawn_delivery(message, permit, move |e| e.gate.release_in(term, &slots));
    }
}
