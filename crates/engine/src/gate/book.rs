//! The gate's memory: the counters its limits need and the lines it must
//! look at. No IO and no clock (whoever holds the book passes `now`).
//!
//! Everything in it can be rebuilt from the store: queue and key settings
//! are rows, a key's rate window is its recorded starts, and the in-flight
//! counts follow the messages claimed in flight. So a book can be thrown
//! away and built again: `Book::new`, `load` a snapshot, and `hold` the
//! slots of each gated delivery still in flight.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use qstash_core::clock::Millis;
use qstash_core::flow_control::FlowKey;
use qstash_core::gate::{key_capacity, Capacity, GateRef, GateSnapshot, KeyLimits, RateWindow};
use qstash_core::message::Arrival;

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
pub(super) struct KeyState {
    pub limits: KeyLimits,
    pub paused: bool,
    /// False until the store's configuration was read since the last
    /// change (a new message may have raised the limits).
    pub fresh: bool,
    pub in_flight: u32,
    /// Of `in_flight`, unqueued starts whose claim is not committed yet:
    /// the store still counts them as waiting.
    pub claiming: u32,
    /// Counts starts and committed claims, so a reader can tell whether
    /// `claiming` moved while it read the store.
    pub changes: u64,
    pub window: RateWindow,
    /// Queues whose head waits for this key.
    pub waiters: HashSet<GateRef>,
}

impl KeyState {
    /// Takes the settings the store holds; the key is fresh until the
    /// next message or API call may change them.
    pub fn configure(&mut self, key: &FlowKey) {
        self.limits = key.limits;
        self.paused = key.paused;
        self.fresh = true;
    }

    /// How many more may start now, and when the rate lets one more.
    pub fn capacity(&mut self, now: Millis) -> Capacity {
        key_capacity(
            &self.limits,
            self.paused,
            self.in_flight,
            &mut self.window,
            now,
        )
    }
}

#[derive(Debug, Default)]
pub(super) struct QueueState {
    /// None until read; reset when the queue is changed.
    pub parallelism: Option<u32>,
    pub paused: bool,
    pub in_flight: u32,
}

impl QueueState {
    /// Known to start nothing now: paused, or its parallelism is taken.
    /// A queue whose settings are unknown may start something.
    pub fn is_shut(&self) -> bool {
        self.parallelism
            .is_some_and(|p| self.paused || self.in_flight >= p)
    }
}

#[derive(Debug, Default)]
pub(super) struct UserState {
    pub in_flight: u32,
    /// Gates held back by the global parallelism.
    pub blocked: HashSet<GateRef>,
}

/// What a delivery holds, to give back when its attempt is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slots {
    pub user_id: String,
    pub queue: Option<String>,
    pub key: Option<String>,
}

/// Lines to look at, each once, in the order they were marked.
#[derive(Debug, Default)]
struct Marks {
    order: VecDeque<GateRef>,
    set: HashSet<GateRef>,
}

impl Marks {
    fn mark(&mut self, gate: GateRef) {
        if self.set.insert(gate.clone()) {
            self.order.push_back(gate);
        }
    }

    fn pop(&mut self) -> Option<GateRef> {
        let gate = self.order.pop_front()?;
        self.set.remove(&gate);
        Some(gate)
    }
}

/// When to look at a line again by itself (its head becomes due, its rate
/// window reopens): at most one time per line, the earliest.
#[derive(Debug, Default)]
struct Timers {
    by_time: BTreeSet<(Millis, GateRef)>,
    of: HashMap<GateRef, Millis>,
}

impl Timers {
    fn set(&mut self, gate: &GateRef, at: Millis) {
        if let Some(old) = self.of.get(gate).copied() {
            if old <= at {
                return;
            }
            self.by_time.remove(&(old, gate.clone()));
        }
        self.of.insert(gate.clone(), at);
        self.by_time.insert((at, gate.clone()));
    }

