//! Live messages (pending or in flight) as the console's "messages in
//! flight" page shows them (`GET /v2/messages`): what each is waiting for,
//! and the values of the listing that cross the storage boundary. The
//! store counts the same kinds in SQL (`store/src/sqlite/live.rs`); the
//! rules must agree.

use crate::clock::Millis;
use crate::{Message, MessageState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKind {
    /// Due: waiting for a delivery slot, its queue or its rate limit.
    Waiting,
    /// Its first attempt is not due yet.
    Delayed,
    /// Failed at least once; waiting for the next attempt.
    Retrying,
    /// An attempt is in flight.
    InFlight,
}

impl LiveKind {
    /// None for a finished message.
    pub fn of(m: &Message, now: Millis) -> Option<Self> {
        match m.state {
            MessageState::Active => Some(Self::InFlight),
            MessageState::Pending if m.retried > 0 => Some(Self::Retrying),
            MessageState::Pending if m.due_at > now => Some(Self::Delayed),
            MessageState::Pending => Some(Self::Waiting),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Delayed => "DELAYED",
            Self::Retrying => "RETRYING",
            Self::InFlight => "IN_FLIGHT",
        }
    }
}

/// Where a page of live messages (newest first) continues: messages
/// stored before the one with this row id. A message stored later gets a
/// larger id, so it never shows up on a later page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveCursor(pub i64);

impl LiveCursor {
    pub fn parse(s: &str) -> Option<Self> {
        s.trim().parse().ok().filter(|n| *n > 0).map(Self)
    }
}

impl std::fmt::Display for LiveCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LivePage {
    pub messages: Vec<Message>,
    /// Set when more messages follow.
    pub cursor: Option<LiveCursor>,
}

/// How many live messages there are, by what they wait for. Counting stops
/// at a cap; `capped` says it did (the numbers are then a lower bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Due, waiting for a delivery slot, its queue or its rate limit.
    pub waiting: u64,
    /// First attempt not yet due (`Upstash-Delay`, `Upstash-Not-Before`).
    pub delayed: u64,
    /// Failed at least once, waiting for the next attempt.
    pub retrying: u64,
    /// An attempt is in flight.
    pub in_flight: u64,
    pub capped: bool,
}

impl LiveCounts {
    pub fn total(&self) -> u64 {
        self.waiting + self.delayed + self.retrying + self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let m = |state, due_at, retried| Message {
            id: "msg_1".into(),
            user_id: "u".into(),
            spec: Default::default(),
            body: bytes::Bytes::new(),
            created_at: 0,
            not_before: 0,
            due_at,
            retried,
            state,
        };
        let now = 100;
        let kind = |state, due, retried| LiveKind::of(&m(state, due, retried), now);
        assert_eq!(kind(MessageState::Pending, 100, 0), Some(LiveKind::Waiting));
        assert_eq!(kind(MessageState::Pending, 101, 0), Some(LiveKind::Delayed));
        assert_eq!(
            kind(MessageState::Pending, 500, 2),
            Some(LiveKind::Retrying)
        );
        assert_eq!(kind(MessageState::Active, 500, 2), Some(LiveKind::InFlight));
        assert_eq!(kind(MessageState::Delivered, 0, 0), None);
        assert_eq!(LiveKind::InFlight.as_str(), "IN_FLIGHT");
    }

    #[test]
    fn cursors_round_trip() {
        let c = LiveCursor(42);
        assert_eq!(LiveCursor::parse(&c.to_string()), Some(c));
        assert_eq!(LiveCursor::parse("x"), None);
        assert_eq!(LiveCursor::parse("0"), None);
        assert_eq!(LiveCursor::parse("-3"), None);
    }
}
