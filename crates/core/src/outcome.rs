//! What one delivery attempt came to: the destination's answer and the
//! decision taken on it, as the store records it.

use crate::clock::Millis;
use crate::headers::HeaderMap;
use crate::message::NewMessage;

/// What the destination answered to one attempt. `status` is 0 when no
/// answer came (connection error, timeout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptResponse {
    pub status: u16,
    pub header: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeKind {
    Delivered,
    /// Failed; the next attempt is due at `next_due`.
    Retry {
        next_due: Millis,
        error: String,
    },
    /// Failed for the last time: the message goes to the DLQ.
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub message_id: String,
    pub at: Millis,
    pub kind: OutcomeKind,
    pub response: AttemptResponse,
    /// The id of the DLQ entry a `Failed` outcome creates; chosen before
    /// the commit so the failure callback can carry it. The store picks
    /// one when None.
    pub dlq_id: Option<String>,
    /// Messages this outcome creates (callbacks, failure callbacks),
    /// committed in the same transaction: a crash never loses or repeats
    /// them apart from the outcome they report.
    pub callbacks: Vec<NewMessage>,
    /// The workflow run a `Failed` outcome of one of its steps fails. The
    /// store notes it with the DLQ entry, in the same commit, until the
    /// run is ended (`Workflows::failing_runs`): a crash or a store error
    /// between the two commits cannot leave the run running for good.
    pub fails_run: Option<String>,
}