    /// The next line whose time has come by `now`, forgetting its timer.
    fn pop_due(&mut self, now: Millis) -> Option<GateRef> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (_, gate) = self.by_time.pop_first()?;
        self.of.remove(&gate);
        Some(gate)
    }

    fn next(&self) -> Option<Millis> {
        self.by_time.first().map(|(at, _)| *at)
    }
}

pub(super) fn queue_gate(user_id: &str, name: &str) -> GateRef {
    GateRef::Queue {
        user_id: user_id.into(),
        name: name.into(),
    }
}

pub(super) fn key_gate(user_id: &str, key: &str) -> GateRef {
    GateRef::Key {
        user_id: user_id.into(),
        key: key.into(),
    }
}

/// Every queue, key and user the gate has seen, the lines marked for a
/// look and the timers.
#[derive(Debug)]
pub(super) struct Book {
    /// Most gated deliveries of one user in flight.
    pub global_max: u32,
    keys: HashMap<(String, String), KeyState>,
    queues: HashMap<(String, String), QueueState>,
    users: HashMap<String, UserState>,
    marks: Marks,
    timers: Timers,
}

impl Book {
    pub fn new(global_max: u32) -> Self {
        Self {
            global_max: global_max.max(1),
            keys: HashMap::new(),
            queues: HashMap::new(),
            users: HashMap::new(),
            marks: Marks::default(),
            timers: Timers::default(),
        }
    }

    pub fn key(&mut self, user_id: &str, key: &str) -> &mut KeyState {
        self.keys
            .entry((user_id.to_string(), key.to_string()))
            .or_default()
    }

    pub fn queue(&mut self, user_id: &str, name: &str) -> &mut QueueState {
        self.queues
            .entry((user_id.to_string(), name.to_string()))
            .or_default()
    }

    pub fn user(&mut self, user_id: &str) -> &mut UserState {
        self.users.entry(user_id.to_string()).or_default()
    }

    /// Asks for a look at a line (once, however often it is marked).
    pub fn mark(&mut self, gate: GateRef) {
        self.marks.mark(gate);
    }

    /// The line marked longest ago, unmarking it.
    pub fn next_mark(&mut self) -> Option<GateRef> {
        self.marks.pop()
    }

    pub fn has_marks(&self) -> bool {
        !self.marks.order.is_empty()
    }

    /// Asks for a look at a line at `at`, unless one is due earlier.
    pub fn set_timer(&mut self, gate: &GateRef, at: Millis) {
        self.timers.set(gate, at);
    }

    /// Marks the lines whose timers are due by `now`.
    pub fn fire_timers(&mut self, now: Millis) {
        while let Some(gate) = self.timers.pop_due(now) {
            self.mark(gate);
        }
    }

