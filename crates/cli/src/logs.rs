//! Log lines: text for a person at a terminal, one JSON object per line
//! for a log shipper. Levels come from RUST_LOG.
//!
//! What is logged never includes secrets: request lines carry the route
//! template and the user id (never headers, tokens or the raw path), and
//! delivery lines the destination's host (never its path, query, headers
//! or body); database URLs are logged with their password masked.

use std::io::IsTerminal;

use crate::config::LogFormat;

pub fn init(format: Option<LogFormat>) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let format = format.unwrap_or(match std::io::stdout().is_terminal() {
        true => LogFormat::Text,
        false => LogFormat::Json,
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
