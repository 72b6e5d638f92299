//! Per-user API rate limits, answered as QStash answers them (WIRE.md §1):
//! a 429 with `Burst-RateLimit-*` for the per-second burst limit of the
//! management endpoints, and with `RateLimit-*` for the daily limit of
//! publish, enqueue and batch. `@upstash/qstash` turns them into
//! `QstashRatelimitError` and `QstashDailyRatelimitError`.
//!
//! governor's GCRA does the counting: lock-free, no timer task, and a
//! "daily" quota of n is n per day with a burst of n, refilled smoothly.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::ApiError;

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// One user's limits; None is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserRateLimits {
    /// Management calls per second (also the burst).
    pub burst_per_second: Option<u32>,
    /// Publish, enqueue and batch calls per day.
    pub daily: Option<u32>,
}

struct Limiters {
    burst: Option<(u32, Limiter)>,
    daily: Option<(u32, Limiter)>,
}

/// The limiters of every user, built once at start.
#[derive(Default)]
pub struct RateLimits {
    users: HashMap<String, Limiters>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(limits: impl IntoIterator<Item = (String, UserRateLimits)>) -> Self {
        let users = limits
            .into_iter()
            .map(|(user, l)| {
                let burst = l
                    .burst_per_second
                    .and_then(NonZeroU32::new)
                    .map(|n| (n.get(), RateLimiter::direct(Quota::per_second(n))));
                let daily = l.daily.and_then(NonZeroU32::new).map(|n| {
                    let period = Duration::from_secs(86_400) / n.get();
                    let quota = Quota::with_period(period)
                        .expect("a day divided by a u32 is not zero")
                        .allow_burst(n);
                    (n.get(), RateLimiter::direct(quota))
                });
                (user, Limiters { burst, daily })
            })
            .collect();
        Self {
            users,
            clock: DefaultClock::default(),
        }
    }

    /// Counts a call of `user` to `path`; a 429 when over a limit.
    pub fn admit(&self, user: &str, path: &str) -> Result<(), ApiError> {
        let Some(l) = self.users.get(user) else {
            return Ok(());
        };
        let (limit, kind) = if is_messaging(path) {
            (l.daily.as_ref(), Kind::Daily)
        } else {
            (l.burst.as_ref(), Kind::Burst)
        };
        let Some((n, limiter)) = limit else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            refusal(kind, *n, wait)
        })
    }
}

impl RateLimits {
    /// A batch of `items` messages counts each one against the daily limit;
    /// its admission counted the first.
    pub fn admit_batch(&self, user: &str, items: usize) -> Result<(), ApiError> {
        let Some((n, limiter)) = self.users.get(user).and_then(|l| l.daily.as_ref()) else {
            return Ok(());
        };
        let Some(more) = u32::try_from(items.saturating_sub(1))
            .ok()
            .and_then(NonZeroU32::new)
        else {
            return Ok(());
        };
        match limiter.check_n(more) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refusal(
                Kind::Daily,
                *n,
                not_until.wait_time_from(self.clock.now()),
            )),
            // More items than the whole daily limit: never fits.
            Err(_) => Err(refusal(Kind::Daily, *n, Duration::from_secs(86_400))),
        }
    }
}

/// Publish, enqueue and batch have a daily limit and no burst limit.
fn is_messaging(path: &str) -> bool {
    path.starts_with("/v2/publish/") || path.starts_with("/v2/enqueue/") || path == "/v2/batch"
}

#[derive(Clone, Copy)]
enum Kind {
    Burst,
    Daily,
}

fn refusal(kind: Kind, limit: u32, wait: Duration) -> ApiError {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Reset is a unix timestamp in seconds, rounded up.
    let reset = (now + wait).as_secs() + u64::from((now + wait).subsec_nanos() > 0);
    let (prefix, message) = match kind {
        Kind::Burst => (
            "Burst-RateLimit",
            format!("burst rate limit of {limit} requests per second exceeded"),
        ),
        Kind::Daily => (
            "RateLimit",
            format!("daily limit of {limit} messages exceeded"),
        ),
    };
    let header = |suffix: &str| -> &'static str {
        match (prefix, suffix) {
            ("Burst-RateLimit", "Limit") => "Burst-RateLimit-Limit",
            ("Burst-RateLimit", "Remaining") => "Burst-RateLimit-Remaining",
            ("Burst-RateLimit", _) => "Burst-RateLimit-Reset",
            (_, "Limit") => "RateLimit-Limit",
            (_, "Remaining") => "RateLimit-Remaining",
            _ => "RateLimit-Reset",
        }
    };
    ApiError::RateLimited {
        message,
        headers: vec![
            (header("Limit"), limit.to_string()),
            (header("Remaining"), "0".into()),
            (header("Reset"), reset.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(burst: Option<u32>, daily: Option<u32>) -> RateLimits {
        RateLimits::new([(
            "u".to_string(),
            UserRateLimits {
                burst_per_second: burst,
                daily,
            },
        )])
    }

    fn header(e: &ApiError, name: &str) -> Option<String> {
        match e {
            ApiError::RateLimited { headers, .. } => headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    #[test]
    fn burst_limit_applies_to_management_calls_only() {
        let l = limits(Some(2), None);
        assert!(l.admit("u", "/v2/messages/x").is_ok());
        assert!(l.admit("u", "/v2/dlq").is_ok());
        let e = l.admit("u", "/v2/queues").unwrap_err();
        assert_eq!(header(&e, "Burst-RateLimit-Limit").as_deref(), Some("2"));
        assert_eq!(
            header(&e, "Burst-RateLimit-Remaining").as_deref(),
            Some("0")
        );
        assert!(header(&e, "Burst-RateLimit-Reset").is_some());
        assert!(header(&e, "RateLimit-Limit").is_none());
        for _ in 0..10 {
            assert!(l.admit("u", "/v2/publish/http://x").is_ok());
        }
        assert!(l.admit("other", "/v2/queues").is_ok());
    }

    #[test]
    fn a_batch_counts_every_item() {
        let l = limits(None, Some(5));
        assert!(l.admit("u", "/v2/batch").is_ok());
        assert!(l.admit_batch("u", 3).is_ok());
        assert!(l.admit("u", "/v2/batch").is_ok());
        // 4 counted so far: a batch of 3 needs 2 more than remain.
        let e = l.admit_batch("u", 3).unwrap_err();
        assert_eq!(header(&e, "RateLimit-Limit").as_deref(), Some("5"));
        assert!(l.admit_batch("u", 100).is_err());
        assert!(limits(None, None).admit_batch("u", 100).is_ok());
    }

    #[test]
    fn daily_limit_applies_to_publish_enqueue_and_batch() {
        let l = limits(None, Some(3));
        assert!(l.admit("u", "/v2/publish/http://x").is_ok());
        assert!(l.admit("u", "/v2/enqueue/q/http://x").is_ok());
        assert!(l.admit("u", "/v2/batch").is_ok());
        let e = l.admit("u", "/v2/publish/http://x").unwrap_err();
        assert_eq!(header(&e, "RateLimit-Limit").as_deref(), Some("3"));
        let reset: u64 = header(&e, "RateLimit-Reset").unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(reset > now && reset <= now + 86_400, "{reset} vs {now}");
        assert!(l.admit("u", "/v2/queues").is_ok());
    }
}
