//! The gate's memory: the counters its limits need and the lines it must
//! look at. No IO and no clock (whoever holds the book passes `now`).
//!
//! Everything in it can be rebuilt from the store: queue and key settings
//! are rows, a key's rate window is its recorded starts, and the in-flight
//! counts follow the messages claimed in flight. So a book can be thrown
//! away and built again: `Book::new`, `load` a snapshot, and `hold` the
//! slots of each gated delivery still in flight.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use qstash_core::clock::Millis;
use qstash_core::flow_control::FlowKey;
use qstash_core::gate::{key_capacity, Capacity, GateRef, GateSnapshot, KeyLimits, RateWindow};
use qstash_core::message::Arrival;

use crate::user_slots::UserSlots;

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
    /// Deliveries this book did not start that are still in flight: those
    /// of an earlier leader (another node, or this one before it lost the
    /// lead). They count against the limits until they finish.
    pub inherited: u32,
}

impl KeyState {
    /// Takes the settings the store holds; the key is fresh until the
    /// next message or API call may change them.
    pub fn configure(&mut self, key: &FlowKey) {
        self.limits = key.limits;
        self.paused = key.paused;
        self.fresh = true;
    }

    /// Deliveries in flight on the key: started here or inherited.
    pub fn busy(&self) -> u32 {
        self.in_flight + self.inherited
    }

    /// How many more may start now, and when the rate lets one more.
    pub fn capacity(&mut self, now: Millis) -> Capacity {
        let busy = self.busy();
        key_capacity(&self.limits, self.paused, busy, &mut self.window, now)
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
    /// Gated deliveries of an earlier leader still in flight.
    pub inherited: u32,
    /// Gates held back by the global parallelism.
    pub blocked: HashSet<GateRef>,
}

impl UserState {
    /// Gated deliveries in flight: started here or inherited.
    pub fn busy(&self) -> u32 {
        self.in_flight + self.inherited
    }
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
pub(super) struct Book {
    /// Most gated deliveries of one user in flight.
    pub global_max: u32,
    /// `--max-in-flight-per-user`: a user's plain deliveries (counted
    /// there) and gated ones (counted here) share one cap.
    pub user_slots: Arc<UserSlots>,
    keys: HashMap<(String, String), KeyState>,
    queues: HashMap<(String, String), QueueState>,
    users: HashMap<String, UserState>,
    marks: Marks,
    timers: Timers,
}

impl Book {
    /// A book with no per-user cap (the rules' unit tests).
    #[cfg(test)]
    pub fn new(global_max: u32) -> Self {
        Self::with_user_slots(global_max, Arc::new(UserSlots::new(None, Vec::new())))
    }

