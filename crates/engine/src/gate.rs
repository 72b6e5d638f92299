//! The dispatch gate: when may a queued or flow-controlled message start?
//!
//! Such messages never enter the plain due-time index. Each queue and each
//! flow-control key has its own indexed line in the store; this module
//! keeps the small counters the limits need (deliveries in flight per
//! queue, key and user; each key's sliding rate window) and looks at a
//! line only when something may have changed for it:
//!
//! - a message joined it (publish, enqueue, batch, schedule),
//! - one of its deliveries finished (a slot freed),
//! - its own timer fired (the head becomes due, or the rate window
//!   reopens): one `BTreeSet` of (time, gate) and one task sleeping until
//!   the earliest,
//! - an API call changed it (pause, resume, pin, upsert, cancel).
//!
//! So a waiting message costs nothing until its line moves, and thousands
//! of idle keys cost one map entry each. Every look and every claim of a
//! round is batched into one store read and one store write.
//!
//! Rules: a queue's window is its first `parallelism` undelivered messages
//! in enqueue order; only those may start, so a message waiting for a
//! retry keeps its place (with parallelism 1, strict FIFO). A key lets at
//! most `parallelism` deliveries run and at most `rate` start in any
//! `period`; every attempt, retries included, passes the key. A user's
//! gated deliveries in flight never exceed the global parallelism.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use qstash_core::clock::Millis;
use qstash_core::flow_control::{FlowKey, FlowKeyChange};
use qstash_core::gate::{key_capacity, KeyLimits, RateWindow};
use qstash_core::gate::{GateClaim, GateConfig, GateLook, GateRef, GateView};
use qstash_core::message::Arrival;
use qstash_core::message::{CancelRequest, CancelResult};
use qstash_core::Message;
use qstash_store::StoreError;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::user_slots::UserSlots;
use crate::Engine;

/// Most gates looked at, and most messages started, in one round.
const ROUND: usize = 256;
/// Back-off after a store error.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// What `GET /v2/flowControl` shows of a key.
#[derive(Debug, Clone)]
pub struct FlowKeyInfo {
    pub key: FlowKey,
    /// Messages waiting for the key, not counting those already started.
    pub waiting: u64,
    pub runtime: KeyRuntime,
}

impl FlowKeyInfo {
    fn new(key: FlowKey, stored_waiting: u64, runtime: KeyRuntime) -> Self {
        Self {
            waiting: stored_waiting.saturating_sub(runtime.claiming.into()),
            key,
            runtime,
        }
    }
}

/// A key's counters that live in memory, for `GET /v2/flowControl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRuntime {
    pub in_flight: u32,
    /// Started but still pending in the store; subtract from its wait list.
    pub(crate) claiming: u32,
    /// Moves whenever `claiming` does.
    pub(crate) changes: u64,
    /// Starts in the current rate window.
    pub rate_count: u32,
    pub period_start: Millis,
}

#[derive(Debug, Default)]
struct KeyState {
    limits: KeyLimits,
    paused: bool,
    /// False until the store's configuration was read since the last
    /// change (a new message may have raised the limits).
    fresh: bool,
    in_flight: u32,
    /// Of `in_flight`, unqueued starts whose claim is not committed yet:
    /// the store still counts them as waiting.
    claiming: u32,
    /// Counts starts and committed claims, so a reader can tell whether
    /// `claiming` moved while it read the store.
    changes: u64,
    window: RateWindow,
    /// Queues whose head waits for this key.
    waiters: HashSet<GateRef>,
}

#[derive(Debug, Default)]
struct QueueState {
    /// None until read; reset when the queue is changed.
    parallelism: Option<u32>,
    paused: bool,
    in_flight: u32,
}

#[derive(Debug, Default)]
struct UserState {
    in_flight: u32,
    /// Gates held back by the global parallelism.
    blocked: HashSet<GateRef>,
}

