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
            book.key(user_id, key).busy()
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
    if book.user_full(gate.user_id()) {
        book.user(gate.user_id()).blocked.insert(gate.clone());
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
    if !book.user_full(user_id) {
        let blocked: Vec<_> = book.user(user_id).blocked.drain().collect();
        blocked.into_iter().for_each(|g| book.mark(g));
    }
}

#[cfg(test)]
mod tests {
    use qstash_core::gate::KeyLimits;

    use super::*;

    const U: &str = "u";

    fn limits(parallelism: Option<u32>, rate: Option<u32>, period_secs: u64) -> KeyLimits {
        KeyLimits {
            parallelism,
            rate,
            period_secs,
            ..Default::default()
        }
    }

    fn flow_key(key: &str, limits: KeyLimits, paused: bool) -> FlowKey {
        FlowKey {
            user_id: U.into(),
            key: key.into(),
            limits,
            paused,
            rate_reset_at: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// A key's line as the store shows it: its waiting messages by due time.
    fn key_view(key: &str, limits: KeyLimits, candidates: Vec<Candidate>) -> GateView {
        GateView {
            gate: key_gate(U, key),
            config: Some(GateConfig::Key(flow_key(key, limits, false))),
            candidates,
        }
    }

    /// A queue's window as the store shows it: its first `parallelism`
    /// undelivered messages in enqueue order.
    fn queue_view(name: &str, parallelism: u32, candidates: Vec<Candidate>) -> GateView {
        GateView {
            gate: queue_gate(U, name),
            config: Some(GateConfig::Queue {
                parallelism,
                paused: false,
            }),
            candidates,
        }
    }

    fn due(id: &str, due_at: Millis) -> Candidate {
        Candidate {
            id: id.into(),
            active: false,
            due_at,
            flow_control_key: None,
        }
    }

    fn active(id: &str) -> Candidate {
        Candidate {
            active: true,
            ..due(id, 0)
        }
    }

    /// A queued message that also has a flow-control key.
    fn on_key(id: &str, key: &str) -> Candidate {
        Candidate {
            flow_control_key: Some(key.into()),
            ..due(id, 0)
        }
    }

    fn ids(admitted: &[(GateClaim, Slots)]) -> Vec<&str> {
        admitted
            .iter()
            .map(|(c, _)| c.message_id.as_str())
            .collect()
    }

    fn slots_of<'a>(admitted: &'a [(GateClaim, Slots)], id: &str) -> &'a Slots {
        let found = admitted.iter().find(|(c, _)| c.message_id == id);
        &found.expect("admitted").1
    }

    /// Takes every mark, in order.
    fn marks(book: &mut Book) -> Vec<GateRef> {
        std::iter::from_fn(|| book.next_mark()).collect()
    }

    fn looked(book: &mut Book, now: Millis) -> Vec<GateRef> {
        pick(book, now, 10).into_iter().map(|l| l.gate).collect()
    }

    fn q(name: &str) -> GateRef {
        queue_gate(U, name)
    }

    fn k(key: &str) -> GateRef {
        key_gate(U, key)
    }

    #[test]
    fn a_queue_with_parallelism_1_starts_nothing_while_its_head_is_in_flight() {
        let mut book = Book::new(10);
        let admitted = decide(
            &mut book,
            vec![queue_view("q", 1, vec![due("a", 0)])],
            0,
            10,
        );
        assert_eq!(ids(&admitted), ["a"]);
        let slots = slots_of(&admitted, "a").clone();
        assert_eq!(
            (slots.queue.as_deref(), slots.key.as_deref()),
            (Some("q"), None)
        );
        // The next message joins: the queue is known to be full.
        book.mark(q("q"));
        assert!(looked(&mut book, 0).is_empty());
        // Even if looked at, the window holds only the head in flight.
        let admitted = decide(
            &mut book,
            vec![queue_view("q", 1, vec![active("a")])],
            0,
            10,
        );
        assert!(admitted.is_empty());
        release(&mut book, &slots);
        assert_eq!(looked(&mut book, 0), [q("q")]);
        let admitted = decide(
            &mut book,
            vec![queue_view("q", 1, vec![due("b", 0)])],
            0,
            10,
        );
        assert_eq!(ids(&admitted), ["b"]);
    }

