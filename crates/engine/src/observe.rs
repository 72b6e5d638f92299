//! The log line of each delivery attempt (target `qstash::delivery`).
//! It names the destination's host only: paths and queries can carry
//! secrets, and headers and bodies never appear.

use std::time::Duration;

use qstash_core::outcome::OutcomeKind;
use qstash_core::Message;
use tracing::Level;

use crate::outcome::Attempt;

pub fn attempt(message: &Message, attempt: &Attempt, kind: &OutcomeKind, took: Duration) {
    if !tracing::enabled!(target: "qstash::delivery", Level::INFO) {
        return;
    }
    let host = reqwest::Url::parse(&message.spec.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let (status, error) = match attempt {
        Attempt::Answered(r) => (r.status, None),
        Attempt::NoAnswer(e) => (0, Some(e.replace(&message.spec.url, &host))),
    };
    tracing::info!(
        target: "qstash::delivery",
        message_id = %message.id,
        user = %message.user_id,
        host = %host,
        status,
        duration_ms = took.as_millis() as u64,
        retry = message.retried,
        outcome = crate::meter::outcome_label(kind),
        error = error.as_deref(),
        "delivery attempt"
    );
}
