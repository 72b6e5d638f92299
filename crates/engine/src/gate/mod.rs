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

use std::collections::HashMap;
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
}

impl Gate {
    pub(crate) fn new(global_max: u32, user_slots: Arc<UserSlots>) -> Self {
        Self {
            book: Mutex::new(Book::with_user_slots(global_max, user_slots)),
            wake: Notify::new(),
        }
    }

    /// Gated deliveries of `user_id` in flight.
    pub(crate) fn gated_in_flight(&self, user_id: &str) -> usize {
        self.book().user_in_flight(user_id) as usize
    }

    /// A plain delivery of `user_id` ended: lines that waited on the user's
    /// cap may start.
    pub(crate) fn user_freed(&self, user_id: &str) {
        if self.book().user_freed(user_id) {
            self.wake.notify_one();
        }
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