    #[test]
    fn a_retrying_head_blocks_its_queue_until_the_retry_is_due() {
        let mut book = Book::new(10);
        let view = || queue_view("q", 1, vec![due("a", 5_000)]);
        assert!(decide(&mut book, vec![view()], 1_000, 10).is_empty());
        assert_eq!(book.next_timer(), Some(5_000));
        assert!(looked(&mut book, 4_999).is_empty());
        assert_eq!(looked(&mut book, 5_000), [q("q")]);
        assert_eq!(book.next_timer(), None);
        assert_eq!(ids(&decide(&mut book, vec![view()], 5_000, 10)), ["a"]);
    }

    #[test]
    fn a_queue_runs_at_most_parallelism_counting_those_in_flight() {
        let mut book = Book::new(10);
        let first = decide(
            &mut book,
            vec![queue_view("q", 3, vec![due("a", 0)])],
            0,
            10,
        );
        assert_eq!(ids(&first), ["a"]);
        let window = vec![active("a"), due("b", 0), due("c", 0), due("d", 0)];
        let admitted = decide(&mut book, vec![queue_view("q", 3, window)], 0, 10);
        assert_eq!(ids(&admitted), ["b", "c"]);
        assert_eq!(book.queue(U, "q").in_flight, 3);
        book.mark(q("q"));
        assert!(looked(&mut book, 0).is_empty());
    }

    #[test]
    fn a_queue_skips_a_message_waiting_for_a_retry_when_parallelism_allows() {
        let mut book = Book::new(10);
        let window = vec![due("a", 9_000), due("b", 0)];
        let admitted = decide(&mut book, vec![queue_view("q", 2, window)], 0, 10);
        assert_eq!(ids(&admitted), ["b"]);
        assert_eq!(book.next_timer(), Some(9_000));
    }

    #[test]
    fn a_key_runs_at_most_parallelism_and_a_release_looks_again() {
        let mut book = Book::new(10);
        let view = key_view(
            "k",
            limits(Some(2), None, 1),
            vec![due("a", 0), due("b", 0), due("c", 0)],
        );
        let admitted = decide(&mut book, vec![view], 0, 10);
        assert_eq!(ids(&admitted), ["a", "b"]);
        assert!(admitted.iter().all(|(c, _)| c.rate_start.is_none()));
        // Full by parallelism: no timer, and no look until a delivery ends.
        assert_eq!(book.next_timer(), None);
        assert!(marks(&mut book).is_empty());
        book.mark(k("k"));
        assert!(looked(&mut book, 0).is_empty());
        release(&mut book, slots_of(&admitted, "a"));
        let looks = pick(&mut book, 0, 7);
        assert_eq!(looks.len(), 1);
        // The store reads no more than the key's room and the free slots.
        assert_eq!(
            (&looks[0].gate, looks[0].in_flight, looks[0].cap),
            (&k("k"), 1, 7)
        );
    }

    #[test]
    fn a_key_rate_is_a_sliding_window_reopened_by_a_timer() {
        let mut book = Book::new(10);
        let rate = limits(None, Some(2), 1);
        let a = decide(
            &mut book,
            vec![key_view("k", rate, vec![due("a", 0)])],
            0,
            10,
        );
        assert_eq!(a[0].0.rate_start, Some((U.into(), "k".into(), -1_000)));
        decide(
            &mut book,
            vec![key_view("k", rate, vec![due("b", 600)])],
            600,
            10,
        );
        marks(&mut book);
        let held = decide(
            &mut book,
            vec![key_view("k", rate, vec![due("c", 0)])],
            700,
            10,
        );
        assert!(held.is_empty());
        // One period after the oldest start, not at a fixed boundary.
        assert_eq!(book.next_timer(), Some(1_000));
        assert!(looked(&mut book, 999).is_empty());
        assert_eq!(looked(&mut book, 1_000), [k("k")]);
        let view = key_view("k", rate, vec![due("c", 0), due("d", 0)]);
        assert_eq!(ids(&decide(&mut book, vec![view], 1_000, 10)), ["c"]);
        assert_eq!(book.next_timer(), Some(1_600));
    }

    #[test]
    fn a_paused_queue_starts_nothing_until_it_is_changed() {
        let mut book = Book::new(10);
        let mut view = queue_view("q", 1, vec![due("a", 0)]);
        view.config = Some(GateConfig::Queue {
            parallelism: 1,
            paused: true,
        });
        assert!(decide(&mut book, vec![view], 0, 10).is_empty());
        book.mark(q("q"));
        assert!(looked(&mut book, 0).is_empty());
        book.queue_changed(U, "q");
        assert_eq!(looked(&mut book, 0), [q("q")]);
    }

