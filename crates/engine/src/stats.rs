//! Per-user, per-minute counts of what happened to messages over the last
//! hour (published, delivered, failed, retried), for the console's
//! overview (`GET /v2/stats`). In memory: they start at zero with the
//! process, cost one short lock per event, and never touch the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use qstash_core::clock::Millis;
use qstash_store::OutcomeKind;

const MINUTE: Millis = 60_000;
/// Minutes kept and answered: the last hour, this minute included.
pub const MINUTES: usize = 60;

/// What happened in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// Start of the minute (unix ms).
    pub minute: Millis,
    /// Messages created by a publish, enqueue, batch, schedule fire or
    /// DLQ retry (deduplicated publishes are not counted).
    pub published: u64,
    /// Attempts answered with a 2xx.
    pub delivered: u64,
    /// Attempts that failed for the last time: the message went to the DLQ.
    pub failed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
}

/// The kind of event counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Published,
    Delivered,
    Failed,
    Retried,
}

impl Event {
    pub fn of(kind: &OutcomeKind) -> Self {
        match kind {
            OutcomeKind::Delivered => Event::Delivered,
            OutcomeKind::Retry { .. } => Event::Retried,
            OutcomeKind::Failed { .. } => Event::Failed,
        }
    }
}

/// One user's last hour: at most [`MINUTES`] buckets, oldest first, only
/// minutes in which something happened.
#[derive(Debug, Default, Clone)]
pub struct Hour {
    buckets: VecDeque<MinuteCounts>,
}

impl Hour {
    pub fn add(&mut self, at: Millis, event: Event, n: u64) {
        let minute = at - at.rem_euclid(MINUTE);
        let bucket = MinuteCounts {
            minute,
            ..Default::default()
        };
        // Events arrive almost in time order (a time read just before a
        // newer one was counted can come second), so look from the back.
        let i = match self.buckets.iter().rposition(|b| b.minute <= minute) {
            Some(i) if self.buckets[i].minute == minute => i,
            Some(i) => {
                self.buckets.insert(i + 1, bucket);
                i + 1
            }
            None => {
                self.buckets.push_front(bucket);
                0
            }
        };
        let b = &mut self.buckets[i];
        let slot = match event {
            Event::Published => &mut b.published,
            Event::Delivered => &mut b.delivered,
            Event::Failed => &mut b.failed,
            Event::Retried => &mut b.retried,
        };
        *slot += n;
        while self.buckets.len() > MINUTES {
            self.buckets.pop_front();
        }
    }

    /// The [`MINUTES`] minutes ending with the one holding `now`, oldest
    /// first, zero where nothing happened.
    pub fn last_hour(&self, now: Millis) -> Vec<MinuteCounts> {
        let current = now - now.rem_euclid(MINUTE);
        let first = current - (MINUTES as Millis - 1) * MINUTE;
        (0..MINUTES as Millis)
            .map(|i| {
                let minute = first + i * MINUTE;
                self.buckets
                    .iter()
                    .find(|b| b.minute == minute)
                    .copied()
                    .unwrap_or(MinuteCounts {
                        minute,
                        ..Default::default()
                    })
            })
            .collect()
    }
}

/// Every user's hour. The lock is held only to bump a counter or copy an
/// hour out, never across an await.
#[derive(Debug, Default)]
pub struct Stats {
    users: Mutex<HashMap<String, Hour>>,
}

impl Stats {
    pub fn add(&self, user_id: &str, at: Millis, event: Event, n: u64) {
        if n == 0 {
            return;
        }
        let mut users = self.users.lock().expect("stats lock");
        match users.get_mut(user_id) {
            Some(hour) => hour.add(at, event, n),
            None => {
                let mut hour = Hour::default();
                hour.add(at, event, n);
                users.insert(user_id.to_string(), hour);
            }
        }
    }

    pub fn last_hour(&self, user_id: &str, now: Millis) -> Vec<MinuteCounts> {
        let hour = self
            .users
            .lock()
            .expect("stats lock")
            .get(user_id)
            .cloned()
            .unwrap_or_default();
        hour.last_hour(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_040_000; // a whole minute

    #[test]
    fn events_land_in_their_minute_and_the_hour_is_zero_filled() {
        let mut h = Hour::default();
        h.add(T0 + 1, Event::Published, 2);
        h.add(T0 + 59_999, Event::Delivered, 1);
        h.add(T0 + MINUTE, Event::Retried, 1);
        h.add(T0 + 3 * MINUTE + 5, Event::Failed, 4);
        let hour = h.last_hour(T0 + 3 * MINUTE + 10);
        assert_eq!(hour.len(), MINUTES);
        let last = hour[MINUTES - 1];
        assert_eq!((last.minute, last.failed), (T0 + 3 * MINUTE, 4));
        assert_eq!(
            hour[MINUTES - 2],
            MinuteCounts {
                minute: T0 + 2 * MINUTE,
                ..Default::default()
            }
        );
        assert_eq!(hour[MINUTES - 3].retried, 1);
        let first = hour[MINUTES - 4];
        assert_eq!((first.published, first.delivered), (2, 1));
        assert!(hour.windows(2).all(|w| w[1].minute - w[0].minute == MINUTE));
    }

    #[test]
    fn minutes_older_than_an_hour_are_dropped() {
        let mut h = Hour::default();
        for i in 0..200 {
            h.add(T0 + i * MINUTE, Event::Published, 1);
        }
        assert_eq!(h.buckets.len(), MINUTES);
        let now = T0 + 199 * MINUTE;
        let hour = h.last_hour(now);
        assert!(hour.iter().all(|m| m.published == 1));
        // An hour later with nothing new, everything has aged out.
        let later = h.last_hour(now + 60 * MINUTE);
        assert!(later.iter().all(|m| m.published == 0));
    }

    #[test]
    fn a_late_event_counts_in_its_own_minute() {
        let mut h = Hour::default();
        h.add(T0 + 2 * MINUTE, Event::Published, 1);
        h.add(T0 + MINUTE + 30, Event::Delivered, 1);
        h.add(T0 + 30, Event::Delivered, 2);
        let hour = h.last_hour(T0 + 2 * MINUTE);
        assert_eq!(hour[MINUTES - 3].delivered, 2);
        assert_eq!(hour[MINUTES - 2].delivered, 1);
        assert_eq!(hour[MINUTES - 1].published, 1);
    }

    #[test]
    fn users_are_counted_apart() {
        let s = Stats::default();
        s.add("a", T0, Event::Published, 3);
        s.add("b", T0, Event::Published, 1);
        s.add("b", T0, Event::Failed, 0);
        assert_eq!(s.last_hour("a", T0)[MINUTES - 1].published, 3);
        assert_eq!(s.last_hour("b", T0)[MINUTES - 1].published, 1);
        assert_eq!(s.last_hour("c", T0)[MINUTES - 1].published, 0);
    }
}
