//! Cron schedules: the `Upstash-Cron` expression with its time zone, the
//! schedule record, when it fires next, and what a restart does with ticks
//! that passed while the server was down. Pure: every rule takes "now" as a
//! value.
//!
//! Parsing and next-time computation are croner's (Vixie/OCPS rules,
//! including DST); time zones are chrono-tz's compiled-in tzdb.
//!
//! DST, as a standard cron daemon does it:
//! - spring forward (02:00 → 03:00 skipped): a fixed-time job (single
//!   minute and hour, such as `30 2 * * *`) runs once at the first instant
//!   after the gap (03:00 local); interval and wildcard jobs (`*/15 * * * *`,
//!   `30 * * * *`) simply have no runs in the missing hour.
//! - fall back (01:00-02:00 repeated): a fixed-time job runs once, at the
//!   first of the two instants; interval and wildcard jobs run in both.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::clock::Millis;
use crate::message::NewMessage;
use crate::message::{MessageSpec, MessageState};

/// The time-zone prefix QStash documents: `CRON_TZ=America/New_York */5 * * * *`.
/// `TZ=` is taken too, as Go's robfig/cron (and so QStash) takes it.
const TZ_PREFIXES: [&str; 2] = ["CRON_TZ=", "TZ="];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    #[error("invalid Upstash-Cron header: it is required and must not be empty")]
    Empty,
    #[error("invalid Upstash-Cron header: unknown time zone {0:?} in CRON_TZ (use an IANA name such as America/New_York)")]
    UnknownZone(String),
    #[error("invalid Upstash-Cron header: CRON_TZ= (or TZ=) must be followed by a time zone and the 5 cron fields")]
    MissingFields,
    #[error("invalid Upstash-Cron header: unknown prefix {0:?}; only CRON_TZ=<IANA zone> (or TZ=<IANA zone>) may come before the 5 fields")]
    UnknownPrefix(String),
    #[error("invalid Upstash-Cron header {expr:?}: need exactly 5 fields (minute hour day-of-month month day-of-week), got {got}{hint}")]
    FieldCount {
        expr: String,
        got: usize,
        hint: &'static str,
    },
    #[error("invalid Upstash-Cron header {expr:?}: {reason}")]
    Invalid { expr: String, reason: String },
    #[error("invalid Upstash-Cron header {0:?}: it never fires")]
    NeverFires(String),
}

/// A parsed `Upstash-Cron`: 5 fields, minute resolution, optional zone.
#[derive(Debug, Clone)]
pub struct CronExpr {
    /// As given, trimmed: what the API shows back.
    text: String,
    zone: Tz,
    cron: Cron,
}

