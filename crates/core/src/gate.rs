//! The arithmetic of the dispatch gate: a flow-control key's limits (as
//! the latest message or a pin set them), its sliding rate window, and how
//! many of its waiting messages may start now. No IO and no clock: the
//! engine passes `now`.

use std::collections::VecDeque;

use crate::clock::Millis;
use crate::flow_control::FlowControl;
use crate::flow_control::FlowKey;

/// What limits a flow-control key, and which of them are pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    pub parallelism: Option<u32>,
    pub rate: Option<u32>,
    pub period_secs: u64,
    pub pinned_parallelism: bool,
    pub pinned_rate: bool,
}

impl Default for KeyLimits {
    fn default() -> Self {
        Self {
            parallelism: None,
            rate: None,
            period_secs: 1,
            pinned_parallelism: false,
            pinned_rate: false,
        }
    }
}

impl KeyLimits {
    /// The latest message's configuration wins, except what is pinned.
    pub fn apply_message(&mut self, fc: &FlowControl) {
        if !self.pinned_parallelism {
            self.parallelism = fc.parallelism;
        }
        if !self.pinned_rate {
            self.rate = fc.rate;
            self.period_secs = fc.period;
        }
    }

    /// Pins what is given; a rate without a period gets the default 1 s.
    pub fn pin(&mut self, parallelism: Option<u32>, rate: Option<u32>, period_secs: Option<u64>) {
        if let Some(p) = parallelism {
            self.parallelism = Some(p);
            self.pinned_parallelism = true;
        }
        if rate.is_some() || period_secs.is_some() {
            if let Some(r) = rate {
                self.rate = Some(r);
            }
            self.period_secs =
                period_secs.unwrap_or(if rate.is_some() { 1 } else { self.period_secs });
            self.pinned_rate = true;
        }
    }

    pub fn unpin(&mut self, parallelism: bool, rate: bool) {
        if parallelism {
            self.pinned_parallelism = false;
        }
        if rate {
            self.pinned_rate = false;
        }
    }

    pub fn period_ms(&self) -> Millis {
        self.period_secs as Millis * 1000
    }
}

/// Start times of the deliveries in the last period: the rate limit is a
/// sliding window, so no interval of one period ever sees more than `rate`
/// starts (a fixed window would allow twice that across a boundary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// Ascending; only the last `rate` matter.
    starts: VecDeque<Millis>,
    /// When the rate was last reset (pin, resetRate); reported as the
    /// period start while the window is empty.
    reset_at: Millis,
}

impl RateWindow {
    pub fn from_starts(mut starts: Vec<Millis>, reset_at: Millis) -> Self {
        starts.sort_unstable();
        starts.retain(|s| *s >= reset_at);
        Self {
            starts: starts.into(),
            reset_at,
        }
    }

    fn prune(&mut self, now: Millis, period_ms: Millis) {
        while self.starts.front().is_some_and(|s| *s <= now - period_ms) {
            self.starts.pop_front();
        }
    }

    /// Starts in the window ending at `now`.
    pub fn count(&mut self, now: Millis, period_ms: Millis) -> u32 {
        self.prune(now, period_ms);
        self.starts.len() as u32
    }

    /// How many more may start at `now` under `rate`.
    pub fn available(&mut self, now: Millis, rate: u32, period_ms: Millis) -> u32 {
        rate.saturating_sub(self.count(now, period_ms))
    }

    /// When one more may start, if none may now.
    pub fn reopens_at(&mut self, now: Millis, rate: u32, period_ms: Millis) -> Option<Millis> {
        let n = self.count(now, period_ms) as usize;
        let rate = rate as usize;
        (rate > 0 && n >= rate).then(|| self.starts[n - rate] + period_ms)
    }

    /// Records a start; keeps no more entries than `keep` (the rate).
    pub fn record(&mut self, at: Millis, keep: u32) {
        self.starts.push_back(at);
        while self.starts.len() > keep.max(1) as usize {
            self.starts.pop_front();
        }
    }

