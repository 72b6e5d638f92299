//! `Upstash-Flow-Control-Key` / `-Value`: per-key limits on deliveries.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::duration::parse_seconds_or_duration;
use crate::gate::KeyLimits;

/// Longest rate period QStash allows.
pub const MAX_PERIOD_SECS: u64 = 7 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowControl {
    pub key: String,
    pub parallelism: Option<u32>,
    pub rate: Option<u32>,
    /// Seconds; 1 when not given.
    pub period: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid Upstash-Flow-Control-Value {value:?}: {reason}")]
pub struct FlowControlError {
    pub value: String,
    pub reason: String,
}

impl FlowControl {
    /// Parses `parallelism=3, rate=5, period=1m` (any subset, with or
    /// without spaces). An empty value is a key with no limits: the Python
    /// SDK sends that when only a key is given.
    pub fn parse(key: &str, value: &str) -> Result<Self, FlowControlError> {
        let err = |reason: String| FlowControlError {
            value: value.into(),
            reason,
        };
        if key.trim().is_empty() {
            return Err(err("the flow-control key is empty".into()));
        }
        let mut fc = FlowControl {
            key: key.trim().into(),
            parallelism: None,
            rate: None,
            period: 1,
        };
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, v) = item
                .split_once('=')
                .ok_or_else(|| err(format!("{item:?} is not name=value")))?;
            let (name, v) = (name.trim(), v.trim());
            let positive = |v: &str| match v.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(err(format!("{name} must be a positive integer, got {v:?}"))),
            };
            match name {
                "parallelism" => fc.parallelism = Some(positive(v)?),
                "rate" => fc.rate = Some(positive(v)?),
                "period" => {
                    let secs = parse_seconds_or_duration(v)
                        .map_err(|e| err(e.to_string()))?
                        .as_secs();
                    if secs == 0 || secs > MAX_PERIOD_SECS {
                        return Err(err(format!("period must be between 1s and 7d, got {v:?}")));
                    }
                    fc.period = secs;
                }
                other => {
                    return Err(err(format!(
                        "unknown setting {other:?} (expected parallelism, rate or period)"
                    )))
                }
            }
        }
        Ok(fc)
    }
}

/// A flow-control key as stored: its limits and pause flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowKey {
    pub user_id: String,
    pub key: String,
    pub limits: KeyLimits,
    pub paused: bool,
    /// When the rate was last reset (pin, resetRate): starts before it do
    /// not count.
    pub rate_reset_at: Millis,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What an API call does to a flow-control key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowKeyChange {
    Pause,
    Resume,
    Pin {
        parallelism: Option<u32>,
        rate: Option<u32>,
        period_secs: Option<u64>,
    },
    Unpin {
        parallelism: bool,
        rate: bool,
    },
    ResetRate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_subset_with_or_without_spaces() {
        let fc = FlowControl::parse("k", "parallelism=3, rate=5, period=1m").unwrap();
        assert_eq!((fc.parallelism, fc.rate, fc.period), (Some(3), Some(5), 60));
        let fc = FlowControl::parse("k", "rate=10,period=1h30m3s").unwrap();
        assert_eq!((fc.parallelism, fc.rate, fc.period), (None, Some(10), 5403));
        let fc = FlowControl::parse("k", "parallelism=2").unwrap();
        assert_eq!(fc.period, 1);
        assert_eq!(FlowControl::parse("k", "period=2").unwrap().period, 2);
        assert_eq!(FlowControl::parse("k", "").unwrap().parallelism, None);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "parallelism=0",
            "rate=-1",
            "rate=abc",
            "period=8d",
            "speed=3",
            "parallelism",
        ] {
            assert!(
                FlowControl::parse("k", bad).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(FlowControl::parse(" ", "rate=1").is_err());
    }
}
