//! Values of the schedule methods of [`crate::Store`].

use qstash_core::clock::Millis;
use qstash_core::schedule::Schedule;
use qstash_core::MessageState;

use crate::NewMessage;

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
