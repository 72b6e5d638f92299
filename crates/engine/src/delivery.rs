//! One delivery attempt over HTTP, and recording its outcome.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use qstash_core::headers::{canonical_name, HeaderMap};
use qstash_core::ids;
use qstash_core::outcome::{AttemptResponse, Outcome, OutcomeKind};
use qstash_core::Message;
use tokio::sync::OwnedSemaphorePermit;
use tower::util::MapErr;
use tower::ServiceExt;
use tower_http::follow_redirect::FollowRedirect;

use crate::guard::{Hops, PolicyResolver, SendError};
use crate::outcome::{decide, Attempt};
use crate::{Engine, EngineConfig};

// Built once: a header name that is not one of `http`'s standard ones is
// copied into a fresh allocation each time it is made from a `&str`.
const SIGNATURE: HeaderName = HeaderName::from_static("upstash-signature");
const MESSAGE_ID: HeaderName = HeaderName::from_static("upstash-message-id");
const RETRIED: HeaderName = HeaderName::from_static("upstash-retried");
const CALLER_IP: HeaderName = HeaderName::from_static("upstash-caller-ip");
const TOPIC_NAME: HeaderName = HeaderName::from_static("upstash-topic-name");
const ENDPOINT_NAME: HeaderName = HeaderName::from_static("upstash-endpoint-name");
const SCHEDULE_ID: HeaderName = HeaderName::from_static("upstash-schedule-id");

/// The pooled client of every delivery, and its redirect policy: hyper's
/// own client, not reqwest's layers on top of it, which parsed every
/// destination URL twice more (for its redirect policy and for the
/// response) and cost 6% of a delivered message's instructions (issue 17).
pub type Destinations = FollowRedirect<MapErr<Pool, fn(PoolError) -> SendError>, Hops>;
type Pool = Client<HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>;
type PoolError = hyper_util::client::legacy::Error;

/// Keep-alive connections are reused across messages to the same host;
/// HTTPS is verified against the system's roots (as reqwest did) and may
/// speak HTTP/2 when the destination offers it.
///
/// The destination policy applies to every address a name resolves to and
/// to every redirect hop (`guard.rs`).
pub fn client(config: &EngineConfig) -> Result<Destinations, String> {
    let policy = config.destination_policy.clone();
    let mut http = HttpConnector::new_with_resolver(PolicyResolver {
        policy: policy.clone(),
    });
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let tls = rustls::crypto::aws_lc_rs::default_provider();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(tls)
        .map_err(|e| format!("TLS roots: {e}"))?
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let pool = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(config.max_in_flight)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https);
    let wrap: fn(PoolError) -> SendError = SendError::Client;
    Ok(FollowRedirect::with_policy(
        pool.map_err(wrap),
        Hops::new(policy),
    ))
}

impl Engine {
    /// Delivers `message` on a task of its own, holding its delivery slot
    /// (`permit`) until the attempt is over; `then` frees whatever else the
    /// delivery held (its user's slot, its gate slots).
    pub(crate) fn spawn_delivery(
        self: &Arc<Self>,
        message: Message,
        permit: OwnedSemaphorePermit,
        then: impl FnOnce(&Engine) + Send + 'static,
    ) {
        let engine = self.clone();
        // Boxed: a delivery's future is about 5 KB, and a spawn moves the
        // future by value several times (into the task's cell, through its
        // stages); a box is moved once.
        tokio::spawn(Box::pin(async move {
            engine.deliver(message).await;
            drop(permit);
            then(&engine);
        }));
    }

    pub(crate) async fn deliver(&self, message: Message) {
        // A workflow message carries its run's log and ids (issue 14).
        let workflow = self.workflow_delivery(&message).await;
        let started = std::time::Instant::now();
        let attempt = self.attempt(&workflow.message).await;
        let took = started.elapsed();
        let at = self.now();
        let kind = decide(&message, &attempt, at);
        crate::observe::attempt(&message, &attempt, &kind, took);
        let response = match attempt {
            Attempt::Answered(r) => r,
            Attempt::NoAnswer(_) => AttemptResponse::default(),
        };
        let delivered = matches!(kind, OutcomeKind::Delivered);
        crate::meter::attempt(took, delivered.then(|| at - message.due_at));
        let dlq_id = matches!(kind, OutcomeKind::Failed { .. }).then(|| ids::dlq_id(at));
        let mut callbacks =
            crate::callbacks::for_attempt(&message, &response, &kind, dlq_id.as_deref(), at);
        self.workflow_callbacks(&message, workflow.run.as_ref(), &kind, &mut callbacks);
        let fails_run = crate::workflow::fails_run(&message, &kind);
        let outcome = Outcome {
            message_id: message.id.clone(),
            at,
            kind,
            response,
            dlq_id,
            callbacks,
            fails_run,
        };
        // Counted as decided: the commit below retries until it lands (or
        // the message is delivered again after a restart).
        let event = crate::stats::Event::of(&outcome.kind);
        self.stats.add(&message.user_id, at, event, 1);
        let kind = outcome.kind.clone();
        let user = &message.user_id;
        crate::meter::deliveries(crate::meter::outcome_label(&outcome.kind), user, 1);
        let callbacks = outcome.callbacks.len() as u64;
        crate::meter::published(crate::meter::Kind::Callback, user, callbacks);
        // The retry and the callbacks it creates are announced by the
        // store's commit. A run is failed only after its step's outcome
        // (and so its failing note) committed; an outcome that did not is
        // delivered again after a restart.
        if self.record(outcome).await {
            self.workflow_outcome(&message, &kind).await;
        }
    }