#[derive(Debug, Default)]
struct Book {
    keys: HashMap<(String, String), KeyState>,
    queues: HashMap<(String, String), QueueState>,
    users: HashMap<String, UserState>,
    dirty: VecDeque<GateRef>,
    dirty_set: HashSet<GateRef>,
    timers: BTreeSet<(Millis, GateRef)>,
    timer_of: HashMap<GateRef, Millis>,
}

impl Book {
    fn mark(&mut self, gate: GateRef) {
        if self.dirty_set.insert(gate.clone()) {
            self.dirty.push_back(gate);
        }
    }

    fn set_timer(&mut self, gate: &GateRef, at: Millis) {
        if let Some(old) = self.timer_of.get(gate).copied() {
            if old <= at {
                return;
            }
            self.timers.remove(&(old, gate.clone()));
        }
        self.timer_of.insert(gate.clone(), at);
        self.timers.insert((at, gate.clone()));
    }

    fn fire_timers(&mut self, now: Millis) {
        while let Some((at, gate)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.timer_of.remove(&gate);
            self.mark(gate);
        }
    }

    fn key(&mut self, user_id: &str, key: &str) -> &mut KeyState {
        self.keys
            .entry((user_id.to_string(), key.to_string()))
            .or_default()
    }

    fn queue(&mut self, user_id: &str, name: &str) -> &mut QueueState {
        self.queues
            .entry((user_id.to_string(), name.to_string()))
            .or_default()
    }

    fn user(&mut self, user_id: &str) -> &mut UserState {
        self.users.entry(user_id.to_string()).or_default()
    }
}

/// What a delivery holds, to give back when its attempt is over.
#[derive(Debug, Clone)]
struct Slots {
    user_id: String,
    queue: Option<String>,
    key: Option<String>,
}

pub(crate) struct Gate {
    book: Mutex<Book>,
    wake: Notify,
    global_max: u32,
    /// `--max-in-flight-per-user`: a user's plain deliveries count against
    /// its cap together with its gated ones (`user_slots.rs`).
    user_slots: Arc<UserSlots>,
}

impl Gate {
    pub(crate) fn new(global_max: u32, user_slots: Arc<UserSlots>) -> Self {
        Self {
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            global_max: global_max.max(1),
            user_slots,
        }
    }

    /// Gated deliveries of `user_id` in flight.
    pub(crate) fn gated_in_flight(&self, user_id: &str) -> usize {
        self.book()
            .users
            .get(user_id)
            .map_or(0, |u| u.in_flight as usize)
    }

    /// A plain delivery of `user_id` ended: lines that waited on the user's
    /// cap may start.
    pub(crate) fn user_freed(&self, user_id: &str) {
        let mut book = self.book();
        let woken: Vec<GateRef> = book.user(user_id).blocked.drain().collect();
        if woken.is_empty() {
            return;
        }
        woken.into_iter().for_each(|g| book.mark(g));
        drop(book);
        self.wake.notify_one();
    }

    /// Whether `user` (with `gated` deliveries in flight) is at a limit:
    /// its global parallelism, or its per-user cap counting plain ones.
    fn user_full(&self, user_id: &str, gated: u32) -> bool {
        gated >= self.global_max
            || self
                .user_slots
                .cap()
                .is_some_and(|cap| gated as usize + self.user_slots.plain(user_id) >= cap)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().expect("gate book lock")
    }

    /// Messages joined the lines of their queues and keys (plain arrivals
    /// are the scheduler's and are skipped).
    pub fn joined(&self, arrivals: &[Arrival]) {
        if arrivals.iter().all(Arrival::is_plain) {
            return;
        }
        let mut book = self.book();
        for a in arrivals {
            if let Some(q) = &a.queue {
                book.mark(GateRef::Queue {
                    user_id: a.user_id.clone(),
                    name: q.clone(),
                });
            }
            if let Some(key) = &a.flow_control_key {
                book.key(&a.user_id, key).fresh = false;
                book.mark(GateRef::Key {
                    user_id: a.user_id.clone(),
                    key: key.clone(),
                });
            }
        }
        drop(book);
        self.wake.notify_one();
    }