impl CronExpr {
    pub fn parse(raw: &str) -> Result<Self, CronError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(CronError::Empty);
        }
        let prefixed = TZ_PREFIXES.iter().find_map(|p| text.strip_prefix(p));
        let (zone, fields) = match prefixed {
            Some(rest) => {
                let (name, fields) = rest
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .ok_or(CronError::MissingFields)?;
                let zone =
                    Tz::from_str(name).map_err(|_| CronError::UnknownZone(name.to_string()))?;
                (zone, fields.trim())
            }
            None => (Tz::UTC, text),
        };
        if let Some(first) = fields.split_whitespace().next().filter(|f| f.contains('=')) {
            return Err(CronError::UnknownPrefix(first.to_string()));
        }
        // Counted here, so the answer says what is wrong in QStash's terms
        // rather than croner's (which would also take seconds and years).
        let got = fields.split_whitespace().count();
        if got != 5 {
            let hint = match got {
                6 | 7 => ": seconds and years are not supported, the resolution is one minute",
                _ => "",
            };
            return Err(CronError::FieldCount {
                expr: text.to_string(),
                got,
                hint,
            });
        }
        let cron = parser().parse(fields).map_err(|e| CronError::Invalid {
            expr: text.to_string(),
            reason: blame_field(fields).unwrap_or_else(|| e.to_string()),
        })?;
        let expr = Self {
            text: text.to_string(),
            zone,
            cron,
        };
        Ok(expr)
    }

    /// Parses and checks that the expression fires at least once after `now`.
    pub fn parse_firing(raw: &str, now: Millis) -> Result<Self, CronError> {
        let expr = Self::parse(raw)?;
        match expr.next_after(now) {
            Some(_) => Ok(expr),
            None => Err(CronError::NeverFires(expr.text)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick strictly after `at`.
    pub fn next_after(&self, at: Millis) -> Option<Millis> {
        // Ticks fall on whole minutes, so searching from the whole second
        // (exclusive) never returns a tick at or before `at`.
        let start = self.zoned(at.div_euclid(1000) * 1000)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp_millis())
    }

    /// The latest tick at or before `at`.
    pub fn latest_at_or_before(&self, at: Millis) -> Option<Millis> {
        let start = self.zoned(at.div_euclid(1000) * 1000)?;
        let prev = self.cron.find_previous_occurrence(&start, true).ok()?;
        Some(prev.timestamp_millis())
    }

    fn zoned(&self, at: Millis) -> Option<DateTime<Tz>> {
        Utc.timestamp_millis_opt(at)
            .single()
            .map(|t| t.with_timezone(&self.zone))
    }

    /// The IANA name of the zone the fields are read in (`UTC` if none).
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// Up to `n` ticks after `at`, earliest first (fewer if it stops firing).
    pub fn upcoming(&self, at: Millis, n: usize) -> Vec<Millis> {
        std::iter::successors(self.next_after(at), |t| self.next_after(*t))
            .take(n)
            .collect()
    }

    /// `at` as wall-clock time in the expression's zone, with the zone's
    /// abbreviation: `2025-03-30 03:00 CEST`.
    pub fn local_time(&self, at: Millis) -> Option<String> {
        self.zoned(at)
            .map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string())
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Names the first field croner rejects on its own (the others set to `*`),
/// since croner's messages do not say which field is wrong.
fn blame_field(fields: &str) -> Option<String> {
    let parts: Vec<&str> = fields.split_whitespace().collect();
    (0..parts.len()).find_map(|i| {
        let alone: Vec<&str> = (0..parts.len())
            .map(|j| if j == i { parts[j] } else { "*" })
            .collect();
        parser()
            .parse(&alone.join(" "))
            .err()
            .map(|e| format!("{} field {:?}: {e}", FIELD_NAMES[i], parts[i]))
    })
}

/// When a schedule whose next tick was `next_fire` should fire, now that
/// the server starts at `now` after being down.
///
/// Ticks that passed while the server was down are coalesced: the latest of
/// them fires once if it is no older than `catch_up` (as `anacron` or a
/// persistent systemd timer would), every older one is skipped, and the
/// schedule continues with its first tick after `now`.
pub fn resume_at(
    cron: &CronExpr,
    next_fire: Millis,
    now: Millis,
    catch_up: Millis,
) -> Option<Millis> {
    if next_fire > now {
        return Some(next_fire);
    }
    match cron.latest_at_or_before(now) {
        Some(latest) if latest >= next_fire && now - latest <= catch_up => Some(latest),
        _ => cron.next_after(now),
    }
}

/// `Upstash-Schedule-Id`: the characters QStash allows.
pub fn validate_schedule_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid Upstash-Schedule-Id header: {id:?} must be 1 to 256 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        ))
    }
}

/// A fresh schedule id: `scd_` + base58 of a UUIDv7.
pub fn schedule_id() -> String {
    crate::ids::prefixed("scd_", uuid::Uuid::now_v7())
}

