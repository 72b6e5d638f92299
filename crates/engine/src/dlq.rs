//! Retrying DLQ entries: each becomes a new message planned like a
//! publish to the failed message's URL, with its body and settings, and
//! the retry request's `Upstash-*` headers overriding those settings.

use qstash_core::destination::Destination;
use qstash_core::dlq::retry_options;
use qstash_core::dlq::{DlqDeleted, DlqEntry, DlqQuery, DlqRetry};
use qstash_core::publish::{HeaderError, PublishOptions};
use qstash_store::StoreError;

use crate::{Engine, PlanError, PublishRequest};

#[derive(Debug, thiserror::Error)]
pub enum DlqRetryError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One retried entry: its new message id, or None when the entry was
/// removed meanwhile (by another retry or a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    pub dlq_id: String,
    pub message_id: Option<String>,
}

impl Engine {
    /// Replaces `entries` by new messages. `overrides` are the retry
    /// request's headers; a bad one fails the whole call before anything
    /// is stored.
    pub async fn retry_dlq(
        &self,
        user_id: &str,
        entries: Vec<DlqEntry>,
        overrides: &[(String, String)],
        caller_ip: Option<String>,
    ) -> Result<Vec<Retried>, DlqRetryError> {
        let now = self.now();
        let pairs = || overrides.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        PublishOptions::from_headers(pairs(), now)?;
        let mut retries = Vec::with_capacity(entries.len());
        for entry in entries {
            let old = entry.message;
            let request = PublishRequest {
                user_id: user_id.to_string(),
                caller_ip: caller_ip.clone(),
                destination: Destination::Url(old.spec.url.clone()),
                queue: old.spec.queue_name.clone(),
                options: retry_options(&old.spec, pairs(), now)?,
                body: old.body,
                now,
                parsed_url: None,
            };
            for mut message in self.plan(&request).await? {
                // Where the failed message came from still describes it.
                let spec = &mut message.message.spec;
                spec.topic_name = old.spec.topic_name.clone();
                spec.endpoint_name = old.spec.endpoint_name.clone();
                spec.schedule_id = old.spec.schedule_id.clone();
                retries.push(DlqRetry {
                    dlq_id: entry.dlq_id.clone(),
                    message,
                });
            }
        }
        let dlq_ids: Vec<_> = retries.iter().map(|r| r.dlq_id.clone()).collect();
        let answers = self.store.retry_dlq(user_id, retries, now).await?;
        let created = answers.iter().filter(|a| a.is_some()).count() as u64;
        self.stats
            .add(user_id, now, crate::stats::Event::Published, created);
        crate::meter::published(crate::meter::Kind::DlqRetry, user_id, created);
        Ok(dlq_ids
            .into_iter()
            .zip(answers)
            .map(|(dlq_id, message_id)| Retried { dlq_id, message_id })
            .collect())
    }

    /// Deletes the entries `query` selects, atomically.
    pub async fn delete_dlq(
        &self,
        user_id: &str,
        query: DlqQuery,
    ) -> Result<DlqDeleted, StoreError> {
        self.store.delete_dlq(user_id, query).await
    }
}