    /// A queue's configuration changed (upsert, pause, resume, delete).
    pub fn queue_changed(&self, user_id: &str, name: &str) {
        let mut book = self.book();
        book.queue(user_id, name).parallelism = None;
        book.mark(GateRef::Queue {
            user_id: user_id.into(),
            name: name.into(),
        });
        drop(book);
        self.wake.notify_one();
    }

    /// A key was changed through the API; `reset` restarts its rate window.
    pub fn key_changed(&self, key: &FlowKey, reset: bool, now: Millis) {
        let mut book = self.book();
        let k = book.key(&key.user_id, &key.key);
        k.limits = key.limits;
        k.paused = key.paused;
        k.fresh = true;
        if reset {
            k.window.reset(now);
        }
        let waiters: Vec<_> = k.waiters.drain().collect();
        book.mark(GateRef::Key {
            user_id: key.user_id.clone(),
            key: key.key.clone(),
        });
        waiters.into_iter().for_each(|w| book.mark(w));
        drop(book);
        self.wake.notify_one();
    }

    /// Messages of `user_id` may have been cancelled: every line of the
    /// user gets another look (a cancelled head frees its place).
    pub fn user_changed(&self, user_id: &str) {
        let mut book = self.book();
        let gates: Vec<GateRef> = book
            .queues
            .keys()
            .filter(|(u, _)| u == user_id)
            .map(|(u, n)| GateRef::Queue {
                user_id: u.clone(),
                name: n.clone(),
            })
            .chain(
                book.keys
                    .keys()
                    .filter(|(u, _)| u == user_id)
                    .map(|(u, k)| GateRef::Key {
                        user_id: u.clone(),
                        key: k.clone(),
                    }),
            )
            .collect();
        gates.into_iter().for_each(|g| book.mark(g));
        drop(book);
        self.wake.notify_one();
    }

    /// A key's live counters: deliveries in flight, starts in the current
    /// rate window, and when that window started (ms).
    fn key_runtime(&self, key: &FlowKey, now: Millis) -> KeyRuntime {
        let mut book = self.book();
        let period = key.limits.period_ms();
        match book.keys.get_mut(&(key.user_id.clone(), key.key.clone())) {
            Some(k) => KeyRuntime {
                in_flight: k.in_flight,
                claiming: k.claiming,
                changes: k.changes,
                rate_count: k.window.count(now, period),
                period_start: k.window.period_start(now, period),
            },
            None => KeyRuntime {
                in_flight: 0,
                claiming: 0,
                changes: 0,
                rate_count: 0,
                period_start: key.rate_reset_at,
            },
        }
    }

    fn key_changes(&self, user_id: &str, key: &str) -> u64 {
        self.book()
            .keys
            .get(&(user_id.to_string(), key.to_string()))
            .map_or(0, |k| k.changes)
    }

    fn user_key_changes(&self, user_id: &str) -> HashMap<String, u64> {
        self.book()
            .keys
            .iter()
            .filter(|((u, _), _)| u == user_id)
            .map(|((_, key), k)| (key.clone(), k.changes))
            .collect()
    }

    /// The claims of `admitted` are committed (or failed): their unqueued
    /// key starts no longer wait in the store.
    fn claimed(&self, admitted: &[(GateClaim, Slots)]) {
        let mut book = self.book();
        for (_, slots) in admitted {
            if let (None, Some(key)) = (&slots.queue, &slots.key) {
                let k = book.key(&slots.user_id, key);
                k.claiming = k.claiming.saturating_sub(1);
                k.changes += 1;
            }
        }
    }

    /// (max, in flight) of the user's gated deliveries.
    pub fn global_parallelism(&self, user_id: &str) -> (u32, u32) {
        let in_flight = self.book().users.get(user_id).map_or(0, |u| u.in_flight);
        (self.global_max, in_flight)
    }

