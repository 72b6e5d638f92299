//! The log: one entry per state change of a message, read newest first
//! with a stable cursor.

use std::fmt;

use crate::clock::Millis;
use crate::message::{LogState, Message};
use crate::outcome::AttemptResponse;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = LogCursor { time: 17, seq: 4 };
        assert_eq!(LogCursor::parse(&c.to_string()), Some(c));
        assert_eq!(LogCursor::parse("99"), Some(LogCursor { time: 99, seq: 0 }));
        assert_eq!(LogCursor::parse("x-1"), None);
    }
}
