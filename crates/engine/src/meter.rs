//! Prometheus metrics recorded by the engine, through the `metrics` facade
//! (the binary installs the exporter; without one these cost nothing).
//! Names and labels are listed in README.md, "Operating it". Labels stay
//! bounded: kinds and outcomes are fixed words; the user id is added only
//! when `--metrics-per-user` asks for it (users are configured, so few).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Histogram};
use qstash_core::clock::Millis;
use qstash_store::{MessageFilter, OutcomeKind, StoreError};

use crate::Engine;

static PER_USER: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The recorder is installed; `per_user` counts by user too
/// (`--metrics-per-user`). From here on, metric handles may be kept.
pub fn installed(per_user: bool) {
    PER_USER.store(per_user, Ordering::Relaxed);
    INSTALLED.store(true, Ordering::Release);
}

/// Uses the handle kept in `slot`, made by `new` on first use. Building a
/// labelled key and looking it up in the recorder's registry for every
/// message cost more than the counting. Only once the recorder is
/// installed: a handle made before records nowhere, and would forever
/// (the engine delivers before the binary installs the recorder). The
/// recorder never drops a metric, so a kept handle stays valid.
pub fn kept<T>(slot: &'static OnceLock<T>, new: impl FnOnce() -> T, use_it: impl FnOnce(&T)) {
    match INSTALLED.load(Ordering::Acquire) {
        true => use_it(slot.get_or_init(new)),
        false => use_it(&new()),
    }
}

pub const KINDS: [Kind; 6] = [
    Kind::Publish,
    Kind::Enqueue,
    Kind::Batch,
    Kind::Schedule,
    Kind::Callback,
    Kind::DlqRetry,
];
const OUTCOMES: [&str; 4] = ["delivered", "retried", "failed", "cancelled"];

/// Gives every metric its help text, and every counter of fixed labels a
/// zero, so dashboards and `rate()` see them from the first scrape.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "qstash_messages_published_total",
        "Messages created, by kind (publish, enqueue, batch, schedule, callback, dlq_retry); deduplicated publishes are not counted"
    );
    describe_counter!(
        "qstash_deliveries_total",
        "Delivery attempts by outcome (delivered, retried, failed: to the DLQ) and messages cancelled"
    );
    describe_counter!(
        "qstash_http_requests_total",
        "API requests by method, route template and status class"
    );
    describe_gauge!(
        "qstash_deliveries_in_flight",
        "Delivery attempts in flight on this node"
    );
    describe_gauge!(
        "qstash_messages_waiting",
        "Messages not yet delivered, by state: due (waiting for a slot, queue or rate), delayed, retrying (counted up to 100000 per user)"
    );
    describe_gauge!(
        "qstash_dlq_messages",
        "Messages in the dead-letter queue (up to 100000 per user)"
    );
    describe_gauge!(
        "qstash_queue_lag_messages",
        "Messages of queues not yet delivered (the sum of the queues' lag)"
    );
    describe_gauge!(
        "qstash_delivery_lag_seconds",
        Unit::Seconds,
        "How long the earliest due plain message has been waiting for its delivery"
    );
    describe_gauge!(
        "qstash_flow_control_keys_waiting",
        "Flow-control keys with messages waiting"
    );
    describe_gauge!("qstash_schedules", "Schedules, by state (active, paused)");
    describe_histogram!(
        "qstash_publish_duration_seconds",
        Unit::Seconds,
        "Time to answer a publish, enqueue or batch request (commit included)"
    );
    describe_histogram!(
        "qstash_delivery_latency_seconds",
        Unit::Seconds,
        "From a message's due time (its publish, unless delayed or a retry) to its destination's 2xx answer"
    );
    describe_histogram!(
        "qstash_destination_response_seconds",
        Unit::Seconds,
        "Duration of delivery attempts, until the destination answered or failed"
    );
    describe_histogram!(
        "qstash_store_commit_batch_size",
        "Write requests committed together by one group commit"
    );
    describe_histogram!(
        "qstash_store_commit_seconds",
        Unit::Seconds,
        "Duration of group commits (until the storage confirmed them)"
    );
    if !PER_USER.load(Ordering::Relaxed) {
        for kind in KINDS {
            counter!("qstash_messages_published_total", "kind" => kind.as_str()).increment(0);
        }
        for outcome in OUTCOMES {
            counter!("qstash_deliveries_total", "outcome" => outcome).increment(0);
        }
    }
}

