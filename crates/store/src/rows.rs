//! Row logic both backends share, so that SQLite and PostgreSQL differ
//! only in SQL and IO: what a message's columns hold, the attribute keys
//! its log entries are indexed by, and what an outcome does to a stored
//! message. Everything here is pure.

use qstash_core::clock::Millis;
use qstash_core::headers::HeaderMap;
use qstash_core::ids;
use qstash_core::log::{LogCursor, LogEntry, LogFilter, LogPage};
use qstash_core::message::{Arrival, LogState, NewMessage};
use qstash_core::outcome::{AttemptResponse, Outcome, OutcomeKind};
use qstash_core::schedule::{resume_at, CronExpr, DueSchedule, Schedule, ScheduleFire};
use qstash_core::{Message, MessageSpec, MessageState};

use crate::{Result, StoreError};

/// The columns of a new message that cost CPU to build (JSON, label and
/// log keys). Built before a write job, on the caller's thread, so that a
/// writer only binds them.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub spec: String,
    /// `,a,b,`, so one label matches with `LIKE '%,a,%'`; None without labels.
    pub labels: Option<String>,
    pub keys: Vec<String>,
}

pub fn encode(messages: &[NewMessage]) -> Result<Vec<Encoded>> {
    messages
        .iter()
        .map(|new| encode_one(&new.message))
        .collect()
}

pub fn encode_one(m: &Message) -> Result<Encoded> {
    let s = &m.spec;
    Ok(Encoded {
        spec: serde_json::to_string(s).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        labels: labels_column(&s.labels),
        keys: keys(m),
    })
}

pub fn labels_column(labels: &[String]) -> Option<String> {
    (!labels.is_empty()).then(|| format!(",{},", labels.join(",")))
}

/// The attribute keys of `m`'s log entries.
pub fn keys(m: &Message) -> Vec<String> {
    let s = &m.spec;
    keys_of(
        &s.url,
        [
            ("topic", s.topic_name.as_deref()),
            ("queue", s.queue_name.as_deref()),
            ("schedule", s.schedule_id.as_deref()),
            ("flow", s.flow_control.as_ref().map(|f| f.key.as_str())),
        ],
        s.labels.iter().map(String::as_str),
    )
}

/// The same as [`keys`], from a stored message's columns instead of a
/// decoded message.
pub fn keys_of_columns(
    url: &str,
    topic: Option<&str>,
    queue: Option<&str>,
    schedule: Option<&str>,
    flow: Option<&str>,
    labels: Option<&str>,
) -> Vec<String> {
    keys_of(
        url,
        [
            ("topic", topic),
            ("queue", queue),
            ("schedule", schedule),
            ("flow", flow),
        ],
        labels.unwrap_or("").split(',').filter(|l| !l.is_empty()),
    )
}

/// `url:<url>`, `<kind>:<value>` for each attribute present, and
/// `label:<label>` per label.
pub fn keys_of<'a>(
    url: &str,
    optional: [(&str, Option<&str>); 4],
    labels: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut keys = vec![format!("url:{url}")];
    for (kind, value) in optional {
        if let Some(v) = value {
            keys.push(format!("{kind}:{v}"));
        }
    }
    keys.extend(labels.map(|l| format!("label:{l}")));
    keys
}

/// A message from its stored columns.
#[allow(clippy::too_many_arguments)]
pub fn decode_message(
    id: String,
    user_id: String,
    state: &str,
    due_at: Millis,
    created_at: Millis,
    not_before: Millis,
    retried: u32,
    spec: &str,
    body: Vec<u8>,
) -> Result<Message> {
    let spec: MessageSpec =
        serde_json::from_str(spec).map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
    let state = MessageState::parse(state)
        .ok_or_else(|| StoreError::Corrupt(format!("{id}: state {state}")))?;
    Ok(Message {
        id,
        user_id,
        spec,
        body: body.into(),
        created_at,
        not_before,
        due_at,
        retried,
        state,
    })
}

pub fn header_json(header: &HeaderMap) -> String {
    serde_json::to_string(header).unwrap_or_else(|_| "{}".into())
}

