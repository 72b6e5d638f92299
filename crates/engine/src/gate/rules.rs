//! The gate's decisions, as plain functions over its book and what the
//! store showed of the lines: which lines to look at (`pick`), which of
//! their heads start (`decide`), and what a finished attempt frees
//! (`release`). No IO and no clock: the task passes `now`.

use qstash_core::clock::Millis;
use qstash_core::flow_control::FlowKey;
use qstash_core::gate::{Candidate, GateClaim, GateConfig, GateLook, GateRef, GateView};

use super::book::{key_gate, queue_gate, Book, Slots};

/// Most gates looked at, and most messages started, in one round.
pub(super) const ROUND: usize = 256;

/// Takes marked lines that could start something now, at most `ROUND`,
/// each to read at most `free` candidates of; lines that cannot (paused,
/// full, rate-limited, user at the global limit) are left unmarked until
/// whatever blocks them changes.
pub(super) fn pick(book: &mut Book, now: Millis, free: u32) -> Vec<GateLook> {
    book.fire_timers(now);
    let mut looks = Vec::new();
    while looks.len() < ROUND {
        let Some(gate) = book.next_mark() else {
            break;
        };
        if let Some(look) = look_at(book, gate, now, free) {
            looks.push(look);
        }
    }
    looks
}

/// A look at one marked line, unless the book knows it can start nothing.
fn look_at(book: &mut Book, gate: GateRef, now: Millis, free: u32) -> Option<GateLook> {
    if !user_has_room(book, &gate) {
        return None;
    }
    let in_flight = match &gate {
        GateRef::Queue { user_id, name } => {
            if book.queue(user_id, name).is_shut() {
                return None;
            }
            0
        }
        GateRef::Key { user_id, key } => {
            // A key whose settings may have changed is read anyway.
            if book.key(user_id, key).fresh && key_is_full(book, &gate, now) {
                return None;
            }
            book.key(user_id, key).in_flight
        }
    };
    Some(GateLook {
        gate,
        in_flight,
        cap: free,
    })
}

/// What one round has left to give, and what it let through so far.
struct Round {
    now: Millis,
    budget: usize,
    admitted: Vec<(GateClaim, Slots)>,
}

impl Round {
    fn admit(&mut self, claim: GateClaim, slots: Slots) {
        self.admitted.push((claim, slots));
        self.budget -= 1;
    }
}

/// Chooses which candidates start, updating the counters; at most
/// `budget` in all.
pub(super) fn decide(
    book: &mut Book,
    views: Vec<GateView>,
    now: Millis,
    budget: usize,
) -> Vec<(GateClaim, Slots)> {
    let mut round = Round {
        now,
        budget,
        admitted: Vec::new(),
    };
    // Keys first: a queue's head may wait on a key read in this round.
    let (keys, queues): (Vec<_>, Vec<_>) = views
        .into_iter()
        .partition(|v| matches!(v.gate, GateRef::Key { .. }));
    for view in keys.iter().chain(&queues) {
        match &view.config {
            Some(GateConfig::Key(config)) => decide_key(book, &mut round, view, config),
            Some(GateConfig::Queue {
                parallelism,
                paused,
            }) => decide_queue(book, &mut round, view, *parallelism, *paused),
            // A key whose row is gone: nothing waits on it.
            None => {}
        }
    }
    round.admitted
}

/// Starts a key's waiting messages in line order while the key, its user
/// and the round have room.
fn decide_key(book: &mut Book, round: &mut Round, view: &GateView, config: &FlowKey) {
    let GateRef::Key { user_id, key } = &view.gate else {
        return;
    };
    book.key(user_id, key).configure(config);
    let mut started = 0;
    for c in &view.candidates {
        if !key_head_may_start(book, round, &view.gate, c) {
            break;
        }
        let slots = Slots {
            user_id: user_id.clone(),
            queue: None,
            key: Some(key.clone()),
        };
        let claim = start(book, &slots, &c.id, round.now);
        // The store counts it as waiting until its claim is committed.
        let k = book.key(user_id, key);
        k.claiming += 1;
        k.changes += 1;
        round.admit(claim, slots);
        started += 1;
    }
    // The look read as many as there was room for: there may be more
    // behind them.
    if started > 0 && started == view.candidates.len() {
        book.mark(view.gate.clone());
    }
    // Queues whose head waits on this key get a look if the key has room
    // left.
    if book.key(user_id, key).capacity(round.now).take > 0 {
        book.wake_waiters(user_id, key);
    }
}

