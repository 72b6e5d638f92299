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

impl LogFilter {
    /// Whether an entry in `state` of message `m` passes every filter but
    /// the dates (which bound the store's index walk). The store checks
    /// each row its walk meets with this, so that it can count the rows it
    /// examined and stop a sparse filter's scan after a bounded amount.
    pub fn matches(&self, state: LogState, m: &Message) -> bool {
        let s = &m.spec;
        let any = |wanted: &[String], value: Option<&str>| {
            wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
        };
        (self.message_ids.is_empty() || self.message_ids.contains(&m.id))
            && (self.states.is_empty() || self.states.contains(&state))
            && any(&self.url, Some(&s.url))
            && any(&self.topic_name, s.topic_name.as_deref())
            && any(&self.queue_name, s.queue_name.as_deref())
            && any(&self.schedule_id, s.schedule_id.as_deref())
            && any(
                &self.flow_control_key,
                s.flow_control.as_ref().map(|f| f.key.as_str()),
            )
            && any(&self.caller_ip, s.caller_ip.as_deref())
            && (self.label.is_empty() || s.labels.iter().any(|l| self.label.contains(l)))
            && url_matches(&s.url, &self.host, &self.path)
    }
}

/// Whether `url` has one of `hosts` (without port) and one of `paths`;
/// an empty list matches anything.
pub fn url_matches(url: &str, hosts: &[String], paths: &[String]) -> bool {
    if hosts.is_empty() && paths.is_empty() {
        return true;
    }
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let host_ok = hosts.is_empty() || hosts.iter().any(|h| Some(h.as_str()) == u.host_str());
    let path_ok = paths.is_empty() || paths.iter().any(|p| p == u.path());
    host_ok && path_ok
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

    fn message(url: &str) -> Message {
        Message {
            id: "m1".into(),
            user_id: "u".into(),
            spec: crate::MessageSpec {
                url: url.into(),
                labels: vec!["a".into(), "b".into()],
                queue_name: Some("q".into()),
                caller_ip: Some("10.0.0.1".into()),
                ..Default::default()
            },
            body: bytes::Bytes::new(),
            created_at: 0,
            not_before: 0,
            due_at: 0,
            retried: 0,
            state: crate::MessageState::Pending,
        }
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        let m = message("https://example.com/x");
        assert!(LogFilter::default().matches(LogState::Created, &m));
    }

    #[test]
    fn each_filter_is_any_of_its_values_and_all_filters_must_hold() {
        let m = message("https://Example.com:8080/a/b?q=1");
        let f = |f: LogFilter| f.matches(LogState::Delivered, &m);
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(f(LogFilter {
            host: v(&["other", "example.com"]),
            path: v(&["/a/b"]),
            ..Default::default()
        }));
        assert!(!f(LogFilter {
            host: v(&["example.com:8080"]),
            ..Default::default()
        }));
        assert!(f(LogFilter {
            states: vec![LogState::Failed, LogState::Delivered],
            label: v(&["z", "b"]),
            queue_name: v(&["q"]),
            caller_ip: v(&["10.0.0.1"]),
            ..Default::default()
        }));
        assert!(!f(LogFilter {
            states: vec![LogState::Delivered],
            topic_name: v(&["t"]),
            ..Default::default()
        }));
        assert!(!f(LogFilter {
            flow_control_key: v(&["k"]),
            ..Default::default()
        }));
        assert!(!f(LogFilter {
            message_ids: v(&["m2"]),
            ..Default::default()
        }));
        assert!(!f(LogFilter {
            host: v(&["nothere.example"]),
            ..Default::default()
        }));
    }
}