    /// Commits an outcome. While the store is unavailable (a database
    /// restarting) the attempt keeps its delivery slot and tries again, so
    /// deliveries pause instead of piling up; recording twice is harmless
    /// (a message no longer in flight is skipped). Any other error leaves
    /// the message in flight in the store: it is delivered again after a
    /// restart (at-least-once, never lost). True when it committed.
    async fn record(&self, outcome: Outcome) -> bool {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.store.record_outcomes(vec![outcome.clone()]).await {
                Ok(()) => return true,
                Err(e) if e.is_transient() && !self.stopping() => {
                    tracing::warn!(id = %outcome.message_id, error = %e, "recording a delivery outcome failed; will try again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(id = %outcome.message_id, error = %e, "recording a delivery outcome failed");
                    return false;
                }
            }
        }
    }

    async fn attempt(&self, m: &Message) -> Attempt {
        // The policy may have changed since the message was accepted (a
        // restart with new rules); literal addresses are checked here,
        // names when they are resolved. One parse serves the check, the
        // port guard and the request (three parses were 3% of the server's
        // CPU end to end).
        let url = match url::Url::parse(&m.spec.url) {
            Ok(url) => url,
            Err(e) => return Attempt::NoAnswer(format!("the destination URL is invalid: {e}")),
        };
        if let Err(e) = self.policy().check_parsed(&url) {
            return Attempt::NoAnswer(e.to_string());
        }
        let port = url.port_or_known_default();
        let request = match self.build_request(m, &url) {
            Ok(r) => r,
            Err(e) => return Attempt::NoAnswer(e),
        };
        let timeout = m
            .spec
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.config.default_timeout);
        // The timeout covers the whole exchange, body included.
        let exchange = async {
            let response = self.http.clone().oneshot(request).await?;
            Ok::<_, SendError>(self.read_response(response).await)
        };
        match tokio::time::timeout(timeout, crate::guard::with_port(port, exchange)).await {
            Ok(Ok(response)) => Attempt::Answered(response),
            Ok(Err(e)) => {
                Attempt::NoAnswer(format!("cannot reach the destination: {}", error_chain(&e)))
            }
            Err(_) => Attempt::NoAnswer("timeout: the destination did not answer in time".into()),
        }
    }

    /// The attempt's request, built whole.
    fn build_request(
        &self,
        m: &Message,
        url: &url::Url,
    ) -> Result<http::Request<Full<Bytes>>, String> {
        let signer = self
            .keys
            .signer(&m.user_id)
            .ok_or_else(|| format!("no signing keys for user {}", m.user_id))?;
        let signature = signer
            .sign(&m.spec.url, &m.body, self.now() / 1000)
            .map_err(|e| e.to_string())?;
        let method =
            http::Method::from_bytes(m.spec.method.as_bytes()).map_err(|e| e.to_string())?;
        let uri = http::Uri::try_from(url.as_str())
            .map_err(|e| format!("the destination URL is invalid: {e}"))?;
        let mut request = http::Request::new(Full::new(m.body.clone()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        forward(headers, &m.spec.header);
        // Defaults a forwarded header of the same name replaces.
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static("Upstash-QStash"));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let mut set = |name: &HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name.clone(), v);
            }
        };
        set(&SIGNATURE, &signature);
        set(&MESSAGE_ID, &m.id);
        set(&RETRIED, &m.retried.to_string());
        if let Some(ip) = &m.spec.caller_ip {
            set(&CALLER_IP, ip);
        }
        if let Some(topic) = &m.spec.topic_name {
            set(&TOPIC_NAME, topic);
        }
        if let Some(endpoint) = &m.spec.endpoint_name {
            set(&ENDPOINT_NAME, endpoint);
        }
        if let Some(schedule) = &m.spec.schedule_id {
            set(&SCHEDULE_ID, schedule);
        }
        Ok(request)
    }

    /// Reads status, headers and up to `max_response_body` bytes of body.
    async fn read_response(&self, response: http::Response<Incoming>) -> AttemptResponse {
        let (parts, mut incoming) = response.into_parts();
        let mut header = HeaderMap::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            header
                .entry(canonical_name(name.as_str()))
                .or_default()
                .push(value);
        }
        let mut body = Vec::new();
        let limit = self.config.max_response_body;
        while body.len() < limit {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
                    }
                }
                _ => break,
            }
        }
        AttemptResponse {
            status: parts.status.as_u16(),
            header,
            body,
        }
    }
}

/// The stored headers, as the destination should see them. A forwarded
/// header replaces a default of the same name (such as User-Agent).
fn forward(out: &mut http::HeaderMap, stored: &HeaderMap) {
    for (name, values) in stored {
        // Stored before forwarding them was refused at publish.
        if qstash_core::headers::is_hop_by_hop(name) {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.append(name.clone(), v);
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