/// A cron schedule: what to publish, where, and when it fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: String,
    pub user_id: String,
    /// The `Upstash-Cron` value, trimmed.
    pub cron: String,
    /// A URL (query included) or a URL group name, as given.
    pub destination: String,
    /// The settings of each fire's messages; `schedule_id` is set.
    pub spec: MessageSpec,
    pub body: Vec<u8>,
    /// `Upstash-Queue-Name`: each fire is enqueued there.
    pub queue_name: Option<String>,
    /// `Upstash-Delay`: each fire's messages are due this long after it.
    pub delay_secs: Option<u64>,
    pub caller_ip: Option<String>,
    pub created_at: Millis,
    pub paused: bool,
    /// The next tick; None while paused.
    pub next_fire: Option<Millis>,
    /// When the last tick fired, and the messages it created.
    pub last_fire: Option<Millis>,
    pub last_messages: Vec<String>,
    /// Why the last tick created no message (a URL group that is gone...).
    pub last_error: Option<String>,
}

/// What the API shows for a message of a schedule's last fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireState {
    InProgress,
    Success,
    Fail,
}

impl FireState {
    pub fn of(state: MessageState) -> Self {
        match state {
            MessageState::Pending | MessageState::Active => Self::InProgress,
            MessageState::Delivered => Self::Success,
            MessageState::Failed | MessageState::Cancelled => Self::Fail,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Success => "SUCCESS",
            Self::Fail => "FAIL",
        }
    }
}

/// A schedule as the API shows it: with the states of its last fire's
/// messages (those not yet purged).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleInfo {
    pub schedule: Schedule,
    pub last_states: Vec<(String, MessageState)>,
}

/// A schedule whose tick is due, with the version it was read at: a fire
/// commits only if nobody replaced, paused or deleted it since.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    pub schedule: Schedule,
    pub version: i64,
}

/// Where a pass over due schedules left off: its last (tick, user, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCursor {
    pub next_fire: Millis,
    pub user_id: String,
    pub id: String,
}

impl DueCursor {
    pub fn of(d: &DueSchedule) -> Option<Self> {
        Some(Self {
            next_fire: d.schedule.next_fire?,
            user_id: d.schedule.user_id.clone(),
            id: d.schedule.id.clone(),
        })
    }
}

/// One tick of a schedule: its messages and its next tick, committed
/// together or not at all.
#[derive(Debug, Clone)]
pub struct ScheduleFire {
    pub user_id: String,
    pub schedule_id: String,
    pub version: i64,
    /// The tick being fired: the schedule's `next_fire` when it was read.
    pub tick: Millis,
    /// The tick after it; None if the expression never fires again.
    pub next_fire: Option<Millis>,
    pub fired_at: Millis,
    pub messages: Vec<NewMessage>,
    /// Why the tick created no message, if it did not.
    pub error: Option<String>,
}

