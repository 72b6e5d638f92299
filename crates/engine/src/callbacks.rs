//! The callback messages an attempt creates: one to `Upstash-Callback`
//! after every attempt, one to `Upstash-Failure-Callback` when retries are
//! exhausted. They are committed with the attempt's outcome
//! (`Outcome::callbacks`), so a crash never loses or repeats one apart
//! from the outcome it reports.

use qstash_core::callback::{message, AttemptReport, CallbackKind};
use qstash_core::clock::Millis;
use qstash_core::message::NewMessage;
use qstash_core::outcome::{AttemptResponse, OutcomeKind};
use qstash_core::Message;

pub fn for_attempt(
    source: &Message,
    response: &AttemptResponse,
    kind: &OutcomeKind,
    dlq_id: Option<&str>,
    now: Millis,
) -> Vec<NewMessage> {
    let mut kinds = vec![CallbackKind::Callback];
    if matches!(kind, OutcomeKind::Failed { .. }) {
        kinds.push(CallbackKind::Failure);
    }
    kinds
        .into_iter()
        .filter_map(|kind| {
            let report = AttemptReport {
                status: response.status,
                header: &response.header,
                body: &response.body,
                dlq_id: (kind == CallbackKind::Failure).then_some(dlq_id).flatten(),
            };
            match message(kind, source, &report, now) {
                Ok(m) => m,
                Err(e) => {
                    // Settings are checked at publish; only a message stored
                    // by an older version can get here.
                    tracing::warn!(id = %source.id, error = %e, "cannot build a callback");
                    None
                }
            }
        })
        .map(|message| NewMessage {
            message,
            dedup_key: None,
        })
        .collect()
}