pub fn parse_header(json: Option<&str>) -> Result<HeaderMap> {
    match json {
        Some(j) => serde_json::from_str(j).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(HeaderMap::new()),
    }
}

/// The attempt's answer of a log entry, from its columns.
pub fn response_of(
    status: Option<u16>,
    header: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<Option<AttemptResponse>> {
    match status {
        Some(status) => Ok(Some(AttemptResponse {
            status,
            header: parse_header(header)?,
            body: body.unwrap_or_default(),
        })),
        None => Ok(None),
    }
}

pub fn log_state(s: &str) -> Result<LogState> {
    LogState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("log state {s}")))
}

pub use qstash_core::log::url_matches;

/// The most selective single-valued attribute filter of a log query, as an
/// attribute key: the index a listing walks.
pub fn driving_key(f: &LogFilter) -> Option<String> {
    let single = |kind: &str, values: &[String]| {
        (values.len() == 1).then(|| format!("{kind}:{}", values[0]))
    };
    single("schedule", &f.schedule_id)
        .or_else(|| single("queue", &f.queue_name))
        .or_else(|| single("topic", &f.topic_name))
        .or_else(|| single("label", &f.label))
        .or_else(|| single("flow", &f.flow_control_key))
        .or_else(|| single("url", &f.url))
}

/// The log states a listing walks when no message id or attribute key
/// drives it: those asked for, else every state, in one order. Both
/// backends walk their (user, state, time) index once per state and merge
/// the walks (there is no (user, time) index: it cost every log write).
pub fn walked_states(f: &LogFilter) -> impl Iterator<Item = LogState> + '_ {
    LogState::ALL
        .into_iter()
        .filter(|s| f.states.is_empty() || f.states.contains(s))
}

/// Whether the index a listing walks (see `driving_key`, `walked_states`)
/// already holds every filter, so that each row it meets is a match.
pub fn walk_checks_everything(f: &LogFilter) -> bool {
    let mut rest = LogFilter {
        from_date: None,
        to_date: None,
        ..f.clone()
    };
    if !rest.message_ids.is_empty() {
        rest.message_ids.clear();
    } else if let Some(key) = driving_key(f) {
        let field = match key.split_once(':').map(|(kind, _)| kind) {
            Some("schedule") => &mut rest.schedule_id,
            Some("queue") => &mut rest.queue_name,
            Some("topic") => &mut rest.topic_name,
            Some("label") => &mut rest.label,
            Some("flow") => &mut rest.flow_control_key,
            _ => &mut rest.url,
        };
        field.clear();
    } else {
        rest.states.clear();
    }
    rest == LogFilter::default()
}

/// Rows of the log a listing examines at most per page. A filter its index
/// cannot answer (a host, a path, a caller IP...) is checked on the rows
/// the walk meets; on a large log with few matches that walk would be the
/// whole log, so it stops here and answers the page found so far with a
/// cursor where it stopped (the SDKs page with `while (cursor)`).
pub const SCAN_BUDGET: usize = 5_000;

/// Rows one query of a filtered walk fetches.
const SCAN_CHUNK: usize = 500;

/// A page gathered by walking the log in chunks from newest to oldest and
/// checking each row with `LogFilter::matches`; both backends drive it.
pub struct Scan<'f> {
    filter: &'f LogFilter,
    count: usize,
    budget: usize,
    /// Every row the walk meets matches: one chunk of `count` + 1 rows.
    exact: bool,
    examined: usize,
    matched: Vec<(LogCursor, LogEntry)>,
    /// The upper bound of the next chunk: the last row examined, at first
    /// the cursor (or `toDate`).
    upper: Option<LogCursor>,
    exhausted: bool,
}

impl<'f> Scan<'f> {
    pub fn new(filter: &'f LogFilter, cursor: Option<LogCursor>, count: usize) -> Self {
        Self::with_budget(filter, cursor, count, SCAN_BUDGET)
    }

    pub fn with_budget(
        filter: &'f LogFilter,
        cursor: Option<LogCursor>,
        count: usize,
        budget: usize,
    ) -> Self {
        Scan {
            filter,
            count,
            budget: budget.max(count + 1),
            exact: walk_checks_everything(filter),
            examined: 0,
            matched: Vec::new(),
            upper: upper_bound(cursor, filter.to_date),
            exhausted: false,
        }
    }