/// What the start-up pass did with ticks missed while the server was down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Schedules whose latest missed tick will fire now.
    pub firing: u64,
    /// Schedules whose missed ticks were older than the window, skipped.
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// Unix ms of a wall-clock time in `zone`; panics on a gap.
    fn local(zone: &str, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Millis {
        let tz = Tz::from_str(zone).unwrap();
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap();
        tz.from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Millis {
        local("UTC", y, mo, d, h, mi)
    }

    const MIN: Millis = 60_000;

    #[test]
    fn upcoming_ticks_read_in_the_zone_across_spring_forward() {
        let c = CronExpr::parse("CRON_TZ=Europe/Berlin 30 2 * * *").unwrap();
        assert_eq!(c.zone_name(), "Europe/Berlin");
        let from = local("Europe/Berlin", 2025, 3, 28, 12, 0);
        let shown: Vec<String> = c
            .upcoming(from, 4)
            .into_iter()
            .map(|t| c.local_time(t).unwrap())
            .collect();
        assert_eq!(
            shown,
            [
                "2025-03-29 02:30 CET",
                "2025-03-30 03:00 CEST",
                "2025-03-31 02:30 CEST",
                "2025-04-01 02:30 CEST",
            ]
        );
        let utc_every = CronExpr::parse("*/15 * * * *").unwrap();
        assert_eq!(utc_every.zone_name(), "UTC");
        let t = utc(2025, 1, 1, 0, 0);
        assert_eq!(
            utc_every.upcoming(t, 3),
            vec![t + 15 * MIN, t + 30 * MIN, t + 45 * MIN]
        );
        assert_eq!(utc_every.local_time(t).unwrap(), "2025-01-01 00:00 UTC");
    }

    #[test]
    fn every_minute_next_is_the_next_whole_minute() {
        let c = CronExpr::parse("* * * * *").unwrap();
        let t = utc(2025, 1, 1, 12, 0);
        assert_eq!(c.next_after(t), Some(t + MIN));
        assert_eq!(c.next_after(t + 500), Some(t + MIN));
        assert_eq!(c.next_after(t - 1), Some(t));
        assert_eq!(c.latest_at_or_before(t + 59_999), Some(t));
        assert_eq!(c.latest_at_or_before(t), Some(t));
    }

    #[test]
    fn trims_and_keeps_the_text() {
        let c = CronExpr::parse("  */10 * * * * ").unwrap();
        assert_eq!(c.as_str(), "*/10 * * * *");
        let tz = CronExpr::parse("TZ=Europe/Istanbul 0 9 * * 1-5").unwrap();
        assert_eq!(tz.zone, Tz::Europe__Istanbul);
        for bad in ["cron_tz=UTC 0 9 * * *", "ZONE=UTC 0 9 * * *"] {
            let e = CronExpr::parse(bad).unwrap_err();
            assert!(matches!(e, CronError::UnknownPrefix(_)), "{bad}: {e}");
        }
        let c = CronExpr::parse("CRON_TZ=Europe/Istanbul 0 9 * * 1-5").unwrap();
        assert_eq!(c.as_str(), "CRON_TZ=Europe/Istanbul 0 9 * * 1-5");
    }

    #[test]
    fn time_zone_shifts_the_next_time() {
        let c = CronExpr::parse("CRON_TZ=America/New_York 0 9 * * *").unwrap();
        // 2025-01-15 is in EST (UTC-5): 09:00 local is 14:00 UTC.
        assert_eq!(
            c.next_after(utc(2025, 1, 15, 0, 0)),
            Some(utc(2025, 1, 15, 14, 0))
        );
        // July is EDT (UTC-4): 13:00 UTC.
        assert_eq!(
            c.next_after(utc(2025, 7, 15, 0, 0)),
            Some(utc(2025, 7, 15, 13, 0))
        );
        let tokyo = CronExpr::parse("CRON_TZ=Asia/Tokyo 30 8 * * *").unwrap();
        assert_eq!(
            tokyo.next_after(utc(2025, 3, 1, 0, 0)),
            Some(utc(2025, 3, 1, 23, 30))
        );
    }

    #[test]
    fn spring_forward_fixed_time_job_runs_once_right_after_the_gap() {
        // 2025-03-09 America/New_York: 02:00 EST jumps to 03:00 EDT.
        let c = CronExpr::parse("CRON_TZ=America/New_York 30 2 * * *").unwrap();
        let before = local("America/New_York", 2025, 3, 8, 12, 0);
        let next = c.next_after(before).unwrap();
        assert_eq!(next, local("America/New_York", 2025, 3, 9, 3, 0));
        // ...and the day after it is back at 02:30.
        assert_eq!(
            c.next_after(next),
            Some(local("America/New_York", 2025, 3, 10, 2, 30))
        );
    }

    #[test]
    fn spring_forward_interval_job_has_no_runs_in_the_missing_hour() {
        let c = CronExpr::parse("CRON_TZ=America/New_York */30 * * * *").unwrap();
        let t = local("America/New_York", 2025, 3, 9, 1, 30);
        let next = c.next_after(t).unwrap();
        // 01:30 EST + 30 min is 03:00 EDT: 02:00 and 02:30 do not exist.
        assert_eq!(next, t + 30 * MIN);
        assert_eq!(next, local("America/New_York", 2025, 3, 9, 3, 0));
    }

    #[test]
    fn fall_back_fixed_time_job_runs_once_interval_job_twice() {
        // 2025-11-02 America/New_York: 01:00-02:00 happens twice.
        let fixed = CronExpr::parse("CRON_TZ=America/New_York 30 1 * * *").unwrap();
        let first = local("America/New_York", 2025, 11, 2, 1, 30); // EDT
        let t = first - 10 * MIN;
        assert_eq!(fixed.next_after(t), Some(first));
        assert_eq!(
            fixed.next_after(first),
            Some(local("America/New_York", 2025, 11, 3, 1, 30))
        );
        let hourly = CronExpr::parse("CRON_TZ=America/New_York 30 * * * *").unwrap();
        assert_eq!(hourly.next_after(first), Some(first + 60 * MIN)); // 01:30 EST
    }

    #[test]
    fn bad_expressions_name_the_problem() {
        let cases = [
            ("", "required"),
            ("* * * *", "got 4"),
            ("0 * * * * *", "seconds"),
            ("* * * * * * *", "got 7"),
            ("60 * * * *", "minute field \"60\""),
            ("* 24 * * *", "hour field \"24\""),
            ("* * 32 * *", "day-of-month field \"32\""),
            ("* * 0 * *", "day-of-month field \"0\""),
            ("* * * 13 *", "month field \"13\""),
            ("* * * * 8", "day-of-week field \"8\""),
            ("*/0 * * * *", "minute field"),
            ("5-1 * * * *", "minute field"),
            ("hello world foo bar baz", "Upstash-Cron"),
            ("CRON_TZ=Mars/Olympus * * * * *", "Mars/Olympus"),
            ("CRON_TZ=Europe/Berlin", "CRON_TZ"),
        ];
        for (expr, needle) in cases {
            let err = CronExpr::parse(expr).expect_err(expr).to_string();
            assert!(err.contains(needle), "{expr:?}: {err}");
            assert!(err.contains("Upstash-Cron"), "{expr:?}: {err}");
        }
        assert!(matches!(
            CronExpr::parse_firing("0 0 30 2 *", 0),
            Err(CronError::NeverFires(_))
        ));
    }

    #[test]
    fn restart_fires_the_latest_missed_tick_within_the_window_once() {
        let c = CronExpr::parse("* * * * *").unwrap();
        let t = utc(2025, 1, 1, 12, 0);
        // Down from before 12:00 until 12:05:30; window 10 min: 12:05 fires.
        assert_eq!(
            resume_at(&c, t, t + 5 * MIN + 30_000, 10 * MIN),
            Some(t + 5 * MIN)
        );
        // Window 10 s: 12:05 is 30 s old, skipped; next is 12:06.
        assert_eq!(
            resume_at(&c, t, t + 5 * MIN + 30_000, 10_000),
            Some(t + 6 * MIN)
        );
        // Not yet due: unchanged.
        assert_eq!(resume_at(&c, t + MIN, t + 30_000, 0), Some(t + MIN));
        // Due exactly now with a zero window: still fires.
        assert_eq!(resume_at(&c, t, t, 0), Some(t));
    }

    #[test]
    fn restart_of_a_daily_job() {
        let c = CronExpr::parse("0 3 * * *").unwrap();
        let tick = utc(2025, 1, 2, 3, 0);
        let now = tick + 2 * 3_600_000;
        assert_eq!(resume_at(&c, tick, now, 86_400_000), Some(tick));
        assert_eq!(
            resume_at(&c, tick, now, 3_600_000),
            Some(utc(2025, 1, 3, 3, 0))
        );
    }

    #[test]
    fn schedule_ids() {
        assert!(schedule_id().starts_with("scd_"));
        assert!(validate_schedule_id("my-sched_1.a").is_ok());
        for bad in ["", "a/b", "a b", "é"] {
            assert!(validate_schedule_id(bad)
                .unwrap_err()
                .contains("Upstash-Schedule-Id"));
        }
    }

    #[test]
    fn fire_states() {
        assert_eq!(FireState::of(MessageState::Active).as_str(), "IN_PROGRESS");
        assert_eq!(FireState::of(MessageState::Delivered).as_str(), "SUCCESS");
        assert_eq!(FireState::of(MessageState::Failed).as_str(), "FAIL");
    }
}
