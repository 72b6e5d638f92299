//! From a validated publish to the messages it creates: one for a URL, one
//! per endpoint of a URL group. Shared by the publish and batch routes and
//! by anything else that creates messages (schedules, DLQ retries).

use qstash_core::clock::Millis;
use qstash_core::destination::Destination;
use qstash_core::message::NewMessage;
use qstash_core::publish::PublishOptions;
use qstash_core::{Message, MessageState};
use qstash_store::StoreError;

use crate::Engine;

/// A publish whose headers and destination are already validated.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub user_id: String,
    pub caller_ip: Option<String>,
    pub destination: Destination,
    /// The queue to enqueue into (enqueue, batch `queue`, a schedule's
    /// `Upstash-Queue-Name`); None for a plain publish.
    pub queue: Option<String>,
    pub options: PublishOptions,
    pub body: bytes::Bytes,
    pub now: Millis,
    /// A URL already parsed, with the text it was parsed from (a publish
    /// parses its destination to validate it: `ParsedDestination::url`),
    /// so the policy check of a message to that very text does not parse
    /// it again; None where the caller has only text.
    pub parsed_url: Option<(String, url::Url)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("url group {0:?} not found")]
    UnknownUrlGroup(String),
    #[error("{0}")]
    Denied(#[from] qstash_core::policy::Denied),
    #[error("{0}")]
    Limit(#[from] qstash_core::publish::HeaderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// The messages `req` creates, not yet stored.
    ///
    /// Every destination (each endpoint of a group, the callbacks) must pass
    /// the destination policy: this is the one door for publish, enqueue,
    /// batch, schedules and DLQ retries.
    pub async fn plan(&self, req: &PublishRequest) -> Result<Vec<NewMessage>, PlanError> {
        req.options.check_limits(&self.config.limits, req.now)?;
        let planned = self.plan_unchecked(req).await?;
        let policy = self.policy();
        for new in &planned {
            let spec = &new.message.spec;
            match &req.parsed_url {
                Some((text, parsed)) if *text == spec.url => policy.check_parsed(parsed)?,
                _ => policy.check_url(&spec.url)?,
            }
            for callback in [&spec.callback, &spec.failure_callback]
                .into_iter()
                .flatten()
            {
                policy.check_url(callback)?;
            }
        }
        Ok(planned)
    }

    async fn plan_unchecked(&self, req: &PublishRequest) -> Result<Vec<NewMessage>, PlanError> {
        match &req.destination {
            Destination::Url(url) => Ok(vec![new_message(req, url, None, None)]),
            Destination::UrlGroup(name) => {
                let group = self
                    .store
                    .url_group(&req.user_id, name)
                    .await?
                    .ok_or_else(|| PlanError::UnknownUrlGroup(name.clone()))?;
                Ok(group
                    .endpoints
                    .iter()
                    .map(|e| new_message(req, &e.url, Some(name), e.name.as_deref()))
                    .collect())
            }
        }
    }
}

/// One message of `req` to `url` (an endpoint of `topic`, if given).
pub fn new_message(
    req: &PublishRequest,
    url: &str,
    topic: Option<&str>,
    endpoint: Option<&str>,
) -> NewMessage {
    let mut spec = req.options.spec.clone();
    spec.url = url.to_string();
    spec.topic_name = topic.map(String::from);
    spec.endpoint_name = endpoint.map(String::from);
    spec.caller_ip = req.caller_ip.clone();
    spec.queue_name = req.queue.clone();
    let due = req.options.not_before.unwrap_or(req.now);
    let dedup_key = req.options.dedup_key(&spec.url, &req.body, &spec.header);
    let message = Message {
        id: qstash_core::ids::message_id(),
        user_id: req.user_id.clone(),
        spec,
        body: req.body.clone(),
        created_at: req.now,
        not_before: due,
        due_at: due,
        retried: 0,
        state: MessageState::Pending,
    };
    NewMessage { message, dedup_key }
}
