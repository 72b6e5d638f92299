//! The schedule timer: one task sleeps until the earliest next tick of any
//! schedule (one index lookup), fires every due tick, and sleeps again.
//! Schedules between their ticks cost nothing: no task, no timer, no read.
//!
//! A fire creates the tick's messages through [`Engine::plan`] (so URL
//! groups and queues behave as for a publish) and commits them together
//! with the schedule's next tick in one store job, guarded by the
//! schedule's version and tick: a tick is committed once, so neither a
//! crash, a restart nor a concurrent replace can fire it twice.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use qstash_core::clock::Millis;
use qstash_core::destination::Destination;
use qstash_core::publish::PublishOptions;
use qstash_core::schedule::{resume_at, CronExpr, Schedule};
use qstash_core::schedule::{DueCursor, DueSchedule, ScheduleFire};
use qstash_store::StoreError;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::cluster::Term;
use crate::{Engine, PlanError, PublishRequest};

/// Due schedules read per page of the due index.
const PAGE: usize = 512;
/// Fires in flight at once; their commits share the store's group commits.
const FIRES_IN_FLIGHT: usize = 2048;
/// Back-off after a store error, so a broken disk does not spin the CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// When the schedule task plans to wake, so a new or resumed schedule due
/// earlier can wake it.
#[derive(Debug)]
pub struct ScheduleTimer {
    wake: Notify,
    sleeping_until: AtomicI64,
}

impl Default for ScheduleTimer {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            sleeping_until: AtomicI64::new(0),
        }
    }
}

impl Engine {
    /// Creates or replaces a schedule; answers the stored schedule.
    pub async fn put_schedule(&self, schedule: Schedule) -> Result<Schedule, StoreError> {
        let stored = self.store.put_schedule(schedule, self.now()).await?;
        if let Some(next) = stored.next_fire {
            self.schedule_due_at(next);
        }
        Ok(stored)
    }

    /// Pauses or resumes; None if the user has no such schedule.
    pub async fn set_schedule_paused(
        &self,
        user_id: &str,
        id: &str,
        paused: bool,
    ) -> Result<Option<Schedule>, StoreError> {
        let stored = self
            .store
            .set_schedule_paused(user_id, id, paused, self.now())
            .await?;
        if let Some(next) = stored.as_ref().and_then(|s| s.next_fire) {
            self.schedule_due_at(next);
        }
        Ok(stored)
    }

    /// Answers whether the user had such a schedule. A fire already read
    /// commits nothing: deleting bumps nothing it could match.
    pub async fn delete_schedule(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        self.store.delete_schedule(user_id, id).await
    }

    pub(crate) fn schedule_due_at(&self, due: Millis) {
        let timer = &self.schedule_timer;
        if due < timer.sleeping_until.load(Ordering::Acquire) {
            timer.wake.notify_one();
        }
    }

    /// Before the timer starts: ticks missed while the server was down.
    pub(crate) async fn catch_up_schedules(&self) -> Result<(), StoreError> {
        let window = self.config.schedule_catch_up.as_millis() as Millis;
        let c = self.store.catch_up_schedules(self.now(), window).await?;
        if c.firing + c.skipped > 0 {
            tracing::info!(
                firing = c.firing,
                skipped = c.skipped,
                "schedules missed ticks while the server was down"
            );
        }
        Ok(())
    }
}

/// The leader's schedule timer, until its term is over.
pub(crate) async fn run(engine: Arc<Engine>, mut term: Term) {
    let timer = &engine.schedule_timer;
    while !term.over() {
        // Announce the wake-up target before looking, so a schedule created
        // during the look still wakes us.
        timer.sleeping_until.store(Millis::MAX, Ordering::Release);
        if !fire_due(&engine, engine.now()).await {
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        }
        let next = match engine.store.next_schedule_at().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading the next schedule time failed");
                Some(engine.now() + ERROR_PAUSE.as_millis() as Millis)
            }
        };
        let target = next.unwrap_or(Millis::MAX);
        timer.sleeping_until.store(target, Ordering::Release);
        let now = engine.now();
        if target <= now {
            continue;
        }
        let wait = Duration::from_millis((target - now) as u64).min(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = timer.wake.notified() => {}
            _ = term.ended() => {}
        }
    }
}

