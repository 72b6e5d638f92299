//! Queues: names and limits. A queue delivers its messages in the order
//! they were enqueued, at most `parallelism` at a time.

use crate::clock::Millis;

/// The documented rule, word for word: the SDKs show this text to users.
pub const BAD_QUEUE_NAME: &str = "Queue name is invalid. Queue names can only contain alphanumeric characters, hyphens, periods, and underscores.";

/// Largest queue parallelism accepted. The dispatcher reads a window of
/// `parallelism` messages per look, so it must stay small.
pub const MAX_QUEUE_PARALLELISM: u32 = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("{BAD_QUEUE_NAME}")]
    BadName(String),
    #[error("parallelism must be an integer from 1 to {MAX_QUEUE_PARALLELISM}, got {0}")]
    BadParallelism(i64),
}

pub fn validate_queue_name(name: &str) -> Result<&str, QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(name)
        .ok_or_else(|| QueueError::BadName(name.into()))
}

pub fn validate_parallelism(n: i64) -> Result<u32, QueueError> {
    if (1..=MAX_QUEUE_PARALLELISM as i64).contains(&n) {
        Ok(n as u32)
    } else {
        Err(QueueError::BadParallelism(n))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub parallelism: u32,
    pub paused: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Messages not yet delivered: waiting, retrying or in flight.
    pub lag: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["my-queue", "a.b_c-1", "Q"] {
            assert!(validate_queue_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a/b", "ä", "q!"] {
            assert_eq!(
                validate_queue_name(bad).unwrap_err().to_string(),
                BAD_QUEUE_NAME,
                "{bad}"
            );
        }
    }

    #[test]
    fn parallelism_bounds() {
        assert_eq!(validate_parallelism(1), Ok(1));
        assert_eq!(validate_parallelism(1000), Ok(1000));
        assert!(validate_parallelism(0).is_err());
        assert!(validate_parallelism(-2).is_err());
        assert!(validate_parallelism(1001).is_err());
    }
}