    /// The next chunk to fetch: rows strictly before `upper`, at most
    /// `limit` of them; None when the page is complete.
    pub fn next_chunk(&self) -> Option<(Option<LogCursor>, usize)> {
        let done =
            self.exhausted || self.matched.len() > self.count || self.examined >= self.budget;
        if done {
            return None;
        }
        let want = if self.exact {
            self.count + 1 - self.matched.len()
        } else {
            SCAN_CHUNK
        };
        Some((self.upper, want.min(self.budget - self.examined)))
    }

    /// One fetched chunk of (position, entry), newest first, of the size
    /// `next_chunk` asked for or less (then the walk reached the end).
    pub fn take(&mut self, asked: usize, rows: Vec<(LogCursor, LogEntry)>) {
        self.exhausted = rows.len() < asked;
        for (at, entry) in rows {
            self.examined += 1;
            self.upper = Some(at);
            if self.matched.len() <= self.count
                && (self.exact || self.filter.matches(entry.state, &entry.message))
            {
                self.matched.push((at, entry));
            }
        }
    }

    pub fn finish(mut self) -> LogPage {
        let cursor = if self.matched.len() > self.count {
            self.matched.truncate(self.count);
            self.matched.last().map(|(at, _)| *at)
        } else if self.exhausted {
            None
        } else {
            // Cut short by the budget: go on below the last row examined.
            self.upper
        };
        LogPage {
            entries: self.matched.into_iter().map(|(_, e)| e).collect(),
            cursor,
        }
    }
}

/// Where a newest-first page ends above: strictly before the cursor, and
/// no later than `toDate`.
pub fn upper_bound(cursor: Option<LogCursor>, to_date: Option<Millis>) -> Option<LogCursor> {
    let to = to_date.map(|t| LogCursor {
        time: t,
        seq: i64::MAX,
    });
    match (cursor, to) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

/// Per-entry details of a log row beyond the message itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventDetail {
    pub error: Option<String>,
    pub next_delivery_time: Option<Millis>,
    pub response_status: Option<u16>,
    pub response_header: Option<String>,
    pub response_body: Option<Vec<u8>>,
}

impl EventDetail {
    pub fn response(r: &AttemptResponse) -> Self {
        EventDetail {
            response_status: Some(r.status),
            response_header: Some(header_json(&r.header)),
            response_body: Some(r.body.clone()),
            ..Default::default()
        }
    }
}

/// What the recording of an outcome needs of the stored message, read
/// without decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub id: String,
    pub user_id: String,
    pub state: String,
    pub due_at: Millis,
    pub retried: u32,
    pub queue: Option<String>,
    pub flow_control_key: Option<String>,
    /// Its log attribute keys.
    pub keys: Vec<String>,
}

/// The DLQ row a failed outcome makes.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqRow {
    pub dlq_id: String,
    pub status: u16,
    pub header: String,
    pub body: Vec<u8>,
    pub error: String,
}

/// What recording an outcome does to its message: the new state, the log
/// entries, a DLQ row for a final failure, and the arrival of a retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: MessageState,
    pub due_at: Millis,
    pub retried: u32,
    pub events: Vec<(LogState, EventDetail)>,
    pub dlq: Option<DlqRow>,
    pub arrival: Option<Arrival>,
}

/// What recording an outcome writes that needs no database: its
/// callbacks' columns and its response's log detail (the headers as
/// JSON). Made before the writer's job, so that they are encoded off the
/// SQLite writer thread.
#[derive(Debug)]
pub struct Prepared {
    pub callbacks: Vec<Encoded>,
    pub response: EventDetail,
}

pub fn prepare(o: &Outcome) -> Result<Prepared> {
    Ok(Prepared {
        callbacks: encode(&o.callbacks)?,
        response: EventDetail::response(&o.response),
    })
}