fn user_label(user: &str) -> Option<String> {
    PER_USER.load(Ordering::Relaxed).then(|| user.to_string())
}

/// How a message came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Publish,
    Enqueue,
    Batch,
    Schedule,
    Callback,
    DlqRetry,
}

impl Kind {
    /// Its place in [`KINDS`], for kept handles (a new kind fails to
    /// compile here until it is given one).
    pub fn index(self) -> usize {
        match self {
            Kind::Publish => 0,
            Kind::Enqueue => 1,
            Kind::Batch => 2,
            Kind::Schedule => 3,
            Kind::Callback => 4,
            Kind::DlqRetry => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Publish => "publish",
            Kind::Enqueue => "enqueue",
            Kind::Batch => "batch",
            Kind::Schedule => "schedule",
            Kind::Callback => "callback",
            Kind::DlqRetry => "dlq_retry",
        }
    }
}

/// `n` messages were created (deduplicated ones are not).
pub fn published(kind: Kind, user: &str, n: u64) {
    if n == 0 {
        return;
    }
    static PUBLISHED: [OnceLock<Counter>; KINDS.len()] = [const { OnceLock::new() }; KINDS.len()];
    let label = kind.as_str();
    match user_label(user) {
        Some(user) => counter!("qstash_messages_published_total", "kind" => label, "user" => user)
            .increment(n),
        None => kept(
            &PUBLISHED[kind.index()],
            || counter!("qstash_messages_published_total", "kind" => label),
            |c| c.increment(n),
        ),
    }
}

/// What a delivery attempt (or a cancel) did to `n` messages.
pub fn deliveries(outcome: &'static str, user: &str, n: u64) {
    if n == 0 {
        return;
    }
    match user_label(user) {
        Some(user) => {
            counter!("qstash_deliveries_total", "outcome" => outcome, "user" => user).increment(n)
        }
        None => {
            static DELIVERIES: [OnceLock<Counter>; OUTCOMES.len()] =
                [const { OnceLock::new() }; OUTCOMES.len()];
            let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) else {
                return counter!("qstash_deliveries_total", "outcome" => outcome).increment(n);
            };
            kept(
                &DELIVERIES[i],
                || counter!("qstash_deliveries_total", "outcome" => outcome),
                |c| c.increment(n),
            )
        }
    }
}

pub fn outcome_label(kind: &OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Delivered => "delivered",
        OutcomeKind::Retry { .. } => "retried",
        OutcomeKind::Failed { .. } => "failed",
    }
}

/// One attempt: how long the destination took to answer (or to fail),
/// and for a delivered message, how long after it was due it got there.
pub fn attempt(took: Duration, delivered_after_due: Option<Millis>) {
    static RESPONSE: OnceLock<Histogram> = OnceLock::new();
    static LATENCY: OnceLock<Histogram> = OnceLock::new();
    kept(
        &RESPONSE,
        || histogram!("qstash_destination_response_seconds"),
        |h| h.record(took.as_secs_f64()),
    );
    if let Some(ms) = delivered_after_due {
        kept(
            &LATENCY,
            || histogram!("qstash_delivery_latency_seconds"),
            |h| h.record(ms.max(0) as f64 / 1000.0),
        );
    }
}

/// Most messages or entries counted per user for a gauge: counts walk
/// indexes, so a scrape stays cheap however much is stored (a gauge at the
/// cap means "at least").
pub const GAUGE_CAP: u64 = 100_000;