    #[test]
    fn a_paused_key_starts_nothing_and_sets_no_timer_until_resumed() {
        let mut book = Book::new(10);
        let rate = limits(None, Some(1), 1);
        let mut view = key_view("k", rate, vec![due("a", 0)]);
        view.config = Some(GateConfig::Key(flow_key("k", rate, true)));
        assert!(decide(&mut book, vec![view], 0, 10).is_empty());
        assert_eq!(book.next_timer(), None);
        book.mark(k("k"));
        assert!(looked(&mut book, 0).is_empty());
        book.key_changed(&flow_key("k", rate, false), false, 0);
        assert_eq!(looked(&mut book, 0), [k("k")]);
        let view = key_view("k", rate, vec![due("a", 0)]);
        assert_eq!(ids(&decide(&mut book, vec![view], 0, 10)), ["a"]);
    }

    #[test]
    fn a_queue_head_waits_on_its_full_key_and_the_key_wakes_it_when_it_frees() {
        let mut book = Book::new(10);
        let one = limits(Some(1), None, 1);
        let x = decide(
            &mut book,
            vec![key_view("k", one, vec![due("x", 0)])],
            0,
            10,
        );
        marks(&mut book);
        let queue = || queue_view("q", 1, vec![on_key("a", "k")]);
        assert!(decide(&mut book, vec![queue()], 0, 10).is_empty());
        // Nothing to look at until the key's delivery ends.
        assert!(marks(&mut book).is_empty());
        assert_eq!(book.next_timer(), None);
        release(&mut book, slots_of(&x, "x"));
        let woken = marks(&mut book);
        assert!(woken.contains(&q("q")) && woken.contains(&k("k")));
        let admitted = decide(&mut book, vec![key_view("k", one, vec![]), queue()], 0, 10);
        assert_eq!(ids(&admitted), ["a"]);
        let slots = slots_of(&admitted, "a");
        assert_eq!(
            (slots.queue.as_deref(), slots.key.as_deref()),
            (Some("q"), Some("k"))
        );
        assert_eq!(
            (book.key(U, "k").in_flight, book.queue(U, "q").in_flight),
            (1, 1)
        );
    }

    #[test]
    fn a_queue_head_waits_on_a_rate_limited_key_until_its_window_reopens() {
        let mut book = Book::new(10);
        let rate = limits(None, Some(1), 1);
        decide(
            &mut book,
            vec![key_view("k", rate, vec![due("x", 0)])],
            0,
            10,
        );
        marks(&mut book);
        let queue = queue_view("q", 1, vec![on_key("a", "k")]);
        assert!(decide(&mut book, vec![queue], 100, 10).is_empty());
        assert_eq!(book.next_timer(), Some(1_000));
        assert_eq!(looked(&mut book, 1_000), [k("k")]);
        decide(&mut book, vec![key_view("k", rate, vec![])], 1_000, 10);
        assert_eq!(marks(&mut book), [q("q")]);
    }

    #[test]
    fn keys_are_decided_before_queues_so_a_head_on_an_unread_key_starts_in_one_round() {
        let mut book = Book::new(10);
        let queue = || queue_view("q", 1, vec![on_key("a", "k")]);
        // The key's settings were never read: the queue waits and the key
        // gets a look.
        assert!(decide(&mut book, vec![queue()], 0, 10).is_empty());
        assert_eq!(marks(&mut book), [k("k")]);
        let views = vec![queue(), key_view("k", KeyLimits::default(), vec![])];
        assert_eq!(ids(&decide(&mut book, views, 0, 10)), ["a"]);
    }

    #[test]
    fn global_parallelism_holds_a_users_lines_until_one_of_their_deliveries_ends() {
        let mut book = Book::new(2);
        let view = key_view(
            "k",
            KeyLimits::default(),
            vec![due("a", 0), due("b", 0), due("c", 0)],
        );
        let admitted = decide(&mut book, vec![view], 0, 10);
        assert_eq!(ids(&admitted), ["a", "b"]);
        assert_eq!(book.user_in_flight(U), 2);
        assert!(decide(
            &mut book,
            vec![queue_view("q", 1, vec![due("d", 0)])],
            0,
            10
        )
        .is_empty());
        book.mark(q("q"));
        assert!(looked(&mut book, 0).is_empty());
        // Another user is not held back.
        let other = GateView {
            gate: queue_gate("v", "q"),
            ..queue_view("q", 1, vec![due("e", 0)])
        };
        assert_eq!(ids(&decide(&mut book, vec![other], 0, 10)), ["e"]);
        release(&mut book, slots_of(&admitted, "a"));
        let woken = marks(&mut book);
        assert!(woken.contains(&q("q")) && woken.contains(&k("k")));
        assert_eq!(book.user_in_flight(U), 1);
    }