/// The transition `o` makes of the message `head`; None when the message is
/// no longer in flight (cancelled meanwhile, or recorded already), in which
/// case the outcome and its callbacks are dropped. `response` is
/// `EventDetail::response(&o.response)`.
pub fn transition(head: &Head, o: &Outcome, response: &EventDetail) -> Option<Transition> {
    if head.state != MessageState::Active.as_str() {
        return None;
    }
    let failed = |error: &str| EventDetail {
        error: Some(error.to_string()),
        ..response.clone()
    };
    Some(match &o.kind {
        OutcomeKind::Delivered => Transition {
            state: MessageState::Delivered,
            due_at: head.due_at,
            retried: head.retried,
            events: vec![(LogState::Delivered, response.clone())],
            dlq: None,
            arrival: None,
        },
        OutcomeKind::Retry { next_due, error } => Transition {
            state: MessageState::Pending,
            due_at: *next_due,
            retried: head.retried + 1,
            events: vec![
                (LogState::Error, failed(error)),
                (
                    LogState::Retry,
                    EventDetail {
                        next_delivery_time: Some(*next_due),
                        ..Default::default()
                    },
                ),
            ],
            dlq: None,
            arrival: Some(Arrival {
                user_id: head.user_id.clone(),
                due_at: *next_due,
                queue: head.queue.clone(),
                flow_control_key: head.flow_control_key.clone(),
            }),
        },
        OutcomeKind::Failed { error } => Transition {
            state: MessageState::Failed,
            due_at: head.due_at,
            retried: head.retried,
            events: vec![
                (LogState::Error, failed(error)),
                (LogState::Failed, failed(error)),
            ],
            dlq: Some(DlqRow {
                dlq_id: o.dlq_id.clone().unwrap_or_else(|| ids::dlq_id(o.at)),
                status: o.response.status,
                header: response.response_header.clone().unwrap_or_default(),
                body: o.response.body.clone(),
                error: error.clone(),
            }),
            arrival: None,
        },
    })
}

/// A schedule's stored columns, before its JSON is parsed.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub user_id: String,
    pub id: String,
    pub cron: String,
    pub destination: String,
    pub spec: String,
    pub body: Vec<u8>,
    pub queue_name: Option<String>,
    pub delay_secs: Option<i64>,
    pub caller_ip: Option<String>,
    pub created_at: Millis,
    pub paused: bool,
    pub next_fire: Option<Millis>,
    pub last_fire: Option<Millis>,
    /// JSON array of the last fire's message ids.
    pub last_messages: String,
    pub last_error: Option<String>,
    pub version: i64,
}

/// The columns of a [`ScheduleRow`], in its field order.
pub const SCHEDULE_COLUMNS: &str =
    "user_id, id, cron, destination, spec, body, queue_name, delay_secs, caller_ip,
    created_at, paused, next_fire, last_fire, last_messages, last_error, version";

impl ScheduleRow {
    pub fn decode(self) -> Result<DueSchedule> {
        let id = self.id;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("schedule {id}: {e}"));
        let spec: MessageSpec = serde_json::from_str(&self.spec).map_err(corrupt)?;
        let last_messages: Vec<String> =
            serde_json::from_str(&self.last_messages).map_err(corrupt)?;
        Ok(DueSchedule {
            schedule: Schedule {
                id,
                user_id: self.user_id,
                cron: self.cron,
                destination: self.destination,
                spec,
                body: self.body,
                queue_name: self.queue_name,
                delay_secs: self.delay_secs.map(|d| d.max(0) as u64),
                caller_ip: self.caller_ip,
                created_at: self.created_at,
                paused: self.paused,
                next_fire: self.next_fire,
                last_fire: self.last_fire,
                last_messages,
                last_error: self.last_error,
            },
            version: self.version,
        })
    }
}