    pub fn reset(&mut self, now: Millis) {
        self.starts.clear();
        self.reset_at = now;
    }

    /// The oldest start still in the window, else the last reset.
    pub fn period_start(&mut self, now: Millis, period_ms: Millis) -> Millis {
        self.prune(now, period_ms);
        self.starts.front().copied().unwrap_or(self.reset_at)
    }
}

/// How many of a key's waiting messages may start now, and when to look
/// again if the rate is what stops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub take: u32,
    pub reopens_at: Option<Millis>,
}

pub fn key_capacity(
    limits: &KeyLimits,
    paused: bool,
    in_flight: u32,
    window: &mut RateWindow,
    now: Millis,
) -> Capacity {
    if paused {
        return Capacity {
            take: 0,
            reopens_at: None,
        };
    }
    let by_parallelism = limits
        .parallelism
        .map_or(u32::MAX, |p| p.saturating_sub(in_flight));
    let (by_rate, reopens_at) = match limits.rate {
        Some(rate) => {
            let period = limits.period_ms();
            let free = window.available(now, rate, period);
            (free, window.reopens_at(now, rate, period))
        }
        None => (u32::MAX, None),
    };
    Capacity {
        take: by_parallelism.min(by_rate),
        // Only the rate reopens by itself; parallelism reopens when a
        // delivery finishes, which wakes the key anyway.
        reopens_at: if by_parallelism > 0 { reopens_at } else { None },
    }
}

/// A queue or a flow-control key of one user: something messages wait on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GateRef {
    Queue { user_id: String, name: String },
    Key { user_id: String, key: String },
}

impl GateRef {
    pub fn user_id(&self) -> &str {
        match self {
            GateRef::Queue { user_id, .. } | GateRef::Key { user_id, .. } => user_id,
        }
    }
}

/// A request to see the head of one gate's line.
#[derive(Debug, Clone)]
pub struct GateLook {
    pub gate: GateRef,
    /// A key: its deliveries in flight, so no more candidates are read
    /// than its parallelism could take. Unused for queues.
    pub in_flight: u32,
    /// Most candidates wanted (free delivery slots).
    pub cap: u32,
}

/// A message at the head of a gate's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// In flight already (a queue's window includes those).
    pub active: bool,
    pub due_at: Millis,
    /// The message's flow-control key, when a queued message has one too.
    pub flow_control_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateConfig {
    Queue { parallelism: u32, paused: bool },
    Key(FlowKey),
}

/// The current configuration of a gate and the head of its line: for a
/// queue, its first `parallelism` undelivered messages in enqueue order;
/// for a key, its waiting messages by due time.
#[derive(Debug, Clone)]
pub struct GateView {
    pub gate: GateRef,
    pub config: Option<GateConfig>,
    pub candidates: Vec<Candidate>,
}

/// One message the gate lets through.
#[derive(Debug, Clone)]
pub struct GateClaim {
    pub message_id: String,
    /// Record the start against this rate-limited key, and forget starts
    /// older than `.2` (a period ago).
    pub rate_start: Option<(String, String, Millis)>,
}

