//! Values that cross the storage boundary.

use qstash_core::clock::Millis;
use qstash_core::headers::HeaderMap;
use qstash_core::Message;

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub message: Message,
    pub dedup_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New(String),
    /// Deduplicated: the id of the message that holds the key.
    Duplicate(String),
}

impl Inserted {
    pub fn id(&self) -> &str {
        match self {
            Inserted::New(id) | Inserted::Duplicate(id) => id,
        }
    }
}

/// What the destination answered to one attempt. `status` is 0 when no
/// answer came (connection error, timeout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptResponse {
    pub status: u16,
    pub header: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeKind {
    Delivered,
    /// Failed; the next attempt is due at `next_due`.
    Retry {
        next_due: Millis,
        error: String,
    },
    /// Failed for the last time: the message goes to the DLQ.
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub message_id: String,
    pub at: Millis,
    pub kind: OutcomeKind,
    pub response: AttemptResponse,
    /// The id of the DLQ entry a `Failed` outcome creates; chosen before
    /// the commit so the failure callback can carry it. The store picks
    /// one when None.
    pub dlq_id: Option<String>,
    /// Messages this outcome creates (callbacks, failure callbacks),
    /// committed in the same transaction: a crash never loses or repeats
    /// them apart from the outcome they report.
    pub callbacks: Vec<NewMessage>,
}

/// Which live messages to cancel. Empty filters with no ids mean all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CancelRequest {
    pub message_ids: Vec<String>,
    pub filter: MessageFilter,
    /// At most this many; all when None.
    pub count: Option<usize>,
}

/// Filters over messages; several values for one key match any of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageFilter {
    pub url: Vec<String>,
    pub topic_name: Vec<String>,
    pub queue_name: Vec<String>,
    pub schedule_id: Vec<String>,
    pub label: Vec<String>,
    pub flow_control_key: Vec<String>,
    pub caller_ip: Vec<String>,
    pub host: Vec<String>,
    pub path: Vec<String>,
    pub from_date: Option<Millis>,
    pub to_date: Option<Millis>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelResult {
    pub cancelled: u64,
    /// Set when `count` stopped the cancel before all matches were done:
    /// the last message cancelled, to show as the cursor.
    pub more_after: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub messages: u64,
    pub events: u64,
    pub dedup: u64,
}