    /// An attempt is over: free its slots and look at what waited on them.
    fn release(&self, slots: &Slots) {
        let mut book = self.book();
        let mut wake = Vec::new();
        if let Some(q) = &slots.queue {
            let s = book.queue(&slots.user_id, q);
            s.in_flight = s.in_flight.saturating_sub(1);
            wake.push(GateRef::Queue {
                user_id: slots.user_id.clone(),
                name: q.clone(),
            });
        }
        if let Some(key) = &slots.key {
            let k = book.key(&slots.user_id, key);
            k.in_flight = k.in_flight.saturating_sub(1);
            wake.extend(k.waiters.drain());
            wake.push(GateRef::Key {
                user_id: slots.user_id.clone(),
                key: key.clone(),
            });
        }
        let user = book.user(&slots.user_id);
        user.in_flight = user.in_flight.saturating_sub(1);
        let gated = user.in_flight;
        if !self.user_full(&slots.user_id, gated) {
            wake.extend(book.user(&slots.user_id).blocked.drain());
        }
        wake.into_iter().for_each(|g| book.mark(g));
        drop(book);
        self.wake.notify_one();
        if self.user_slots.cap().is_some() {
            // Plain messages of this user may have waited on its cap.
            self.user_slots.freed.notify_one();
        }
    }
}

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

/// Takes marked lines that could start something now; lines that cannot
/// (paused, full, rate-limited, user at the global limit) are left
/// unmarked until whatever blocks them changes.
fn pick(gate: &Gate, now: Millis, free: u32) -> Vec<GateLook> {
    let mut book = gate.book();
    book.fire_timers(now);
    let mut looks = Vec::new();
    while looks.len() < ROUND {
        let Some(g) = book.dirty.pop_front() else {
            break;
        };
        book.dirty_set.remove(&g);
        let gated = book.user(g.user_id()).in_flight;
        if gate.user_full(g.user_id(), gated) {
            book.user(g.user_id()).blocked.insert(g);
            continue;
        }
        let in_flight = match &g {
            GateRef::Queue { user_id, name } => {
                let q = book.queue(user_id, name);
                if q.parallelism.is_some_and(|p| q.paused || q.in_flight >= p) {
                    continue;
                }
                0
            }
            GateRef::Key { user_id, key } => {
                let k = book.key(user_id, key);
                if k.fresh {
                    let cap = key_capacity(&k.limits, k.paused, k.in_flight, &mut k.window, now);
                    if cap.take == 0 {
                        if let Some(at) = cap.reopens_at {
                            book.set_timer(&g, at);
                        }
                        continue;
                    }
                }
                k.in_flight
            }
        };
        looks.push(GateLook {
            gate: g,
            in_flight,
            cap: free,
        });
    }
    looks
}

