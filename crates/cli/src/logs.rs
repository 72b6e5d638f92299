//! Log lines: text for a person at a terminal, one JSON object per line
//! for a log shipper. Levels come from RUST_LOG.
//!
//! What is logged never includes secrets: request lines carry the route
//! template and the user id (never headers, tokens or the raw path), and
//! delivery lines the destination's host (never its path, query, headers
//! or body); database URLs are logged with their password masked.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use crate::config::LogFormat;

/// The most bytes one write(2) carries.
const BATCH_BYTES: usize = 64 * 1024;

/// Lines queued for the writing thread (a few MB) before a caller waits.
const QUEUED_LINES: usize = 8192;

/// Installs the subscriber. Lines are formatted where they are logged and
/// written to stdout by a thread of their own, which writes the lines
/// waiting, up to 64 KB per write(2), and flushes when none is left: at
/// `info` there is a line per request and per delivery attempt, and a
/// write of its own for each was 5.7% of a publish's CPU (perf, issue 17).
/// A full queue makes the caller wait rather than drop lines (as a slow
/// stdout did before). Keep the guard until the server has stopped:
/// dropping it waits up to about a second for the queue to be written.
pub fn init(format: Option<LogFormat>) -> WorkerGuard {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let format = format.unwrap_or(match std::io::stdout().is_terminal() {
        true => LogFormat::Text,
        false => LogFormat::Json,
    });
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("qstash-log")
        .finish(BufWriter::with_capacity(BATCH_BYTES, std::io::stdout()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    guard
}