    #[test]
    fn free_slots_limit_a_round_and_what_is_left_is_looked_at_again() {
        let mut book = Book::new(10);
        let key = key_view(
            "k",
            KeyLimits::default(),
            vec![due("a", 0), due("b", 0), due("c", 0)],
        );
        let queue = queue_view("q", 5, vec![due("d", 0), due("e", 0)]);
        let admitted = decide(&mut book, vec![queue, key], 0, 2);
        assert_eq!(ids(&admitted), ["a", "b"]);
        assert_eq!(marks(&mut book), [k("k"), q("q")]);
    }

    #[test]
    fn a_key_that_started_all_it_read_is_looked_at_again() {
        let mut book = Book::new(10);
        let view = key_view("k", KeyLimits::default(), vec![due("a", 0), due("b", 0)]);
        assert_eq!(decide(&mut book, vec![view], 0, 10).len(), 2);
        assert_eq!(marks(&mut book), [k("k")]);
    }

    #[test]
    fn a_key_head_not_due_yet_sets_a_timer() {
        let mut book = Book::new(10);
        let view = key_view("k", KeyLimits::default(), vec![due("a", 500)]);
        assert!(decide(&mut book, vec![view], 0, 10).is_empty());
        assert_eq!(book.next_timer(), Some(500));
        assert!(marks(&mut book).is_empty());
    }

    #[test]
    fn a_key_whose_row_is_gone_starts_nothing() {
        let mut book = Book::new(10);
        let gone = GateView {
            gate: k("k"),
            config: None,
            candidates: vec![due("a", 0)],
        };
        assert!(decide(&mut book, vec![gone], 0, 10).is_empty());
        assert!(marks(&mut book).is_empty());
        assert_eq!((book.next_timer(), book.user_in_flight(U)), (None, 0));
    }

    #[test]
    fn a_key_start_counts_as_claiming_until_its_claim_is_committed() {
        let mut book = Book::new(10);
        let view = key_view("k", KeyLimits::default(), vec![due("a", 0)]);
        let admitted = decide(&mut book, vec![view], 0, 10);
        let key = flow_key("k", KeyLimits::default(), false);
        let runtime = book.key_runtime(&key, 0);
        assert_eq!(
            (runtime.in_flight, runtime.claiming, runtime.changes),
            (1, 1, 1)
        );
        book.claimed(admitted.iter().map(|(_, s)| s));
        let runtime = book.key_runtime(&key, 0);
        assert_eq!(
            (runtime.in_flight, runtime.claiming, runtime.changes),
            (1, 0, 2)
        );
    }

    #[test]
    fn a_key_that_may_have_new_limits_is_looked_at_even_when_full() {
        let mut book = Book::new(10);
        let one = limits(Some(1), None, 1);
        decide(
            &mut book,
            vec![key_view("k", one, vec![due("x", 0)])],
            0,
            10,
        );
        marks(&mut book);
        book.mark(k("k"));
        assert!(looked(&mut book, 0).is_empty());
        book.key(U, "k").fresh = false;
        book.mark(k("k"));
        assert_eq!(looked(&mut book, 0), [k("k")]);
    }

    #[test]
    fn a_round_looks_at_no_more_than_round_lines() {
        let mut book = Book::new(10);
        for i in 0..ROUND + 5 {
            book.mark(q(&format!("q{i}")));
        }
        assert_eq!(pick(&mut book, 0, 10).len(), ROUND);
        assert_eq!(marks(&mut book).len(), 5);
    }

    #[test]
    fn seeded_in_flight_counts_hold_back_starts_until_released() {
        let mut book = Book::new(10);
        let seeded = Slots {
            user_id: U.into(),
            queue: Some("q".into()),
            key: Some("k".into()),
        };
        book.hold(&seeded);
        let one = limits(Some(1), None, 1);
        let views = vec![
            key_view("k", one, vec![due("b", 0)]),
            queue_view("q", 1, vec![due("c", 0)]),
        ];
        assert!(decide(&mut book, views, 0, 10).is_empty());
        release(&mut book, &seeded);
        assert_eq!((book.user_in_flight(U), book.key(U, "k").in_flight), (0, 0));
        let views = vec![
            key_view("k", one, vec![due("b", 0)]),
            queue_view("q", 1, vec![due("c", 0)]),
        ];
        assert_eq!(ids(&decide(&mut book, views, 0, 10)), ["b", "c"]);
    }
}