/// Chooses which candidates start, updating the counters; at most
/// `budget` in all.
fn decide(
    gate: &Gate,
    views: Vec<GateView>,
    now: Millis,
    mut budget: usize,
) -> Vec<(GateClaim, Slots)> {
    let mut book = gate.book();
    let mut out = Vec::new();
    // Keys first: a queue's head may wait on a key read in this round.
    let (keys, queues): (Vec<_>, Vec<_>) = views
        .into_iter()
        .partition(|v| matches!(v.gate, GateRef::Key { .. }));
    for view in keys.into_iter().chain(queues) {
        let user_id = view.gate.user_id().to_string();
        match (&view.gate, view.config) {
            (GateRef::Key { key, .. }, Some(GateConfig::Key(config))) => {
                let k = book.key(&user_id, key);
                k.limits = config.limits;
                k.paused = config.paused;
                k.fresh = true;
                let mut waiting = view.candidates.iter().peekable();
                let mut started = 0;
                while let Some(c) = waiting.peek() {
                    if c.due_at > now {
                        book.set_timer(&view.gate, c.due_at);
                        break;
                    }
                    if budget == 0 {
                        book.mark(view.gate.clone());
                        break;
                    }
                    if !user_has_room(&mut book, gate, &view.gate) {
                        break;
                    }
                    let k = book.key(&user_id, key);
                    let cap = key_capacity(&k.limits, k.paused, k.in_flight, &mut k.window, now);
                    if cap.take == 0 {
                        if let Some(at) = cap.reopens_at {
                            book.set_timer(&view.gate, at);
                        }
                        break;
                    }
                    let claim = start_on_key(&mut book, &user_id, key, c.id.clone(), now);
                    let k = book.key(&user_id, key);
                    k.claiming += 1;
                    k.changes += 1;
                    book.user(&user_id).in_flight += 1;
                    out.push((
                        claim,
                        Slots {
                            user_id: user_id.clone(),
                            queue: None,
                            key: Some(key.clone()),
                        },
                    ));
                    budget -= 1;
                    started += 1;
                    waiting.next();
                }
                // The look read as many as there was room for: there may
                // be more behind them.
                if started > 0 && started == view.candidates.len() {
                    book.mark(view.gate.clone());
                }
                // Queues whose head waits on this key get a look if the
                // key has room left.
                let k = book.key(&user_id, key);
                if key_capacity(&k.limits, k.paused, k.in_flight, &mut k.window, now).take > 0 {
                    let waiters: Vec<_> = k.waiters.drain().collect();
                    waiters.into_iter().for_each(|w| book.mark(w));
                }
            }
            (
                GateRef::Queue { name, .. },
                Some(GateConfig::Queue {
                    parallelism,
                    paused,
                }),
            ) => {
                let q = book.queue(&user_id, name);
                q.parallelism = Some(parallelism);
                q.paused = paused;
                if paused {
                    continue;
                }
                for c in view.candidates.iter().filter(|c| !c.active) {
                    if book.queue(&user_id, name).in_flight >= parallelism {
                        break;
                    }
                    if c.due_at > now {
                        book.set_timer(&view.gate, c.due_at);
                        continue;
                    }
                    if budget == 0 {
                        book.mark(view.gate.clone());
                        break;
                    }
                    if !user_has_room(&mut book, gate, &view.gate) {
                        break;
                    }
                    // A queued message with a flow-control key passes the
                    // key too; if the key is full, the queue waits on it.
                    if let Some(key) = &c.flow_control_key {
                        let key_gate = GateRef::Key {
                            user_id: user_id.clone(),
                            key: key.clone(),
                        };
                        let k = book.key(&user_id, key);
                        let cap =
                            key_capacity(&k.limits, k.paused, k.in_flight, &mut k.window, now);
                        if !k.fresh || cap.take == 0 {
                            let stale = !k.fresh;
                            k.waiters.insert(view.gate.clone());
                            if stale {
                                book.mark(key_gate);
                            } else if let Some(at) = cap.reopens_at {
                                book.set_timer(&key_gate, at);
                            }
                            continue;
                        }
                    }
                    let claim = match &c.flow_control_key {
                        Some(key) => start_on_key(&mut book, &user_id, key, c.id.clone(), now),
                        None => GateClaim {
                            message_id: c.id.clone(),
                            rate_start: None,
                        },
                    };
                    book.queue(&user_id, name).in_flight += 1;
                    book.user(&user_id).in_flight += 1;
                    out.push((
                        claim,
                        Slots {
                            user_id: user_id.clone(),
                            queue: Some(name.clone()),
                            key: c.flow_control_key.clone(),
                        },
                    ));
                    budget -= 1;
                }
            }
            // A key whose row is gone: nothing waits on it.
            _ => {}
        }
    }
    out
}

fn user_has_room(book: &mut Book, g: &Gate, gate: &GateRef) -> bool {
    let gated = book.user(gate.user_id()).in_flight;
    if g.user_full(gate.user_id(), gated) {
        book.user(gate.user_id()).blocked.insert(gate.clone());
        return false;
    }
    true
}