/// The JSON of a fire's message ids, kept as the schedule's last fire.
pub fn fired_ids(fire: &ScheduleFire) -> Result<String> {
    let ids: Vec<&str> = fire
        .messages
        .iter()
        .map(|m| m.message.id.as_str())
        .collect();
    serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Where a schedule whose tick `next_fire` passed while the server was
/// down continues (`resume_at`), and whether that fires now; None for a
/// damaged cron, which must not keep the server from starting (the timer
/// stops it at its tick and shows why).
pub fn catch_up(
    cron: &str,
    next_fire: Millis,
    now: Millis,
    window: Millis,
) -> Option<(Option<Millis>, bool)> {
    let cron = CronExpr::parse(cron).ok()?;
    let resume = resume_at(&cron, next_fire, now, window);
    Some((resume, matches!(resume, Some(t) if t <= now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of `n` entries at positions 1..=n, every `every`-th one to
    /// host `hit.example`, and a walk over it as the backends do it.
    struct Log(Vec<(LogCursor, LogEntry)>);

    impl Log {
        fn new(n: i64, every: i64) -> Log {
            let entry = |i: i64| {
                let host = if i % every == 0 { "hit" } else { "miss" };
                let mut message = message_for_scan();
                message.spec.url = format!("http://{host}.example/p");
                message.id = format!("m{i}");
                LogEntry {
                    time: i,
                    state: LogState::Created,
                    error: None,
                    next_delivery_time: None,
                    response: None,
                    message,
                }
            };
            Log((1..=n)
                .rev()
                .map(|i| (LogCursor { time: i, seq: i }, entry(i)))
                .collect())
        }

        /// One page, and how many rows it examined.
        fn page(&self, f: &LogFilter, cursor: Option<LogCursor>, count: usize) -> (LogPage, usize) {
            let mut scan = Scan::with_budget(f, cursor, count, 10);
            let mut examined = 0;
            while let Some((upper, limit)) = scan.next_chunk() {
                let rows: Vec<_> = self
                    .0
                    .iter()
                    .filter(|(at, _)| upper.is_none_or(|u| *at < u))
                    .take(limit)
                    .cloned()
                    .collect();
                examined += rows.len();
                scan.take(limit, rows);
            }
            (scan.finish(), examined)
        }
    }

    fn message_for_scan() -> Message {
        Message {
            id: String::new(),
            user_id: "u".into(),
            spec: MessageSpec::default(),
            body: Default::default(),
            created_at: 0,
            not_before: 0,
            due_at: 0,
            retried: 0,
            state: MessageState::Pending,
        }
    }

    #[test]
    fn a_sparse_filter_pages_through_the_log_in_bounded_steps() {
        let log = Log::new(95, 7);
        let f = LogFilter {
            host: vec!["hit.example".into()],
            ..Default::default()
        };
        let (mut found, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let (page, examined) = log.page(&f, cursor, 3);
            assert!(examined <= 10, "a page examined {examined} rows");
            found.extend(page.entries.into_iter().map(|e| e.time));
            pages += 1;
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let expected: Vec<i64> = (1..=95).rev().filter(|i| i % 7 == 0).collect();
        assert_eq!(found, expected);
        assert!(pages >= 10, "{pages} pages for 95 rows at 10 per page");
    }

    #[test]
    fn a_page_that_finds_nothing_within_its_budget_still_hands_out_a_cursor() {
        let log = Log::new(50, 1000);
        let f = LogFilter {
            host: vec!["hit.example".into()],
            ..Default::default()
        };
        let (page, examined) = log.page(&f, None, 5);
        assert!(page.entries.is_empty());
        assert_eq!(examined, 10);
        assert_eq!(page.cursor, Some(LogCursor { time: 41, seq: 41 }));
        let (last, _) = log.page(&f, Some(LogCursor { time: 1, seq: 1 }), 5);
        assert_eq!(last, LogPage::default());
    }

    #[test]
    fn a_filter_the_index_answers_fetches_one_row_more_than_the_page() {
        let log = Log::new(50, 1);
        let (page, examined) = log.page(&LogFilter::default(), None, 4);
        assert_eq!(examined, 5);
        assert_eq!(page.entries.len(), 4);
        assert_eq!(page.cursor, Some(LogCursor { time: 47, seq: 47 }));
        assert!(!walk_checks_everything(&LogFilter {
            states: vec![LogState::Failed],
            queue_name: vec!["q".into()],
            from_date: Some(3),
            ..Default::default()
        }));
        assert!(walk_checks_everything(&LogFilter {
            queue_name: vec!["q".into()],
            from_date: Some(3),
            ..Default::default()
        }));
        // Several states are walked one by one: exact too, unless another
        // filter is left to check.
        let states = vec![LogState::Created, LogState::Delivered];
        assert!(walk_checks_everything(&LogFilter {
            states: states.clone(),
            ..Default::default()
        }));
        assert!(!walk_checks_everything(&LogFilter {
            states,
            host: vec!["h".into()],
            ..Default::default()
        }));
    }

    #[test]
    fn a_listing_walks_the_states_asked_for_once_each_or_every_state() {
        let all: Vec<_> = walked_states(&LogFilter::default()).collect();
        assert_eq!(all, LogState::ALL);
        let f = LogFilter {
            states: vec![LogState::Failed, LogState::Created, LogState::Failed],
            ..Default::default()
        };
        let some: Vec<_> = walked_states(&f).collect();
        assert_eq!(some, vec![LogState::Created, LogState::Failed]);
    }

    fn head(state: MessageState) -> Head {
        Head {
            id: "m".into(),
            user_id: "u".into(),
            state: state.as_str().into(),
            due_at: 10,
            retried: 2,
            queue: Some("q".into()),
            flow_control_key: None,
            keys: vec!["url:x".into()],
        }
    }

    fn outcome(kind: OutcomeKind) -> Outcome {
        Outcome {
            message_id: "m".into(),
            at: 100,
            kind,
            response: AttemptResponse {
                status: 500,
                header: HeaderMap::from([("Retry-After".to_string(), vec!["5".to_string()])]),
                body: b"no".to_vec(),
            },
            dlq_id: Some("100-7".into()),
            callbacks: vec![],
            fails_run: None,
        }
    }

    /// The transition of `o` for a message in `state`.
    fn recorded(state: MessageState, o: &Outcome) -> Option<Transition> {
        transition(&head(state), o, &prepare(o).unwrap().response)
    }

    #[test]
    fn a_message_no_longer_in_flight_ignores_its_outcome() {
        let o = outcome(OutcomeKind::Delivered);
        assert!(recorded(MessageState::Cancelled, &o).is_none());
        assert!(recorded(MessageState::Pending, &o).is_none());
    }

    #[test]
    fn a_retry_counts_logs_error_then_retry_and_arrives_on_its_lines() {
        let o = outcome(OutcomeKind::Retry {
            next_due: 500,
            error: "boom".into(),
        });
        let t = recorded(MessageState::Active, &o).unwrap();
        assert_eq!(
            (t.state, t.due_at, t.retried),
            (MessageState::Pending, 500, 3)
        );
        let states: Vec<LogState> = t.events.iter().map(|(s, _)| *s).collect();
        assert_eq!(states, [LogState::Error, LogState::Retry]);
        assert_eq!(t.events[0].1.error.as_deref(), Some("boom"));
        assert_eq!(t.events[0].1.response_status, Some(500));
        assert_eq!(t.events[1].1.next_delivery_time, Some(500));
        let a = t.arrival.unwrap();
        assert_eq!((a.due_at, a.queue.as_deref()), (500, Some("q")));
    }

    #[test]
    fn a_final_failure_makes_a_dlq_row_with_the_chosen_id() {
        let o = outcome(OutcomeKind::Failed {
            error: "gone".into(),
        });
        let t = recorded(MessageState::Active, &o).unwrap();
        assert_eq!(t.state, MessageState::Failed);
        let dlq = t.dlq.unwrap();
        assert_eq!((dlq.dlq_id.as_str(), dlq.status), ("100-7", 500));
        assert_eq!(dlq.header, header_json(&o.response.header));
        assert!(t.arrival.is_none());
    }

    #[test]
    fn keys_from_columns_match_keys_from_the_message() {
        assert_eq!(
            keys_of_columns(
                "http://a/b",
                None,
                Some("q"),
                None,
                Some("k"),
                Some(",x,y,")
            ),
            ["url:http://a/b", "queue:q", "flow:k", "label:x", "label:y"]
        );
    }

    #[test]
    fn url_filters_match_host_without_port_and_path() {
        let (h, p) = (vec!["a.example".to_string()], vec!["/b".to_string()]);
        assert!(url_matches("http://a.example:8080/b?x=1", &h, &p));
        assert!(!url_matches("http://c.example/b", &h, &p));
        assert!(url_matches("not a url", &[], &[]));
    }
}