    /// When the earliest timer is due.
    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.next()
    }

    /// Takes every queue and key of the store (at start) and marks each
    /// line for one look; keys get their settings and rate windows.
    pub fn load(&mut self, snapshot: GateSnapshot) {
        for (user_id, name) in snapshot.queues {
            self.queue(&user_id, &name);
            self.mark(GateRef::Queue { user_id, name });
        }
        for (key, starts) in snapshot.keys {
            let k = self.key(&key.user_id, &key.key);
            k.configure(&key);
            k.window = RateWindow::from_starts(starts, key.rate_reset_at);
            self.mark(GateRef::Key {
                user_id: key.user_id,
                key: key.key,
            });
        }
    }

    /// Counts a delivery in flight on the queue, key and user it holds.
    pub fn hold(&mut self, slots: &Slots) {
        if let Some(q) = &slots.queue {
            self.queue(&slots.user_id, q).in_flight += 1;
        }
        if let Some(key) = &slots.key {
            self.key(&slots.user_id, key).in_flight += 1;
        }
        self.user(&slots.user_id).in_flight += 1;
    }

    /// Gives back what `hold` counted.
    pub fn free(&mut self, slots: &Slots) {
        if let Some(q) = &slots.queue {
            let s = self.queue(&slots.user_id, q);
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        if let Some(key) = &slots.key {
            let k = self.key(&slots.user_id, key);
            k.in_flight = k.in_flight.saturating_sub(1);
        }
        let user = self.user(&slots.user_id);
        user.in_flight = user.in_flight.saturating_sub(1);
    }

    /// Marks the queues whose head waited for the key.
    pub fn wake_waiters(&mut self, user_id: &str, key: &str) {
        let waiters: Vec<_> = self.key(user_id, key).waiters.drain().collect();
        waiters.into_iter().for_each(|w| self.mark(w));
    }

    /// Messages joined the lines of their queues and keys; a message may
    /// carry new limits for its key, so the key's settings are read again.
    pub fn joined(&mut self, arrivals: &[Arrival]) {
        for a in arrivals {
            if let Some(q) = &a.queue {
                self.mark(queue_gate(&a.user_id, q));
            }
            if let Some(key) = &a.flow_control_key {
                self.key(&a.user_id, key).fresh = false;
                self.mark(key_gate(&a.user_id, key));
            }
        }
    }

    /// A queue's configuration changed (upsert, pause, resume, delete).
    pub fn queue_changed(&mut self, user_id: &str, name: &str) {
        self.queue(user_id, name).parallelism = None;
        self.mark(queue_gate(user_id, name));
    }

    /// A key was changed through the API; `reset` restarts its rate window.
    pub fn key_changed(&mut self, key: &FlowKey, reset: bool, now: Millis) {
        let k = self.key(&key.user_id, &key.key);
        k.configure(key);
        if reset {
            k.window.reset(now);
        }
        self.mark(key_gate(&key.user_id, &key.key));
        self.wake_waiters(&key.user_id, &key.key);
    }

    /// Marks every line of the user (a cancelled head frees its place).
    pub fn user_changed(&mut self, user_id: &str) {
        let queues = self.queues.keys().filter(|(u, _)| u == user_id);
        let queues = queues.map(|(u, n)| queue_gate(u, n));
        let keys = self.keys.keys().filter(|(u, _)| u == user_id);
        let keys = keys.map(|(u, k)| key_gate(u, k));
        let gates: Vec<GateRef> = queues.chain(keys).collect();
        gates.into_iter().for_each(|g| self.mark(g));
    }

    /// The claims of these starts are committed (or failed): their
    /// unqueued key starts no longer wait in the store.
    pub fn claimed<'a>(&mut self, started: impl IntoIterator<Item = &'a Slots>) {
        for slots in started {
            if let (None, Some(key)) = (&slots.queue, &slots.key) {
                let k = self.key(&slots.user_id, key);
                k.claiming = k.claiming.saturating_sub(1);
                k.changes += 1;
            }
        }
    }

    /// A key's live counters: deliveries in flight, starts in the current
    /// rate window, and when that window started (ms).
    pub fn key_runtime(&mut self, key: &FlowKey, now: Millis) -> KeyRuntime {
        let period = key.limits.period_ms();
        match self.keys.get_mut(&(key.user_id.clone(), key.key.clone())) {
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

    pub fn key_changes(&self, user_id: &str, key: &str) -> u64 {
        self.keys
            .get(&(user_id.to_string(), key.to_string()))
            .map_or(0, |k| k.changes)
    }

    pub fn user_key_changes(&self, user_id: &str) -> HashMap<String, u64> {
        self.keys
            .iter()
            .filter(|((u, _), _)| u == user_id)
            .map(|((_, key), k)| (key.clone(), k.changes))
            .collect()
    }

    /// The user's gated deliveries in flight.
    pub fn user_in_flight(&self, user_id: &str) -> u32 {
        self.users.get(user_id).map_or(0, |u| u.in_flight)
    }
}