/// One pass over every tick due by `now`: pages through the due index
/// and keeps up to `FIRES_IN_FLIGHT` fires going, so the writer always has
/// a full group to commit. Answers false if something failed (the failed
/// ticks stay due).
async fn fire_due(engine: &Arc<Engine>, now: Millis) -> bool {
    let slots = Arc::new(Semaphore::new(FIRES_IN_FLIGHT));
    let mut fires = JoinSet::new();
    let mut ok = true;
    let mut after = None;
    loop {
        let page = match engine.store.due_schedules(now, after, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading due schedules failed");
                ok = false;
                break;
            }
        };
        let full = page.len() == PAGE;
        after = page.last().and_then(DueCursor::of);
        for due in page {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let engine = engine.clone();
            fires.spawn(async move {
                let result = fire(engine, due).await;
                drop(slot);
                result
            });
            while let Some(done) = fires.try_join_next() {
                ok &= matches!(done, Ok(Ok(())));
            }
        }
        if !full {
            break;
        }
    }
    while let Some(done) = fires.join_next().await {
        ok &= matches!(done, Ok(Ok(())));
    }
    ok
}

/// Fires one due tick. An error leaves the tick due, to be tried again.
async fn fire(engine: Arc<Engine>, due: DueSchedule) -> Result<(), StoreError> {
    let s = &due.schedule;
    let Some(tick) = s.next_fire else {
        return Ok(());
    };
    let now = engine.now();
    let window = engine.config.schedule_catch_up.as_millis() as Millis;
    let (next_fire, cron_error) = match CronExpr::parse(&s.cron) {
        Ok(cron) => (next_tick(&cron, tick, now, window), None),
        // Validated at create, so only a damaged row gets here: stop it
        // rather than retry forever.
        Err(e) => (None, Some(e.to_string())),
    };
    let (messages, error) = match cron_error {
        Some(e) => (Vec::new(), Some(e)),
        None => match engine.plan(&fire_request(s, now)).await {
            Ok(mut messages) => {
                for m in &mut messages {
                    m.message.spec.schedule_id = Some(s.id.clone());
                }
                (messages, None)
            }
            Err(PlanError::Store(e)) => {
                tracing::error!(schedule = %s.id, error = %e, "planning a schedule fire failed");
                return Err(e);
            }
            // The tick passes without messages (a URL group that was
            // deleted, ...); the schedule shows why in `error`.
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
    };
    if let Some(e) = &error {
        tracing::warn!(schedule = %s.id, error = %e, "schedule tick created no message");
    }
    let created = messages.len() as u64;
    let fired = engine
        .store
        .fire_schedule(ScheduleFire {
            user_id: s.user_id.clone(),
            schedule_id: s.id.clone(),
            version: due.version,
            tick,
            next_fire,
            fired_at: now,
            messages,
            error,
        })
        .await
        .inspect_err(
            |e| tracing::error!(schedule = %s.id, error = %e, "committing a schedule fire failed"),
        )?;
    if fired {
        tracing::debug!(schedule = %s.id, tick, ?next_fire, "schedule fired");
        let event = crate::stats::Event::Published;
        engine.stats.add(&s.user_id, now, event, created);
        crate::meter::published(crate::meter::Kind::Schedule, &s.user_id, created);
    }
    Ok(())
}

/// The tick after `tick`. While the server runs, every tick fires, even
/// late; only ticks older than the catch-up window (the process was
/// suspended, the store stalled for longer) are coalesced as at start.
pub fn next_tick(cron: &CronExpr, tick: Millis, now: Millis, window: Millis) -> Option<Millis> {
    match cron.next_after(tick) {
        Some(next) if next < now - window => resume_at(cron, next, now, window),
        other => other,
    }
}

/// The publish one tick of `s` amounts to.
pub fn fire_request(s: &Schedule, now: Millis) -> PublishRequest {
    let mut spec = s.spec.clone();
    spec.schedule_id = Some(s.id.clone());
    let options = PublishOptions {
        spec,
        not_before: s
            .delay_secs
            .map(|d| now.saturating_add((d as Millis).saturating_mul(1000))),
        dedup: None,
        queue_name: s.queue_name.clone(),
        cron: Some(s.cron.clone()),
        schedule_id: Some(s.id.clone()),
        delay_secs: s.delay_secs,
        header_forward: false,
    };
    PublishRequest {
        user_id: s.user_id.clone(),
        caller_ip: s.caller_ip.clone(),
        destination: destination_of(&s.destination),
        queue: s.queue_name.clone(),
        options,
        body: s.body.clone().into(),
        now,
        parsed_url: None,
    }
}

/// A stored destination: validated at create, so a URL is anything with
/// an http(s) scheme and the rest is a URL group name.
pub fn destination_of(stored: &str) -> Destination {
    let lower = stored.get(..8).unwrap_or(stored).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Destination::Url(stored.to_string())
    } else {
        Destination::UrlGroup(stored.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qstash_core::clock::{Clock, ManualClock};
    use qstash_core::MessageSpec;

    const MIN: Millis = 60_000;
    /// 2025-01-01T12:00:00Z
    const NOON: Millis = 1_735_732_800_000;

    fn every_minute() -> CronExpr {
        CronExpr::parse("* * * * *").unwrap()
    }

    #[test]
    fn a_late_tick_is_followed_by_the_next_one_not_skipped() {
        let clock = ManualClock::new(NOON);
        clock.advance(2 * MIN + 5_000); // the timer ran 2 minutes late
        let next = next_tick(&every_minute(), NOON, clock.now_ms(), 86_400_000);
        assert_eq!(next, Some(NOON + MIN));
    }

    #[test]
    fn ticks_older_than_the_window_are_coalesced() {
        let clock = ManualClock::new(NOON);
        clock.advance(10 * MIN + 5_000); // suspended for 10 minutes
        let now = clock.now_ms();
        // Window 1 min: 12:10 (5 s old) fires next, 12:01-12:09 never do.
        assert_eq!(
            next_tick(&every_minute(), NOON, now, MIN),
            Some(NOON + 10 * MIN)
        );
        // Window 1 s: even 12:10 is too old; the next is 12:11.
        assert_eq!(
            next_tick(&every_minute(), NOON, now, 1_000),
            Some(NOON + 11 * MIN)
        );
    }

    #[test]
    fn on_time_next_tick() {
        let hourly = CronExpr::parse("0 * * * *").unwrap();
        assert_eq!(
            next_tick(&hourly, NOON, NOON + 40, 0),
            Some(NOON + 60 * MIN)
        );
    }

    #[test]
    fn a_fire_is_an_ordinary_publish_of_the_schedule() {
        let s = Schedule {
            id: "nightly".into(),
            user_id: "u".into(),
            cron: "0 3 * * *".into(),
            destination: "https://example.com/x?a=1".into(),
            spec: MessageSpec {
                method: "PUT".into(),
                max_retries: 5,
                ..Default::default()
            },
            body: b"hi".to_vec(),
            queue_name: Some("q".into()),
            delay_secs: Some(10),
            caller_ip: Some("1.2.3.4".into()),
            created_at: 0,
            paused: false,
            next_fire: Some(NOON),
            last_fire: None,
            last_messages: vec![],
            last_error: None,
        };
        let req = fire_request(&s, NOON + 7);
        assert_eq!(
            req.destination,
            Destination::Url("https://example.com/x?a=1".into())
        );
        assert_eq!(req.queue.as_deref(), Some("q"));
        assert_eq!(req.options.not_before, Some(NOON + 10_007));
        assert_eq!(req.options.spec.schedule_id.as_deref(), Some("nightly"));
        assert_eq!(req.options.spec.method, "PUT");
        assert_eq!(req.caller_ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(
            destination_of("my-group"),
            Destination::UrlGroup("my-group".into())
        );
    }
}
