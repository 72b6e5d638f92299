//! How long to wait before the next attempt.

use std::time::{Duration, SystemTime};

use crate::duration::parse_duration;
use crate::retry_delay::{RetryDelayExpr, MAX_DELAY};

/// QStash's default backoff: `min(86400, e^(2.5 * n))` seconds, where `n` is
/// the number of the retry about to happen (1 for the first).
pub fn default_backoff(retry_number: u32) -> Duration {
    let secs = (2.5 * retry_number as f64)
        .exp()
        .min(MAX_DELAY.as_secs_f64());
    Duration::from_secs_f64(secs)
}

/// The delay before retry number `retry_number` (1-based), from the
/// destination's own hint if it gave one, else the message's expression,
/// else the default backoff. An expression that fails to evaluate for this
/// retry falls back to the default rather than dropping the message.
pub fn retry_delay(
    retry_number: u32,
    expr: Option<&RetryDelayExpr>,
    server_hint: Option<Duration>,
) -> Duration {
    if let Some(hint) = server_hint {
        return hint.min(MAX_DELAY);
    }
    expr.and_then(|e| e.delay(retry_number.saturating_sub(1)).ok())
        .unwrap_or_else(|| default_backoff(retry_number))
}

/// Response headers whose value says when to try again, in priority order.
pub const RETRY_HINT_HEADERS: [&str; 4] = [
    "retry-after",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// Parses a `Retry-After`-style value: delta seconds, a Go duration (`6m5s`)
/// or an HTTP date. Capped at one day; unparseable values are ignored.
pub fn parse_retry_hint(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let hint = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::from_secs_f64(secs.min(MAX_DELAY.as_secs_f64()))
    } else if let Ok(d) = parse_duration(v) {
        d
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(hint.min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_backoff_matches_documented_steps() {
        assert_eq!(default_backoff(1).as_secs(), 12);
        assert_eq!(default_backoff(2).as_secs(), 148); // 2m28s
        assert_eq!(default_backoff(3).as_secs(), 1808); // 30m8s
        assert_eq!(default_backoff(10).as_secs(), 86400);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_hint("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_hint("6m5s", now),
            Some(Duration::from_secs(365))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_hint(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_hint("999999999", now), Some(MAX_DELAY));
        assert_eq!(parse_retry_hint("soon", now), None);
    }

    #[test]
    fn server_hint_overrides_expression_and_default() {
        let expr = RetryDelayExpr::parse("100000").unwrap();
        assert_eq!(
            retry_delay(1, Some(&expr), Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(retry_delay(1, Some(&expr), None), Duration::from_secs(100));
        assert_eq!(retry_delay(1, None, None).as_secs(), 12);
    }

    #[test]
    fn expression_sees_zero_for_first_retry() {
        let expr = RetryDelayExpr::parse("retried * 1000").unwrap();
        assert_eq!(retry_delay(1, Some(&expr), None), Duration::ZERO);
        assert_eq!(retry_delay(3, Some(&expr), None), Duration::from_secs(2));
    }
}
