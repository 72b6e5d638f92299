//! The delivery engine: finds due messages, delivers them signed, records
//! the outcome and schedules retries.
//!
//! One scheduler task sleeps until the earliest due message (the store's
//! due-time index answers which) and is woken early when a publish brings
//! an earlier one. Claimed messages are delivered by tasks bounded by a
//! semaphore; each outcome is committed through the store's group commit.

mod callbacks;
pub mod cluster;
mod delivery;
pub mod dlq;
mod gate;
mod guard;
pub mod health;
pub mod keys;
mod live;
pub mod meter;
mod observe;
pub mod outcome;
pub mod publish;
mod scheduler;
pub mod schedules;
pub mod stats;
mod url_groups;
mod user_slots;
pub mod workflow;
mod workflow_log;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use qstash_core::clock::{Clock, Millis};
use qstash_core::cluster::Signal;
use qstash_core::message::{Arrival, Inserted, NewMessage};
use qstash_core::policy::DestinationPolicy;
use qstash_core::{Message, MessageState};
use qstash_store::{Listener, Reads, Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

pub use gate::{FlowKeyInfo, KeyRuntime};
pub use keys::KeyRing;
pub use publish::{PlanError, PublishRequest};
pub use workflow::WorkflowError;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Deliveries in flight at once, over all destinations.
    pub max_in_flight: usize,
    /// Per-attempt timeout when the message sets none.
    pub default_timeout: Duration,
    /// How long delivered and cancelled messages and log entries are kept.
    pub retention: Duration,
    /// How much of a destination's response body is kept for logs and DLQ.
    pub max_response_body: usize,
    /// Most queued and flow-controlled deliveries of one user in flight.
    pub global_parallelism: u32,
    /// How long DLQ entries are kept.
    pub dlq_retention: Duration,
    /// At start, a schedule tick missed while the server was down fires
    /// once if it is at most this old; older ones are skipped.
    pub schedule_catch_up: Duration,
    /// Which destinations may be called (checked when messages are planned
    /// and again at every connection and redirect).
    pub destination_policy: Arc<DestinationPolicy>,
    /// Maxima of `Upstash-Timeout` and `Upstash-Delay`.
    pub limits: qstash_core::publish::Limits,
    /// Most plain deliveries of one user in flight; None is no cap below
    /// `max_in_flight`.
    pub max_in_flight_per_user: Option<usize>,
    /// This node's id in a cluster (its claims carry it).
    pub node_id: String,
    /// In a cluster, how long a node's claims outlive its last heartbeat.
    pub lease: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            default_timeout: Duration::from_secs(300),
            retention: Duration::from_secs(7 * 86_400),
            max_response_body: 256 * 1024,
            global_parallelism: 512,
            dlq_retention: Duration::from_secs(7 * 86_400),
            schedule_catch_up: Duration::from_secs(86_400),
            destination_policy: Arc::new(DestinationPolicy::allow_all()),
            limits: qstash_core::publish::Limits::default(),
            max_in_flight_per_user: None,
            node_id: qstash_core::ids::node_id(),
            lease: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Shared by the API (to submit messages) and the background tasks.
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyRing>,
    http: delivery::Destinations,
    config: EngineConfig,
    /// Wakes the scheduler when a message is due before it planned to wake.
    wake: Notify,
    /// When the scheduler plans to wake next (ms); `i64::MAX` when idle.
    sleeping_until: AtomicI64,
    in_flight: Arc<Semaphore>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Queues and flow-control keys: when their messages may start.
    gate: gate::Gate,
    schedule_timer: schedules::ScheduleTimer,
    /// Per-user, per-minute counts for the console's overview.
    stats: stats::Stats,
    started_at: Millis,
    /// Where this node's API listens (set once bound; shown to the cluster).
    address: std::sync::OnceLock<String>,
    /// Delivery slots per user (`--max-in-flight-per-user`).
    user_slots: Arc<user_slots::UserSlots>,
    /// The last storage probe of `/readyz` and when it ran (see `health`).
    last_probe: std::sync::Mutex<Option<health::Probe>>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: Arc<KeyRing>,
        config: EngineConfig,
    ) -> Result<Arc<Self>, EngineError> {
        let http = delivery::client(&config).map_err(EngineError::Client)?;
        let started_at = clock.now_ms();
        let user_slots = Arc::new(user_slots::UserSlots::new(
            config.max_in_flight_per_user,
            keys.user_ids(),
        ));
        let engine = Arc::new(Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            gate: gate::Gate::new(config.global_parallelism, user_slots.clone()),
            store,
            clock,
            keys,
            http,
            config,
            wake: Notify::new(),
            sleeping_until: AtomicI64::new(0),
            shutdown: tokio::sync::watch::channel(false).0,
            schedule_timer: schedules::ScheduleTimer::default(),
            stats: stats::Stats::default(),
            started_at,
            address: std::sync::OnceLock::new(),
            user_slots,
            last_probe: std::sync::Mutex::new(None),
        });
        // Every commit that makes messages pending, on whatever path,
        // wakes the scheduler or the gate through this (see `arrived`).
        let listener: Weak<dyn Listener> = Arc::downgrade(&engine) as Weak<dyn Listener>;
        engine.store.announcer().listen(listener);
        Ok(engine)
    }

    /// The read-only side of the store, for the API's `GET`s. Writes go
    /// through the engine's own methods.
    pub fn reads(&self) -> &dyn Reads {
        self.store.as_ref()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn policy(&self) -> &Arc<DestinationPolicy> {
        &self.config.destination_policy
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Commits messages and lets the scheduler know about them. Answers
    /// only after the commit, so an acknowledged message is never lost.
    ///
    /// A plain message that is due now goes straight to a delivery task
    /// when a delivery slot is free: it is stored already in flight (with
    /// its ACTIVE log entry) instead of pending, so the scheduler never has
    /// to claim it, which saves a write of the row and two index updates
    /// per message. A crash before its outcome returns it to pending at the
    /// next start like any claimed message.
    pub async fn submit(
        self: &Arc<Self>,
        mut messages: Vec<NewMessage>,
    ) -> Result<Vec<Inserted>, StoreError> {
        let now = self.now();
        let permits = self.start_now(&mut messages, now);
        let mut user_slots = permits.1.into_iter();
        let permits = permits.0;
        let started: Vec<Option<Message>> = messages
            .iter()
            .map(|m| (m.message.state == MessageState::Active).then(|| m.message.clone()))
            .collect();
        // Every caller submits one user's messages (a publish, a batch).
        let user = messages.first().map(|m| m.message.user_id.clone());
        let inserted = self.store.insert_messages(messages, now).await?;
        if let Some(user) = user {
            let new = inserted.iter().filter(|i| matches!(i, Inserted::New(_)));
            self.stats
                .add(&user, now, stats::Event::Published, new.count() as u64);
        }
        let mut permits = permits.into_iter();
        for (answer, message) in inserted.iter().zip(started) {
            let Some(message) = message else { continue };
            let permit = permits.next().expect("one permit per started message");
            let user_slot = user_slots
                .next()
                .expect("one user slot per started message");
            // A deduplicated message was not stored: nothing to deliver.
            if let Inserted::New(_) = answer {
                self.spawn_delivery(message, permit, |e| e.plain_done(user_slot));
            }
        }
        Ok(inserted)
    }

    /// A plain delivery ended: its user's slot is free, and the gate's lines
    /// of that user may have waited on its cap.
    pub(crate) fn plain_done(&self, slot: user_slots::UserSlot) {
        let user = slot.user.clone();
        drop(slot);
        if self.user_slots.cap().is_some() {
            self.gate.user_freed(&user);
        }
    }

    /// Marks the plain, due messages that can start at once as in flight,
    /// taking a delivery slot (and a slot of its user) for each; answers
    /// the slots in order. A user at its cap leaves its messages pending.
    fn start_now(
        &self,
        messages: &mut [NewMessage],
        now: Millis,
    ) -> (Vec<OwnedSemaphorePermit>, Vec<user_slots::UserSlot>) {
        let mut permits = Vec::new();
        let mut users = Vec::new();
        if *self.shutdown.borrow() {
            return (permits, users);
        }
        for new in messages.iter_mut() {
            let m = &mut new.message;
            let gated = m.spec.queue_name.is_some() || m.spec.flow_control.is_some();
            if m.due_at > now || gated {
                continue;
            }
            let user = match self.user_slots.cap() {
                Some(_) => self
                    .gate
                    .with_gated(|gated| self.user_slots.try_take(&m.user_id, gated(&m.user_id))),
                None => self.user_slots.try_take(&m.user_id, 0),
            };
            let Some(user) = user else {
                continue;
            };
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                break;
            };
            m.state = MessageState::Active;
            permits.push(permit);
            users.push(user);
        }
        (permits, users)
    }

    /// Whether shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Tells the scheduler a message is due at `due`; wakes it only if that
    /// is earlier than it planned to wake. (Committed messages reach it
    /// through `arrived`; this is for anything else that moves due times.)
    pub fn due_at(&self, due: Millis) {
        if due < self.sleeping_until.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    /// Starts the scheduler and housekeeping; returns their handle.
    pub async fn start(self: &Arc<Self>) -> Result<JoinHandle<()>, EngineError> {
        let released = self.store.release_in_flight(self.now()).await?;
        if released > 0 {
            tracing::info!(
                released,
                "messages in flight at the last stop will be delivered again"
            );
        }
        // Before serving: ticks missed while no node ran (safe on every node
        // of a cluster: a schedule caught up once is not due again).
        self.catch_up_schedules().await?;
        // The leader's tasks (the gate, the schedule timer, retention) run
        // in terms of leadership; a node alone leads from start to end.
        let heartbeats = tokio::spawn(cluster::heartbeats(self.clone()));
        let lead = tokio::spawn(cluster::lead(self.clone()));
        let waiters = tokio::spawn(workflow::waiter_timer(self.clone()));
        let engine = self.clone();
        Ok(tokio::spawn(async move {
            scheduler::run(engine).await;
            let _ = waiters.await;
            let _ = lead.await;
            let _ = heartbeats.await;
        }))
    }

    /// Stops claiming messages and waits up to `grace` for deliveries in
    /// flight. In a cluster the node then hands back what is still
    /// unfinished, at once (another node delivers it), and leaves; else
    /// unfinished deliveries stay in flight in the store and run again
    /// after the next start.
    pub async fn shutdown(&self, scheduler: JoinHandle<()>, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.wake.notify_one();
        let _ = scheduler.await;
        let all = self.config.max_in_flight as u32;
        let drained = tokio::time::timeout(grace, self.in_flight.acquire_many(all))
            .await
            .is_ok();
        match self.store.cluster() {
            Some(cluster) => match cluster.leave().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    handed_back = n,
                    "deliveries still in flight at shutdown were handed to the other nodes"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: leaving failed; this node's claims lapse with its lease")
                }
            },
            None if !drained => {
                tracing::warn!(
                    "deliveries still in flight at shutdown will be retried after restart"
                )
            }
            None => {}
        }
    }
}