/// Everything the gate needs at start: every queue and key, with the
/// starts still inside each key's rate window.
#[derive(Debug, Clone, Default)]
pub struct GateSnapshot {
    pub queues: Vec<(String, String)>,
    pub keys: Vec<(FlowKey, Vec<Millis>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(p: Option<u32>, r: Option<u32>, period: u64) -> FlowControl {
        FlowControl {
            key: "k".into(),
            parallelism: p,
            rate: r,
            period,
        }
    }

    #[test]
    fn latest_message_wins_unless_pinned() {
        let mut l = KeyLimits::default();
        l.apply_message(&fc(Some(2), Some(5), 60));
        assert_eq!(
            (l.parallelism, l.rate, l.period_secs),
            (Some(2), Some(5), 60)
        );
        l.pin(Some(7), None, None);
        l.apply_message(&fc(Some(1), None, 1));
        assert_eq!((l.parallelism, l.rate, l.period_secs), (Some(7), None, 1));
        l.pin(None, Some(3), Some(10));
        l.apply_message(&fc(None, Some(100), 1));
        assert_eq!((l.rate, l.period_secs), (Some(3), 10));
        l.unpin(true, false);
        l.apply_message(&fc(Some(4), Some(100), 1));
        assert_eq!((l.parallelism, l.rate), (Some(4), Some(3)));
        l.unpin(false, true);
        l.apply_message(&fc(None, Some(100), 2));
        assert_eq!((l.parallelism, l.rate, l.period_secs), (None, Some(100), 2));
    }

    #[test]
    fn pinning_a_rate_alone_defaults_the_period() {
        let mut l = KeyLimits {
            period_secs: 60,
            ..Default::default()
        };
        l.pin(None, Some(3), None);
        assert_eq!((l.rate, l.period_secs, l.pinned_rate), (Some(3), 1, true));
        assert!(!l.pinned_parallelism);
    }

    #[test]
    fn sliding_window_never_allows_more_than_rate_in_any_period() {
        let mut w = RateWindow::default();
        let (rate, period) = (3, 1000);
        // Greedily start whenever allowed, probing every 10 ms.
        let mut started = Vec::new();
        for now in (0..5000).step_by(10) {
            while w.available(now, rate, period) > 0 {
                w.record(now, rate);
                started.push(now);
            }
        }
        for (i, s) in started.iter().enumerate() {
            let in_window = started[i..].iter().filter(|t| **t < s + period).count();
            assert!(in_window <= rate as usize, "{in_window} starts from {s}");
        }
        // And it does not starve: 3 per second over 5 s.
        assert_eq!(started.len(), 15);
    }

    #[test]
    fn reopens_when_the_oldest_counted_start_leaves() {
        let mut w = RateWindow::default();
        w.record(100, 2);
        w.record(400, 2);
        assert_eq!(w.available(500, 2, 1000), 0);
        assert_eq!(w.reopens_at(500, 2, 1000), Some(1100));
        assert_eq!(w.available(1100, 2, 1000), 1);
        assert_eq!(w.period_start(1100, 1000), 400);
        w.reset(1200);
        assert_eq!(w.count(1200, 1000), 0);
        assert_eq!(w.period_start(1200, 1000), 1200);
    }

    #[test]
    fn capacity_is_the_tighter_of_parallelism_and_rate() {
        let limits = KeyLimits {
            parallelism: Some(3),
            rate: Some(2),
            period_secs: 1,
            ..Default::default()
        };
        let mut w = RateWindow::default();
        assert_eq!(key_capacity(&limits, false, 0, &mut w, 0).take, 2);
        assert_eq!(key_capacity(&limits, false, 2, &mut w, 0).take, 1);
        assert_eq!(key_capacity(&limits, true, 0, &mut w, 0).take, 0);
        w.record(0, 2);
        w.record(10, 2);
        let c = key_capacity(&limits, false, 0, &mut w, 20);
        assert_eq!(
            c,
            Capacity {
                take: 0,
                reopens_at: Some(1000)
            }
        );
        // Parallelism full: no timer, the finishing delivery wakes the key.
        let c = key_capacity(&limits, false, 3, &mut w, 20);
        assert_eq!(c.reopens_at, None);
        let unlimited = KeyLimits::default();
        assert_eq!(
            key_capacity(&unlimited, false, 50, &mut w, 0).take,
            u32::MAX
        );
    }

    #[test]
    fn restored_window_drops_starts_before_a_reset() {
        let mut w = RateWindow::from_starts(vec![300, 100, 200], 150);
        assert_eq!(w.count(250, 1000), 2);
    }
}
