//! Pure domain logic of qstash-server: the message model, parsing of the
//! `Upstash-*` request headers, durations, retry-delay expressions, backoff,
//! flow-control values and request signing. Nothing here does IO, so every
//! rule can be unit-tested with plain values.

pub mod backoff;
pub mod clock;
pub mod dedup;
pub mod destination;
pub mod duration;
pub mod flow_control;
pub mod headers;
pub mod ids;
pub mod message;
pub mod publish;
pub mod redact;
pub mod retry_delay;
pub mod schedule;
pub mod signing;
pub mod users;

pub use message::{Message, MessageSpec, MessageState};
