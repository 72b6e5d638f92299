//! Values of the read paths that tell what happened to messages: the log
//! (one entry per state change) and the dead-letter queue.

use std::fmt;

use qstash_core::clock::Millis;
use qstash_core::message::LogState;
use qstash_core::Message;

use crate::{AttemptResponse, NewMessage};

/// Filters over log entries; several values for one key match any of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub message_ids: Vec<String>,
    pub states: Vec<LogState>,
    pub url: Vec<String>,
    pub topic_name: Vec<String>,
    pub queue_name: Vec<String>,
    pub schedule_id: Vec<String>,
    pub label: Vec<String>,
    pub flow_control_key: Vec<String>,
    pub caller_ip: Vec<String>,
    /// The destination URL's host (without port) and path.
    pub host: Vec<String>,
    pub path: Vec<String>,
    /// Inclusive bounds on the entry time.
    pub from_date: Option<Millis>,
    pub to_date: Option<Millis>,
}

/// Where a page of the log (newest first) continues: entries strictly
/// older than (time, seq). New entries never land before a cursor already
/// handed out, so paging sees each entry once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogCursor {
    pub time: Millis,
    pub seq: i64,
}

impl LogCursor {
    /// `<time>-<seq>`, or a bare unix-ms time (the docs' form), meaning
    /// entries older than that time.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once('-') {
            Some((time, seq)) => Some(Self {
                time: time.parse().ok()?,
                seq: seq.parse().ok()?,
            }),
            None => Some(Self {
                time: s.parse().ok()?,
                seq: 0,
            }),
        }
    }
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.time, self.seq)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub time: Millis,
    pub state: LogState,
    pub error: Option<String>,
    pub next_delivery_time: Option<Millis>,
    /// The attempt's answer, on ERROR, DELIVERED and FAILED entries.
    pub response: Option<AttemptResponse>,
    /// The message as it is now (its settings never change).
    pub message: Message,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// Set when more entries follow.
    pub cursor: Option<LogCursor>,
}

/// Filters over DLQ entries; several values for one key match any of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqFilter {
    pub dlq_ids: Vec<String>,
    pub message_id: Vec<String>,
    pub url: Vec<String>,
    pub topic_name: Vec<String>,
    pub queue_name: Vec<String>,
    pub schedule_id: Vec<String>,
    pub label: Vec<String>,
    pub flow_control_key: Vec<String>,
    pub caller_ip: Vec<String>,
    pub response_status: Vec<u16>,
    /// Inclusive bounds on when the message entered the DLQ.
    pub from_date: Option<Millis>,
    pub to_date: Option<Millis>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DlqOrder {
    #[default]
    EarliestFirst,
    LatestFirst,
}

/// Where a DLQ page continues: after the entry with this id. Ids start
/// with the entry's creation time, so the position survives the entry's
/// deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqCursor {
    pub created_at: Millis,
    pub dlq_id: String,
}

impl DlqCursor {
    pub fn parse(s: &str) -> Option<Self> {
        let (time, _) = s.split_once('-')?;
        Some(Self {
            created_at: time.parse().ok()?,
            dlq_id: s.to_string(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqQuery {
    pub filter: DlqFilter,
    pub cursor: Option<DlqCursor>,
    pub count: usize,
    pub order: DlqOrder,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DlqEntry {
    pub dlq_id: String,
    pub created_at: Millis,
    /// The last attempt's answer.
    pub response: AttemptResponse,
    pub error: Option<String>,
    pub message: Message,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqPage {
    pub entries: Vec<DlqEntry>,
    /// The last entry's id, when more entries follow.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqDeleted {
    pub deleted: u64,
    pub cursor: Option<String>,
}

/// One DLQ entry to retry, with the message that replaces it.
#[derive(Debug, Clone)]
pub struct DlqRetry {
    pub dlq_id: String,
    pub message: NewMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = LogCursor { time: 17, seq: 4 };
        assert_eq!(LogCursor::parse(&c.to_string()), Some(c));
        assert_eq!(LogCursor::parse("99"), Some(LogCursor { time: 99, seq: 0 }));
        assert_eq!(LogCursor::parse("x-1"), None);
        let d = DlqCursor::parse("1725323658779-0").unwrap();
        assert_eq!(d.created_at, 1725323658779);
        assert!(DlqCursor::parse("nope").is_none());
    }
}
