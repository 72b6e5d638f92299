//! The message: what a publish asked for, and where it stands.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::flow_control::FlowControl;
use crate::headers::HeaderMap;
use crate::redact::Redaction;

pub const DEFAULT_RETRIES: u32 = 3;
pub const MAX_RETRIES: u32 = 100;

/// Everything a publish fixed about a message, apart from its body. It does
/// not change after the publish, so the store keeps it as one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageSpec {
    /// The final destination, query included; for a URL group, the endpoint.
    pub url: String,
    pub method: String,
    /// Headers that reach the destination: Content-Type and forwarded ones.
    pub header: HeaderMap,
    pub max_retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_callback: Option<String>,
    /// `Upstash-Callback-*` settings, full canonical names.
    #[serde(skip_serializing_if = "HeaderMap::is_empty")]
    pub callback_header: HeaderMap,
    /// `Upstash-Failure-Callback-*` settings, full canonical names.
    #[serde(skip_serializing_if = "HeaderMap::is_empty")]
    pub failure_callback_header: HeaderMap,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Redaction::is_empty")]
    pub redact: Redaction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<FlowControl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_ip: Option<String>,
    /// Set on a callback or failure-callback message: the id of the message
    /// it reports on. Such a message never triggers callbacks of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_of: Option<String>,
    /// Set on a message of an Upstash Workflow run (issue 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<crate::workflow::WorkflowTag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageState {
    /// Waiting for its due time (first attempt or a retry).
    Pending,
    /// Handed to the dispatcher; an attempt is in flight.
    Active,
    Delivered,
    Failed,
    Cancelled,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Active,
            Self::Delivered,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Still to be delivered: visible through `GET /v2/messages/{id}`.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Active)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub user_id: String,
    pub spec: MessageSpec,
    /// Shared, not copied, between the request that published it, its
    /// stored row, the engine and the delivery's request (issue 17).
    pub body: Bytes,
    pub created_at: Millis,
    /// When the first attempt was due (`notBefore` in the API).
    pub not_before: Millis,
    /// When the next attempt is due.
    pub due_at: Millis,
    /// Failed attempts so far; sent as `Upstash-Retried`.
    pub retried: u32,
    pub state: MessageState,
}

/// The states a message's log shows, as the SDKs spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogState {
    Created,
    Active,
    Retry,
    Error,
    Delivered,
    Failed,
    CancelRequested,
    /// One L: the Python SDK's enum crashes on `CANCELLED`.
    Canceled,
}

impl LogState {
    pub const ALL: [LogState; 8] = [
        Self::Created,
        Self::Active,
        Self::Retry,
        Self::Error,
        Self::Delivered,
        Self::Failed,
        Self::CancelRequested,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Active => "ACTIVE",
            Self::Retry => "RETRY",
            Self::Error => "ERROR",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
            Self::CancelRequested => "CANCEL_REQUESTED",
            Self::Canceled => "CANCELED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A message that became pending in a commit: what the scheduler (a plain
/// message, by its due time) or the gate (the lines of its queue and key)
/// must hear of to deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub user_id: String,
    pub due_at: Millis,
    pub queue: Option<String>,
    pub flow_control_key: Option<String>,
}

impl Arrival {
    /// The arrival a stored message makes; None when it is not pending (a
    /// message stored already in flight is being delivered).
    pub fn of(m: &Message) -> Option<Self> {
        (m.state == MessageState::Pending).then(|| Self {
            user_id: m.user_id.clone(),
            due_at: m.due_at,
            queue: m.spec.queue_name.clone(),
            flow_control_key: m.spec.flow_control.as_ref().map(|f| f.key.clone()),
        })
    }

    /// Neither queued nor flow-controlled: the scheduler's, not the gate's.
    pub fn is_plain(&self) -> bool {
        self.queue.is_none() && self.flow_control_key.is_none()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_json() {
        let spec = MessageSpec {
            url: "http://a".into(),
            method: "POST".into(),
            max_retries: 3,
            ..Default::default()
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<MessageSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn state_names_round_trip() {
        for s in LogState::ALL {
            assert_eq!(LogState::parse(s.as_str()), Some(s));
        }
        assert_eq!(LogState::Canceled.as_str(), "CANCELED");
        assert_eq!(MessageState::parse("active"), Some(MessageState::Active));
    }
}