impl Engine {
    /// Sets the gauges from the engine's state and index-backed counts
    /// (capped at [`GAUGE_CAP`] per user); called at scrape time.
    pub async fn sample_gauges(&self) -> Result<(), StoreError> {
        let busy = self.config.max_in_flight - self.in_flight.available_permits();
        gauge!("qstash_deliveries_in_flight").set(busy as f64);
        let now = self.now();
        let lag = match self.store.next_due_at().await? {
            Some(due) if due <= now => (now - due) as f64 / 1000.0,
            _ => 0.0,
        };
        gauge!("qstash_delivery_lag_seconds").set(lag);
        let mut totals = Totals::default();
        for user in self.keys.user_ids() {
            let t = self.user_totals(&user).await?;
            if let Some(label) = user_label(&user) {
                t.set(&[("user", label)]);
            }
            totals.add(&t);
        }
        if !PER_USER.load(Ordering::Relaxed) {
            totals.set(&[]);
        }
        Ok(())
    }

    async fn user_totals(&self, user: &str) -> Result<Totals, StoreError> {
        let live = self
            .live_counts(user, MessageFilter::default(), GAUGE_CAP)
            .await?;
        let queues = self.store.queues(user).await?;
        let keys = self.store.flow_keys(user).await?;
        let schedules = self.store.list_schedules(user).await?;
        Ok(Totals {
            due: live.waiting,
            delayed: live.delayed,
            retrying: live.retrying,
            dlq: self.dlq_size(user, GAUGE_CAP).await?.min(GAUGE_CAP),
            queue_lag: queues.iter().map(|q| q.lag).sum(),
            keys_waiting: keys.iter().filter(|(_, waiting)| *waiting > 0).count() as u64,
            schedules_active: schedules.iter().filter(|s| !s.schedule.paused).count() as u64,
            schedules_paused: schedules.iter().filter(|s| s.schedule.paused).count() as u64,
        })
    }
}

#[derive(Debug, Default)]
struct Totals {
    due: u64,
    delayed: u64,
    retrying: u64,
    dlq: u64,
    queue_lag: u64,
    keys_waiting: u64,
    schedules_active: u64,
    schedules_paused: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.due += o.due;
        self.delayed += o.delayed;
        self.retrying += o.retrying;
        self.dlq += o.dlq;
        self.queue_lag += o.queue_lag;
        self.keys_waiting += o.keys_waiting;
        self.schedules_active += o.schedules_active;
        self.schedules_paused += o.schedules_paused;
    }

    fn set(&self, labels: &[(&'static str, String)]) {
        let with = |extra: Option<(&'static str, &'static str)>| {
            let mut l: Vec<metrics::Label> = labels
                .iter()
                .map(|(k, v)| metrics::Label::new(*k, v.clone()))
                .collect();
            if let Some((k, v)) = extra {
                l.push(metrics::Label::new(k, v));
            }
            l
        };
        let waiting = "qstash_messages_waiting";
        gauge!(waiting, with(Some(("state", "due")))).set(self.due as f64);
        gauge!(waiting, with(Some(("state", "delayed")))).set(self.delayed as f64);
        gauge!(waiting, with(Some(("state", "retrying")))).set(self.retrying as f64);
        gauge!("qstash_dlq_messages", with(None)).set(self.dlq as f64);
        gauge!("qstash_queue_lag_messages", with(None)).set(self.queue_lag as f64);
        gauge!("qstash_flow_control_keys_waiting", with(None)).set(self.keys_waiting as f64);
        let schedules = "qstash_schedules";
        gauge!(schedules, with(Some(("state", "active")))).set(self.schedules_active as f64);
        gauge!(schedules, with(Some(("state", "paused")))).set(self.schedules_paused as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_indexes_its_kept_handle() {
        for (i, kind) in KINDS.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{}", kind.as_str());
        }
    }
}