/// Counts a start on a key: one more in flight and, if it has a rate, one
/// more start in its window (persisted, so a restart keeps the window).
fn start_on_key(
    book: &mut Book,
    user_id: &str,
    key: &str,
    message_id: String,
    now: Millis,
) -> GateClaim {
    let k = book.key(user_id, key);
    k.in_flight += 1;
    let rate_start = k.limits.rate.map(|rate| {
        k.window.record(now, rate);
        (
            user_id.to_string(),
            key.to_string(),
            now - k.limits.period_ms(),
        )
    });
    GateClaim {
        message_id,
        rate_start,
    }
}

/// What the API asks of queues and keys: change the store, then tell the
/// gate, so the change takes effect at once.
impl Engine {
    pub async fn upsert_queue(
        &self,
        user_id: &str,
        name: &str,
        parallelism: u32,
        paused: bool,
    ) -> Result<(), StoreError> {
        self.store
            .upsert_queue(user_id, name, parallelism, paused, self.now())
            .await?;
        self.gate.queue_changed(user_id, name);
        Ok(())
    }

    /// False when the queue does not exist.
    pub async fn set_queue_paused(
        &self,
        user_id: &str,
        name: &str,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let found = self
            .store
            .set_queue_paused(user_id, name, paused, self.now())
            .await?;
        self.gate.queue_changed(user_id, name);
        Ok(found)
    }

    /// Deletes the queue and cancels its undelivered messages.
    pub async fn delete_queue(&self, user_id: &str, name: &str) -> Result<Option<u64>, StoreError> {
        let cancelled = self.store.delete_queue(user_id, name, self.now()).await?;
        self.gate.queue_changed(user_id, name);
        Ok(cancelled)
    }

    pub async fn change_flow_key(
        &self,
        user_id: &str,
        key: &str,
        change: FlowKeyChange,
    ) -> Result<FlowKey, StoreError> {
        let reset = matches!(change, FlowKeyChange::Pin { .. } | FlowKeyChange::ResetRate);
        let now = self.now();
        let k = self
            .store
            .change_flow_key(user_id, key, change, now)
            .await?;
        self.gate.key_changed(&k, reset, now);
        Ok(k)
    }

    /// A key, its wait list and its counters, as one consistent picture:
    /// the wait list is read from the store while starts are counted in
    /// memory, so a start committed during the read would otherwise show
    /// the message both in flight and waiting. Re-reads when that happened.
    pub async fn flow_key_info(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<FlowKeyInfo>, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let before = self.gate.key_changes(user_id, key);
            let Some((k, waiting)) = self.store.flow_key(user_id, key).await? else {
                return Ok(None);
            };
            let runtime = self.gate.key_runtime(&k, self.now());
            // Under a steady stream of starts, settle for a near picture.
            if runtime.changes == before || tries == 3 {
                return Ok(Some(FlowKeyInfo::new(k, waiting, runtime)));
            }
        }
    }

    /// Every key of the user; a key whose starts moved during the read is
    /// read again on its own.
    pub async fn flow_keys_info(&self, user_id: &str) -> Result<Vec<FlowKeyInfo>, StoreError> {
        let before = self.gate.user_key_changes(user_id);
        let mut infos = Vec::new();
        for (k, waiting) in self.store.flow_keys(user_id).await? {
            let runtime = self.gate.key_runtime(&k, self.now());
            if runtime.changes == before.get(&k.key).copied().unwrap_or(0) {
                infos.push(FlowKeyInfo::new(k, waiting, runtime));
            } else if let Some(info) = self.flow_key_info(user_id, &k.key).await? {
                infos.push(info);
            }
        }
        Ok(infos)
    }

    /// (max, in flight) of the user's queued and flow-controlled deliveries.
    pub fn global_parallelism(&self, user_id: &str) -> (u32, u32) {
        self.gate.global_parallelism(user_id)
    }

    /// Cancels messages; a cancelled message may have held a queue's head.
    pub async fn cancel(
        &self,
        user_id: &str,
        request: CancelRequest,
    ) -> Result<CancelResult, StoreError> {
        let result = self.store.cancel(user_id, request, self.now()).await?;
        if result.cancelled > 0 {
            self.gate.user_changed(user_id);
        }
        Ok(result)
    }
}
