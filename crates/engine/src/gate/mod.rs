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
//!
//! Layout: `book` holds the counters, marks and timers (no IO); `rules`
//! decides over the book and what the store showed (pure, unit-tested);
//! `task` is the loop that reads and claims in the store around the rules;
//! `admin` is the queue and key API. `Gate` keeps the book behind a std
//! `Mutex` that every method takes and lets go of before any await.
//!
//! In a cluster only the leader runs the gate (`crate::cluster`). Each
//! time a node becomes leader its gate starts a new *term* with an empty
//! book, loads every line from the store, and inherits the counts of gated
//! deliveries still in flight from earlier terms (another node's, or its
//! own from before it last lost the lead) until they finish. Deliveries
//! started in an earlier term release nothing in the new book.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use qstash_core::clock::Millis;
use qstash_core::flow_control::FlowKey;
use qstash_core::gate::{GateClaim, GateLook, GateRef, GateSnapshot, GateView};
use qstash_core::message::Arrival;
use tokio::sync::Notify;

use crate::user_slots::UserSlots;

mod admin;
mod book;
mod rules;
mod task;

pub use admin::FlowKeyInfo;
pub use book::KeyRuntime;
pub(crate) use task::run;

use book::{Book, Slots};

/// The book behind a lock, and the task's wake-up. The lock is a std
/// `Mutex`: every method takes it, changes the book and lets go, never
/// across an await.
pub(crate) struct Gate {
    book: Mutex<Book>,
    wake: Notify,
    /// The current term: bumped each time the gate starts over.
    term: AtomicU64,
}

impl Gate {
    pub(crate) fn new(global_max: u32, user_slots: Arc<UserSlots>) -> Self {
        Self {
            book: Mutex::new(Book::with_user_slots(global_max, user_slots)),
            wake: Notify::new(),
            term: AtomicU64::new(0),
        }
    }

    /// Runs `f` with an answer to "how many gated deliveries has this user
    /// in flight", under the book's lock: the gate checks the per-user cap
    /// under it too, so a plain slot taken in `f` and a gated delivery
    /// admitted by the gate cannot both take the last place.
    pub(crate) fn with_gated<T>(&self, f: impl FnOnce(&dyn Fn(&str) -> usize) -> T) -> T {
        let book = self.book();
        f(&|user_id: &str| book.user_in_flight(user_id) as usize)
    }

    /// A plain delivery of `user_id` ended: lines that waited on the user's
    /// cap may start.
    pub(crate) fn user_freed(&self, user_id: &str) {
        if self.book().user_freed(user_id) {
            self.wake.notify_one();
        }
    }

    /// Starts a new term with an empty book; answers its number.
    fn start_term(&self) -> u64 {
        let mut book = self.book();
        *book = Book::with_user_slots(book.global_max, book.user_slots.clone());
        self.term.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// Counts the gated deliveries in flight that this term did not start;
    /// answers whether any remain.
    fn inherit(&self, keys: &[(String, String, u32)], users: &[(String, u32)]) -> bool {
        let mut book = self.book();
        let remain = book.inherit(keys, users);
        drop(book);
        self.wake.notify_one();
        remain
    }

    /// Every known line gets a look, and every key's settings are read
    /// again (a signal from another node may have been missed).
    pub fn mark_all(&self) {
        self.update(|book| book.mark_all());
    }

    /// Another node changed a key through the API.
    pub fn key_stale(&self, user_id: &str, key: &str, reset_at: Option<Millis>) {
        self.update(|book| book.key_stale(user_id, key, reset_at));
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().expect("gate book lock")
    }

    /// Changes the book, then wakes the task to look at what was marked.
    fn update(&self, change: impl FnOnce(&mut Book)) {
        change(&mut self.book());
        self.wake.notify_one();
    }

    /// Messages joined the lines of their queues and keys (plain arrivals
    /// are the scheduler's and are skipped).
    pub fn joined(&self, arrivals: &[Arrival]) {
        if arrivals.iter().all(Arrival::is_plain) {
            return;
        }
        self.update(|book| book.joined(arrivals));
    }

    /// A queue's configuration changed (upsert, pause, resume, delete).
    pub fn queue_changed(&self, user_id: &str, name: &str) {
        self.update(|book| book.queue_changed(user_id, name));
    }

    /// A key was changed through the API; `reset` restarts its rate window.
    pub fn key_changed(&self, key: &FlowKey, reset: bool, now: Millis) {
        self.update(|book| book.key_changed(key, reset, now));
    }

    /// Messages of `user_id` may have been cancelled: every line of the
    /// user gets another look (a cancelled head frees its place).
    pub fn user_changed(&self, user_id: &str) {
        self.update(|book| book.user_changed(user_id));
    }

    /// An attempt is over: free its slots and look at what waited on them.
    fn release(&self, slots: &Slots) {
        let capped = self.book().user_slots.cap().is_some();
        self.update(|book| rules::release(book, slots));
        if capped {
            // Plain messages of this user may have waited on its cap.
            self.book().user_slots.freed.notify_one();
        }
    }

    /// An attempt started in `term` is over; one of an earlier term frees
    /// nothing (the new book never counted it: it was inherited, and the
    /// inherited counts are read again from the store).
    fn release_in(&self, term: u64, slots: &Slots) {
        if term == self.term() {
            self.release(slots);
        } else {
            self.wake.notify_one();
        }
    }

    /// A key's live counters: deliveries in flight, starts in the current
    /// rate window, and when that window started (ms).
    fn key_runtime(&self, key: &FlowKey, now: Millis) -> KeyRuntime {
        self.book().key_runtime(key, now)
    }

    fn key_changes(&self, user_id: &str, key: &str) -> u64 {
        self.book().key_changes(user_id, key)
    }

    fn user_key_changes(&self, user_id: &str) -> HashMap<String, u64> {
        self.book().user_key_changes(user_id)
    }

    /// (max, in flight) of the user's gated deliveries.
    pub fn global_parallelism(&self, user_id: &str) -> (u32, u32) {
        let book = self.book();
        (book.global_max, book.user_in_flight(user_id))
    }

    /// Every queue and key of the store, each marked for a look.
    fn load(&self, snapshot: GateSnapshot) {
        self.book().load(snapshot);
    }

    fn pick(&self, now: Millis, free: u32) -> Vec<GateLook> {
        rules::pick(&mut self.book(), now, free)
    }

    fn decide(&self, views: Vec<GateView>, now: Millis, budget: usize) -> Vec<(GateClaim, Slots)> {
        rules::decide(&mut self.book(), views, now, budget)
    }

    /// The claims of `admitted` are committed (or failed).
    fn claimed(&self, admitted: &[(GateClaim, Slots)]) {
        self.book().claimed(admitted.iter().map(|(_, slots)| slots));
    }

    /// Marks lines again (their look failed).
    fn remark(&self, gates: Vec<GateRef>) {
        let mut book = self.book();
        gates.into_iter().for_each(|g| book.mark(g));
    }

    fn has_marks(&self) -> bool {
        self.book().has_marks()
    }

    fn next_timer(&self) -> Option<Millis> {
        self.book().next_timer()
    }
}