    pub fn with_user_slots(global_max: u32, user_slots: Arc<UserSlots>) -> Self {
        Self {
            global_max: global_max.max(1),
            user_slots,
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

    /// The user's gated deliveries in flight (inherited ones included).
    pub fn user_in_flight(&self, user_id: &str) -> u32 {
        self.users.get(user_id).map_or(0, UserState::busy)
    }

    /// Takes the counts of gated deliveries in flight that this book did
    /// not start (a new leader's predecessors' deliveries), replacing the
    /// previous counts. Lines whose count went down are marked, as a
    /// release would. Answers whether any remain, to count them again
    /// later.
    pub fn inherit(&mut self, keys: &[(String, String, u32)], users: &[(String, u32)]) -> bool {
        let keys: HashMap<(&str, &str), u32> = keys
            .iter()
            .map(|(u, k, n)| ((u.as_str(), k.as_str()), *n))
            .collect();
        let users: HashMap<&str, u32> = users.iter().map(|(u, n)| (u.as_str(), *n)).collect();
        let mut freed_keys = Vec::new();
        for ((user, key), state) in self.keys.iter_mut() {
            let now = keys
                .get(&(user.as_str(), key.as_str()))
                .copied()
                .unwrap_or(0);
            if now < state.inherited {
                freed_keys.push((user.clone(), key.clone()));
            }
            state.inherited = now;
        }
        for ((user, key), n) in &keys {
            self.key(user, key).inherited = *n;
        }
        let mut freed_users = Vec::new();
        for (user, state) in self.users.iter_mut() {
            let now = users.get(user.as_str()).copied().unwrap_or(0);
            if now < state.inherited {
                freed_users.push(user.clone());
            }
            state.inherited = now;
        }
        for (user, n) in &users {
            self.user(user).inherited = *n;
        }
        for (user, key) in freed_keys {
            self.wake_waiters(&user, &key);
            self.mark(key_gate(&user, &key));
        }
        for user in freed_users {
            let blocked: Vec<_> = self.user(&user).blocked.drain().collect();
            blocked.into_iter().for_each(|g| self.mark(g));
        }
        !keys.is_empty() || !users.is_empty()
    }

    /// Every known line gets a look (something may have changed that no
    /// signal told of).
    pub fn mark_all(&mut self) {
        let queues: Vec<GateRef> = self.queues.keys().map(|(u, n)| queue_gate(u, n)).collect();
        let keys: Vec<GateRef> = self.keys.keys().map(|(u, k)| key_gate(u, k)).collect();
        for (_, k) in self.keys.iter_mut() {
            k.fresh = false;
        }
        queues.into_iter().chain(keys).for_each(|g| self.mark(g));
    }

    /// Another node changed a key: its settings are read again, and its
    /// rate window restarts when `reset_at` is given.
    pub fn key_stale(&mut self, user_id: &str, key: &str, reset_at: Option<Millis>) {
        let k = self.key(user_id, key);
        k.fresh = false;
        if let Some(at) = reset_at {
            k.window.reset(at);
        }
        self.mark(key_gate(user_id, key));
        self.wake_waiters(user_id, key);
    }

    /// Whether the user may start no more gated deliveries: its global
    /// parallelism is taken, or its per-user cap counting plain ones.
    pub fn user_full(&mut self, user_id: &str) -> bool {
        let busy = self.user(user_id).busy();
        busy >= self.global_max
            || self
                .user_slots
                .cap()
                .is_some_and(|cap| busy as usize + self.user_slots.plain(user_id) >= cap)
    }

    /// A plain delivery of the user ended: its lines held back by the cap
    /// get a look. Answers whether there were any.
    pub fn user_freed(&mut self, user_id: &str) -> bool {
        let woken: Vec<GateRef> = self.user(user_id).blocked.drain().collect();
        let any = !woken.is_empty();
        woken.into_iter().for_each(|g| self.mark(g));
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_key(key: &str, rate: Option<u32>, rate_reset_at: Millis) -> FlowKey {
        FlowKey {
            user_id: "u".into(),
            key: key.into(),
            limits: KeyLimits {
                rate,
                ..Default::default()
            },
            paused: false,
            rate_reset_at,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn marks(book: &mut Book) -> Vec<GateRef> {
        std::iter::from_fn(|| book.next_mark()).collect()
    }

    fn arrival(user_id: &str, queue: Option<&str>, key: Option<&str>) -> Arrival {
        Arrival {
            user_id: user_id.into(),
            due_at: 0,
            queue: queue.map(Into::into),
            flow_control_key: key.map(Into::into),
        }
    }

    #[test]
    fn a_line_marked_twice_is_looked_at_once_in_mark_order() {
        let mut book = Book::new(1);
        book.mark(queue_gate("u", "b"));
        book.mark(queue_gate("u", "a"));
        book.mark(queue_gate("u", "b"));
        assert!(book.has_marks());
        assert_eq!(
            marks(&mut book),
            [queue_gate("u", "b"), queue_gate("u", "a")]
        );
        assert!(!book.has_marks());
    }

    #[test]
    fn a_line_keeps_only_its_earliest_timer() {
        let mut book = Book::new(1);
        let (a, b) = (queue_gate("u", "a"), key_gate("u", "b"));
        book.set_timer(&a, 500);
        book.set_timer(&a, 300);
        book.set_timer(&a, 400);
        book.set_timer(&b, 350);
        assert_eq!(book.next_timer(), Some(300));
        book.fire_timers(299);
        assert!(!book.has_marks());
        book.fire_timers(300);
        assert_eq!(marks(&mut book), [a]);
        assert_eq!(book.next_timer(), Some(350));
        book.fire_timers(1_000);
        assert_eq!(marks(&mut book), [b]);
        assert_eq!(book.next_timer(), None);
    }

    #[test]
    fn loading_a_snapshot_marks_every_line_and_restores_rate_windows() {
        let mut book = Book::new(1);
        let key = flow_key("k", Some(5), 150);
        book.load(GateSnapshot {
            queues: vec![("u".into(), "q".into())],
            keys: vec![(key.clone(), vec![100, 200, 300])],
        });
        assert_eq!(marks(&mut book), [queue_gate("u", "q"), key_gate("u", "k")]);
        assert!(book.key("u", "k").fresh);
        // The start before the last reset does not count.
        let runtime = book.key_runtime(&key, 400);
        assert_eq!((runtime.rate_count, runtime.period_start), (2, 200));
    }

    #[test]
    fn joining_messages_mark_their_lines_and_make_their_keys_stale() {
        let mut book = Book::new(1);
        book.key("u", "k").fresh = true;
        book.joined(&[arrival("u", Some("q"), Some("k")), arrival("u", None, None)]);
        assert_eq!(marks(&mut book), [queue_gate("u", "q"), key_gate("u", "k")]);
        assert!(!book.key("u", "k").fresh);
    }

    #[test]
    fn changing_a_queue_forgets_its_settings_and_marks_it() {
        let mut book = Book::new(1);
        book.queue("u", "q").parallelism = Some(1);
        book.queue("u", "q").paused = true;
        assert!(book.queue("u", "q").is_shut());
        book.queue_changed("u", "q");
        assert!(!book.queue("u", "q").is_shut());
        assert_eq!(marks(&mut book), [queue_gate("u", "q")]);
    }

    #[test]
    fn changing_a_key_takes_its_settings_resets_its_window_and_wakes_its_waiters() {
        let mut book = Book::new(1);
        let key = flow_key("k", Some(2), 0);
        book.key("u", "k").window.record(100, 2);
        book.key("u", "k").waiters.insert(queue_gate("u", "q"));
        book.key_changed(&key, false, 200);
        assert_eq!(book.key_runtime(&key, 200).rate_count, 1);
        assert_eq!(marks(&mut book), [key_gate("u", "k"), queue_gate("u", "q")]);
        assert!(book.key("u", "k").waiters.is_empty());
        let k = book.key("u", "k");
        assert_eq!((k.limits.rate, k.fresh), (Some(2), true));
        book.key_changed(&key, true, 300);
        let runtime = book.key_runtime(&key, 300);
        assert_eq!((runtime.rate_count, runtime.period_start), (0, 300));
    }

    #[test]
    fn a_users_change_marks_only_that_users_lines() {
        let mut book = Book::new(1);
        book.queue("u", "q");
        book.key("u", "k");
        book.queue("v", "q");
        book.user_changed("u");
        let mut marked = marks(&mut book);
        marked.sort();
        assert_eq!(marked, [queue_gate("u", "q"), key_gate("u", "k")]);
    }

    #[test]
    fn hold_and_free_count_every_slot_of_a_delivery() {
        let mut book = Book::new(1);
        let slots = Slots {
            user_id: "u".into(),
            queue: Some("q".into()),
            key: Some("k".into()),
        };
        book.hold(&slots);
        book.hold(&slots);
        let counts = |b: &mut Book| {
            (
                b.queue("u", "q").in_flight,
                b.key("u", "k").in_flight,
                b.user_in_flight("u"),
            )
        };
        assert_eq!(counts(&mut book), (2, 2, 2));
        book.free(&slots);
        book.free(&slots);
        book.free(&slots);
        assert_eq!(counts(&mut book), (0, 0, 0));
    }

    #[test]
    fn an_unknown_key_reports_no_starts_since_its_last_reset() {
        let mut book = Book::new(1);
        let runtime = book.key_runtime(&flow_key("k", Some(1), 700), 1_000);
        assert_eq!(
            runtime,
            KeyRuntime {
                in_flight: 0,
                claiming: 0,
                changes: 0,
                rate_count: 0,
                period_start: 700,
            }
        );
        assert_eq!(book.key_changes("u", "k"), 0);
        assert!(book.user_key_changes("u").is_empty());
    }
}
