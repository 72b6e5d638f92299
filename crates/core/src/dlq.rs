//! Retrying a message from the dead-letter queue: the new message keeps
//! the settings of the failed one, except those the retry request
//! overrides with its own `Upstash-*` headers (`Upstash-Retries: 0`).

use std::collections::HashSet;

use crate::clock::Millis;
use crate::headers::canonical_name;
use crate::message::MessageSpec;
use crate::message::{Message, NewMessage};
use crate::outcome::AttemptResponse;
use crate::publish::{HeaderError, PublishOptions};

/// The options of the new message: `original`'s settings with every
/// setting present in `overrides` replaced. Invalid overrides are an error
/// naming the header, as on publish.
pub fn retry_options<'a>(
    original: &MessageSpec,
    overrides: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    now: Millis,
) -> Result<PublishOptions, HeaderError> {
    let parsed = PublishOptions::from_headers(overrides.clone(), now)?;
    let given: HashSet<String> = overrides
        .into_iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    let has = |name: &str| given.contains(name);
    let has_prefix = |prefix: &str| given.iter().any(|k| k.starts_with(prefix));
    let p = parsed.spec;
    let mut spec = original.clone();
    // Forwarded headers and Content-Type replace those of the same name.
    for (name, values) in p.header {
        spec.header.insert(canonical_name(&name), values);
    }
    if has("upstash-method") {
        spec.method = p.method;
    }
    if has("upstash-retries") {
        spec.max_retries = p.max_retries;
    }
    if has("upstash-retry-delay") {
        spec.retry_delay = p.retry_delay;
    }
    if has("upstash-timeout") {
        spec.timeout_ms = p.timeout_ms;
    }
    if has("upstash-callback") {
        spec.callback = p.callback;
    }
    if has("upstash-failure-callback") {
        spec.failure_callback = p.failure_callback;
    }
    if has_prefix("upstash-callback-") {
        spec.callback_header.extend(p.callback_header);
    }
    if has_prefix("upstash-failure-callback-") {
        spec.failure_callback_header
            .extend(p.failure_callback_header);
    }
    if has("upstash-label") {
        spec.labels = p.labels;
    }
    if has("upstash-redact-fields") {
        spec.redact = p.redact;
    }
    if has("upstash-flow-control-key") {
        spec.flow_control = p.flow_control;
    }
    Ok(PublishOptions {
        spec,
        not_before: parsed.not_before,
        dedup: parsed.dedup,
        ..Default::default()
    })
}

/// Filters over DLQ entries; several values for one key match any of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqFilter {
    pub dlq_ids: Vec<String>,
    pub message_id: Vec<String>,
    pub url: Vec<String>,
    pub topic_name: Vec<String>,
    pub queue_name: Vec<String>,
    pub schedule_id: Vec<String>,
    pub label: Vec<String>,
    pub flow_control_key: Vec<String>,
    pub caller_ip: Vec<String>,
    pub response_status: Vec<u16>,
    /// Inclusive bounds on when the message entered the DLQ.
    pub from_date: Option<Millis>,
    pub to_date: Option<Millis>,
    /// `source=workflow`: only messages of Upstash Workflow runs.
    pub workflow_only: bool,
    /// `workflowRunId`: only messages of these workflow runs.
    pub workflow_run_id: Vec<String>,
    /// `workflowCreatedAt`: only messages of runs created at this time.
    pub workflow_created_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DlqOrder {
    #[default]
    EarliestFirst,
    LatestFirst,
}

/// Where a DLQ page continues: after the entry with this id. Ids start
/// with the entry's creation time, so the position survives the entry's
/// deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqCursor {
    pub created_at: Millis,
    pub dlq_id: String,
}

impl DlqCursor {
    pub fn parse(s: &str) -> Option<Self> {
        let (time, _) = s.split_once('-')?;
        Some(Self {
            created_at: time.parse().ok()?,
            dlq_id: s.to_string(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqQuery {
    pub filter: DlqFilter,
    pub cursor: Option<DlqCursor>,
    pub count: usize,
    pub order: DlqOrder,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DlqEntry {
    pub dlq_id: String,
    pub created_at: Millis,
    /// The last attempt's answer.
    pub response: AttemptResponse,
    pub error: Option<String>,
    pub message: Message,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqPage {
    pub entries: Vec<DlqEntry>,
    /// The last entry's id, when more entries follow.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqDeleted {
    pub deleted: u64,
    pub cursor: Option<String>,
}

/// One DLQ entry to retry, with the message that replaces it.
#[derive(Debug, Clone)]
pub struct DlqRetry {
    pub dlq_id: String,
    pub message: NewMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> MessageSpec {
        PublishOptions::from_headers(
            [
                ("Content-Type", "text/plain"),
                ("Upstash-Forward-X-A", "a"),
                ("Upstash-Retries", "5"),
                ("Upstash-Retry-Delay", "1000"),
                ("Upstash-Method", "PUT"),
                ("Upstash-Label", "old"),
            ],
            0,
        )
        .unwrap()
        .spec
    }

    #[test]
    fn keeps_everything_without_overrides() {
        let o = retry_options(&original(), [], 0).unwrap();
        assert_eq!(o.spec, original());
        assert_eq!(o.not_before, None);
    }

    #[test]
    fn overrides_only_what_the_retry_request_sets() {
        let o = retry_options(
            &original(),
            [
                ("upstash-retries", "0"),
                ("Upstash-Forward-X-A", "new"),
                ("Upstash-Forward-X-B", "b"),
                ("Upstash-Delay", "5s"),
                ("Authorization", "Bearer t"),
            ],
            1_000,
        )
        .unwrap();
        assert_eq!(o.spec.max_retries, 0);
        assert_eq!(o.spec.method, "PUT");
        assert_eq!(o.spec.retry_delay.as_deref(), Some("1000"));
        assert_eq!(o.spec.header["X-A"], vec!["new"]);
        assert_eq!(o.spec.header["X-B"], vec!["b"]);
        assert_eq!(o.spec.header["Content-Type"], vec!["text/plain"]);
        assert_eq!(o.spec.labels, vec!["old"]);
        assert_eq!(o.not_before, Some(6_000));
    }

    #[test]
    fn bad_override_names_its_header() {
        let err = retry_options(&original(), [("Upstash-Retries", "x")], 0).unwrap_err();
        assert_eq!(err.header, "Upstash-Retries");
    }
}