/// Whether a key's next waiting message may start now; if not, sets the
/// timer or mark (or blocked entry) that brings the key back.
fn key_head_may_start(book: &mut Book, round: &Round, gate: &GateRef, c: &Candidate) -> bool {
    if c.due_at > round.now {
        book.set_timer(gate, c.due_at);
        return false;
    }
    if round.budget == 0 {
        book.mark(gate.clone());
        return false;
    }
    user_has_room(book, gate) && !key_is_full(book, gate, round.now)
}

/// Starts the due messages of a queue's window that are not in flight,
/// while the queue, its user, their keys and the round have room. A
/// message not due yet (waiting for a retry) keeps its place in the window
/// the store read, so with parallelism 1 nothing behind it starts.
fn decide_queue(
    book: &mut Book,
    round: &mut Round,
    view: &GateView,
    parallelism: u32,
    paused: bool,
) {
    let GateRef::Queue { user_id, name } = &view.gate else {
        return;
    };
    let q = book.queue(user_id, name);
    q.parallelism = Some(parallelism);
    q.paused = paused;
    if paused {
        return;
    }
    for c in view.candidates.iter().filter(|c| !c.active) {
        if book.queue(user_id, name).in_flight >= parallelism {
            break;
        }
        if c.due_at > round.now {
            book.set_timer(&view.gate, c.due_at);
            continue;
        }
        if round.budget == 0 {
            book.mark(view.gate.clone());
            break;
        }
        if !user_has_room(book, &view.gate) {
            break;
        }
        if let Some(key) = &c.flow_control_key {
            if queue_waits_on_key(book, &view.gate, key, round.now) {
                continue;
            }
        }
        let slots = Slots {
            user_id: user_id.clone(),
            queue: Some(name.clone()),
            key: c.flow_control_key.clone(),
        };
        let claim = start(book, &slots, &c.id, round.now);
        round.admit(claim, slots);
    }
}

/// A queued message with a flow-control key passes the key too. If the
/// key is full, or its settings are not known yet, the queue waits on it:
/// the key marks the queue when it has room.
fn queue_waits_on_key(book: &mut Book, queue: &GateRef, key: &str, now: Millis) -> bool {
    let user_id = queue.user_id();
    let k = book.key(user_id, key);
    let cap = k.capacity(now);
    let fresh = k.fresh;
    if fresh && cap.take > 0 {
        return false;
    }
    k.waiters.insert(queue.clone());
    if !fresh {
        book.mark(key_gate(user_id, key));
    } else if let Some(at) = cap.reopens_at {
        book.set_timer(&key_gate(user_id, key), at);
    }
    true
}

/// Whether a key can start nothing now; when its rate is what stops it,
/// sets the timer for when the window reopens. (A key full by parallelism
/// is marked when one of its deliveries finishes.)
fn key_is_full(book: &mut Book, gate: &GateRef, now: Millis) -> bool {
    let GateRef::Key { user_id, key } = gate else {
        return false;
    };
    let cap = book.key(user_id, key).capacity(now);
    if cap.take > 0 {
        return false;
    }
    if let Some(at) = cap.reopens_at {
        book.set_timer(gate, at);
    }
    true
}

/// Whether the user of `gate` may start another gated delivery; if not,
/// the gate waits until one of the user's deliveries finishes.
fn user_has_room(book: &mut Book, gate: &GateRef) -> bool {
    let global_max = book.global_max;
    let user = book.user(gate.user_id());
    if user.in_flight >= global_max {
        user.blocked.insert(gate.clone());
        return false;
    }
    true
}

/// Counts a start: one more in flight on each slot and, on a key with a
/// rate, one more start in its window (persisted with the claim, so a
/// restart keeps the window).
fn start(book: &mut Book, slots: &Slots, message_id: &str, now: Millis) -> GateClaim {
    book.hold(slots);
    let rate_start = slots.key.as_ref().and_then(|key| {
        let k = book.key(&slots.user_id, key);
        let rate = k.limits.rate?;
        k.window.record(now, rate);
        Some((
            slots.user_id.clone(),
            key.clone(),
            now - k.limits.period_ms(),
        ))
    });
    GateClaim {
        message_id: message_id.to_string(),
        rate_start,
    }
}

/// An attempt is over: frees its slots and marks what waited on them (its
/// queue, its key and the queues waiting on the key, and the user's lines
/// held back by the global parallelism).
pub(super) fn release(book: &mut Book, slots: &Slots) {
    book.free(slots);
    let user_id = &slots.user_id;
    if let Some(q) = &slots.queue {
        book.mark(queue_gate(user_id, q));
    }
    if let Some(key) = &slots.key {
        book.wake_waiters(user_id, key);
        book.mark(key_gate(user_id, key));
    }
    let global_max = book.global_max;
    let user = book.user(user_id);
    if user.in_flight < global_max {
        let blocked: Vec<_> = user.blocked.drain().collect();
        blocked.into_iter().for_each(|g| book.mark(g));
    }
}
