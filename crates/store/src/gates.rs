//! Values of URL groups, queues and flow-control keys that cross the
//! storage boundary, and the dispatch gate's view of waiting messages.

use qstash_core::clock::Millis;
use qstash_core::gate::KeyLimits;
use qstash_core::url_group::Endpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlGroup {
    pub name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub parallelism: u32,
    pub paused: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Messages not yet delivered: waiting, retrying or in flight.
    pub lag: u64,
}

/// A flow-control key as stored: its limits and pause flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowKey {
    pub user_id: String,
    pub key: String,
    pub limits: KeyLimits,
    pub paused: bool,
    /// When the rate was last reset (pin, resetRate): starts before it do
    /// not count.
    pub rate_reset_at: Millis,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What an API call does to a flow-control key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowKeyChange {
    Pause,
    Resume,
    Pin {
        parallelism: Option<u32>,
        rate: Option<u32>,
        period_secs: Option<u64>,
    },
    Unpin {
        parallelism: bool,
        rate: bool,
    },
    ResetRate,
}

/// A queue or a flow-control key of one user: something messages wait on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GateRef {
    Queue { user_id: String, name: String },
    Key { user_id: String, key: String },
}

impl GateRef {
    pub fn user_id(&self) -> &str {
        match self {
            GateRef::Queue { user_id, .. } | GateRef::Key { user_id, .. } => user_id,
        }
    }
}

/// A request to see the head of one gate's line.
#[derive(Debug, Clone)]
pub struct GateLook {
    pub gate: GateRef,
    /// A key: its deliveries in flight, so no more candidates are read
    /// than its parallelism could take. Unused for queues.
    pub in_flight: u32,
    /// Most candidates wanted (free delivery slots).
    pub cap: u32,
}

/// A message at the head of a gate's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// In flight already (a queue's window includes those).
    pub active: bool,
    pub due_at: Millis,
    /// The message's flow-control key, when a queued message has one too.
    pub flow_control_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateConfig {
    Queue { parallelism: u32, paused: bool },
    Key(FlowKey),
}

/// The current configuration of a gate and the head of its line: for a
/// queue, its first `parallelism` undelivered messages in enqueue order;
/// for a key, its waiting messages by due time.
#[derive(Debug, Clone)]
pub struct GateView {
    pub gate: GateRef,
    pub config: Option<GateConfig>,
    pub candidates: Vec<Candidate>,
}

/// One message the gate lets through.
#[derive(Debug, Clone)]
pub struct GateClaim {
    pub message_id: String,
    /// Record the start against this rate-limited key, and forget starts
    /// older than `.2` (a period ago).
    pub rate_start: Option<(String, String, Millis)>,
}

/// Everything the gate needs at start: every queue and key, with the
/// starts still inside each key's rate window.
#[derive(Debug, Clone, Default)]
pub struct GateSnapshot {
    pub queues: Vec<(String, String)>,
    pub keys: Vec<(FlowKey, Vec<Millis>)>,
}
