//! Pure domain logic of qstash-server: the message model, parsing of the
//! `Upstash-*` request headers, durations, retry-delay expressions, backoff,
//! flow-control values and request signing. Nothing here does IO, so every
//! rule can be unit-tested with plain values.

pub mod backoff;
pub mod callback;
pub mod clock;
pub mod cluster;
pub mod dedup;
pub mod destination;
pub mod dlq;
pub mod duration;
pub mod flow_control;
pub mod gate;
pub mod headers;
pub mod ids;
pub mod live;
pub mod log;
pub mod message;
pub mod outcome;
pub mod policy;
pub mod publish;
pub mod queue;
pub mod redact;
pub mod retry_delay;
pub mod schedule;
pub mod signing;
pub mod url_group;
pub mod users;
pub mod workflow;
pub mod workflow_log;

pub use message::{Message, MessageSpec, MessageState};