/// The store announces every commit that made messages pending: plain ones
/// wake the scheduler (only if due before its planned wake-up), queued and
/// flow-controlled ones mark their lines for the gate.
impl Listener for Engine {
    fn arrived(&self, arrivals: &[Arrival]) {
        let earliest = arrivals
            .iter()
            .filter(|a| a.is_plain())
            .map(|a| a.due_at)
            .min();
        if let Some(due) = earliest {
            self.due_at(due);
        }
        self.gate.joined(arrivals);
    }

    /// Another node committed a change: the leader's gate and schedule
    /// timer, and every node's signing keys, follow it.
    fn signalled(&self, signal: &Signal) {
        match signal {
            Signal::Arrivals { arrivals } => self.arrived(arrivals),
            Signal::QueueChanged { user_id, name } => self.gate.queue_changed(user_id, name),
            Signal::KeyChanged {
                user_id,
                key,
                reset_at,
            } => self.gate.key_stale(user_id, key, *reset_at),
            Signal::Cancelled { user_id } => self.gate.user_changed(user_id),
            Signal::ScheduleDue { at } => self.schedule_due_at(*at),
            Signal::KeysRotated { user_id } => self.keys.reload_later(Some(user_id.clone())),
            Signal::Joined => {}
            Signal::Resync => {
                self.due_at(self.now());
                self.gate.mark_all();
                self.schedule_due_at(self.now());
                self.keys.reload_later(None);
            }
        }
    }
}
