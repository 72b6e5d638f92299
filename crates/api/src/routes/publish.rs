//! `POST /v2/publish/{destination}` and `POST /v2/batch`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qstash_core::destination::{Destination, ParsedDestination};
use qstash_core::message::{Inserted, NewMessage};
use qstash_core::publish::PublishOptions;
use qstash_core::queue::validate_queue_name;
use qstash_engine::meter::{self, Kind};
use qstash_engine::PublishRequest;
use serde::Deserialize;

use crate::auth::Caller;
use crate::views::{published, ErrorBody, PublishAnswer, Published};
use crate::{ApiError, AppState};

const PUBLISH_PREFIX: &str = "/v2/publish/";

#[utoipa::path(
    post,
    path = "/v2/publish/{destination}",
    tag = "messages",
    summary = "Publish a message to a URL or a URL group",
    params(("destination" = String, Path, description = "A URL (`https://...`) or a URL group name"),
        ("Upstash-Delay" = Option<String>, Header, description = "Delay before the first attempt (`10s`, `1d10h`)"),
        ("Upstash-Retries" = Option<String>, Header, description = "Retries after a failed attempt"),
        ("Upstash-Method" = Option<String>, Header, description = "HTTP method of the delivery"),
        ("Upstash-Deduplication-Id" = Option<String>, Header, description = "Publishes with the same id store one message"),
        ("Upstash-Callback" = Option<String>, Header, description = "Where the destination's answer is sent")),
    request_body(content = String, description = "The message body, forwarded as is", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored: one message, or one per endpoint of a URL group", body = PublishAnswer),
        (status = 202, description = "Deduplicated: the earlier message", body = Published),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn publish(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The raw path, not axum's decoded capture: the destination URL must
    // reach the destination exactly as the caller wrote it.
    let raw = uri.path().strip_prefix(PUBLISH_PREFIX).unwrap_or_default();
    accept(
        &state,
        user.id.clone(),
        peer,
        raw,
        uri.query(),
        &headers,
        body,
        None,
    )
    .await
}

/// A publish or enqueue of `raw` (the undecoded destination) into `queue`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn accept(
    state: &AppState,
    user_id: String,
    peer: SocketAddr,
    raw: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    queue: Option<String>,
) -> Result<Response, ApiError> {
    let llm = llm_url(state, raw);
    let parsed =
        ParsedDestination::parse(llm.as_deref().unwrap_or(raw), query).map_err(ApiError::bad)?;
    let mut pairs = header_pairs(headers, &parsed.query_settings)?;
    if let Destination::UrlGroup(name) = &parsed.destination {
        let defaults = state
            .engine
            .reads()
            .url_group_headers(&user_id, name)
            .await?;
        with_defaults(&mut pairs, defaults);
    }
    let now = state.engine.now();
    let mut options =
        PublishOptions::from_headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now)
            .map_err(ApiError::bad)?;
    refuse_cron(&options)?;
    options.forward_incoming(
        headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v.as_bytes()).ok()?))),
    );
    let body = read_bytes(body, state.config.max_body_bytes).await?;
    let group = matches!(parsed.destination, Destination::UrlGroup(_));
    let request = PublishRequest {
        user_id,
        caller_ip: Some(crate::client_ip::text(peer.ip())),
        destination: parsed.destination,
        queue,
        options,
        body,
        now,
        parsed_url: parsed.url,
    };
    let request_queue = request.queue.is_some();
    let planned = state.engine.plan(&request).await?;
    let kind = match request_queue {
        true => Kind::Enqueue,
        false => Kind::Publish,
    };
    let mut answers = submit(state, planned, kind).await?;
    if llm.is_some() {
        // WIRE.md §3.1: an `api/llm` publish answers only the message id.
        for a in &mut answers {
            a.url = None;
        }
    }
    Ok(render(answers, group))
}

/// The `api/llm` destination (WIRE.md §3.13): an OpenAI-compatible chat
/// completion request, delivered to `--llm-base-url`. The caller's
/// `Upstash-Forward-Authorization` carries the provider's key.
fn llm_url(state: &AppState, raw: &str) -> Option<String> {
    (raw.trim_matches('/') == "api/llm")
        .then(|| format!("{}/v1/chat/completions", state.config.llm_base_url))
}

/// One batch item, as both SDKs send it (Python sends `null` for unset).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchItem {
    destination: String,
    #[serde(default)]
    headers: Option<std::collections::HashMap<String, String>>,
    /// A string, or (as `context.call` of the workflow SDK sends it) any
    /// other JSON value, which is sent as its JSON text.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    queue: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v2/batch",
    tag = "messages",
    summary = "Publish several messages in one commit",
    request_body = Vec<BatchItem>,
    responses(
        (status = 201, description = "One answer per item", body = Vec<PublishAnswer>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    Caller(user): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let items: Vec<BatchItem> = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!("batch body must be a JSON array of messages: {e}"))
    })?;
    // The limit counts messages, so a URL group item counts each endpoint:
    // the product of the two is what one request can store.
    let max = state.config.max_batch_items;
    let too_many = |n: usize| {
        ApiError::BadRequest(format!(
            "the batch would create {n} messages or more; the limit is {max} (--max-batch-items; a URL group item counts one per endpoint)"
        ))
    };
    if items.len() > max {
        return Err(too_many(items.len()));
    }
    state.limits.admit_batch(&user.id, items.len())?;
    let mut planned_count = 0;
    let now = state.engine.now();
    // Validate every item before storing any, so a bad item stores nothing.
    let mut plans = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = |e: ApiError| e.within(&format!("batch item {i}"));
        let queue = match item.queue.filter(|q| !q.is_empty()) {
            Some(q) => Some(
                validate_queue_name(&q)
                    .map_err(|e| at(ApiError::bad(e)))?
                    .to_string(),
            ),
            None => None,
        };
        let destination = llm_url(&state, &item.destination).unwrap_or(item.destination);
        let parsed =
            ParsedDestination::parse(&destination, None).map_err(|e| at(ApiError::bad(e)))?;
        let headers: Vec<(String, String)> = item.headers.unwrap_or_default().into_iter().collect();
        let options = PublishOptions::from_headers(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            now,
        )
        .map_err(|e| at(ApiError::bad(e)))?;
        refuse_cron(&options).map_err(at)?;
        let body = match item.body {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => s.into_bytes(),
            Some(other) => other.to_string().into_bytes(),
        };
        let group = matches!(parsed.destination, Destination::UrlGroup(_));
        let request = PublishRequest {
            user_id: user.id.clone(),
            caller_ip: Some(crate::client_ip::text(peer.ip())),
            destination: parsed.destination,
            queue,
            options,
            body: body.into(),
            now,
            parsed_url: parsed.url,
        };
        let planned = state
            .engine
            .plan(&request)
            .await
            .map_err(|e| at(e.into()))?;
        planned_count += planned.len();
        if planned_count > max {
            return Err(too_many(planned_count));
        }
        plans.push((planned, group));
    }
    // One commit for the whole batch: all of it is stored, or none.
    let sizes: Vec<(usize, bool)> = plans.iter().map(|(p, g)| (p.len(), *g)).collect();
    let all: Vec<NewMessage> = plans.into_iter().flat_map(|(p, _)| p).collect();
    let mut answers = submit(&state, all, Kind::Batch).await?.into_iter();
    let out: Vec<PublishAnswer> = sizes
        .into_iter()
        .map(|(n, group)| {
            let mut item: Vec<Published> = answers.by_ref().take(n).collect();
            match (group, item.len()) {
                (false, 1) => PublishAnswer::One(item.remove(0)),
                _ => PublishAnswer::UrlGroup(item),
            }
        })
        .collect();
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Commits the messages; one answer object per message, in order.
async fn submit(
    state: &AppState,
    planned: Vec<NewMessage>,
    kind: Kind,
) -> Result<Vec<Published>, ApiError> {
    let urls: Vec<String> = planned.iter().map(|p| p.message.spec.url.clone()).collect();
    let user = planned.first().map(|p| p.message.user_id.clone());
    // Workflow messages start or extend their run (issue 14).
    let inserted = state.engine.submit_published(planned).await?;
    if let Some(user) = user {
        let new = inserted.iter().filter(|i| matches!(i, Inserted::New(_)));
        meter::published(kind, &user, new.count() as u64);
    }
    Ok(inserted
        .iter()
        .zip(urls)
        .map(|(ins, url)| published(ins.id(), &url, matches!(ins, Inserted::Duplicate(_))))
        .collect())
}

/// A URL publish answers one object; a URL group publish a bare array.
/// A deduplicated single publish answers 202, as QStash does.
fn render(mut answers: Vec<Published>, group: bool) -> Response {
    if group || answers.len() != 1 {
        let all = PublishAnswer::UrlGroup(answers);
        return (StatusCode::CREATED, Json(all)).into_response();
    }
    let answer = answers.remove(0);
    let status = if answer.deduplicated.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    (status, Json(PublishAnswer::One(answer))).into_response()
}

/// Request headers as (name, value) pairs, then the `upstash-*` settings
/// from the query string, which apply only where no header set them.
///
/// An `Upstash-*` or `Content-Type` value that is not UTF-8 is a 400:
/// dropping it would send the message with defaults the caller did not ask
/// for. Other headers are not read, so their bytes do not matter.
pub(crate) fn header_pairs(
    headers: &HeaderMap,
    query_settings: &[(String, String)],
) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        let name = k.as_str();
        if !(name.starts_with("upstash-") || name == "content-type") {
            continue;
        }
        let value = std::str::from_utf8(v.as_bytes()).map_err(|_| {
            ApiError::BadRequest(format!("invalid {name} header: the value is not UTF-8"))
        })?;
        pairs.push((name.to_string(), value.to_string()));
    }
    for (k, v) in query_settings {
        if !headers.contains_key(k.as_str()) {
            pairs.push((k.clone(), v.clone()));
        }
    }
    Ok(pairs)
}

/// A URL group's default headers apply where the request set no header
/// of the same name.
fn with_defaults(pairs: &mut Vec<(String, String)>, defaults: Vec<(String, String)>) {
    for (name, value) in defaults {
        if !pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            pairs.push((name, value));
        }
    }
}

/// `Upstash-Cron` belongs to schedules; on a publish it would be ignored
/// and the message sent once, which is never what the caller meant.
pub(crate) fn refuse_cron(options: &PublishOptions) -> Result<(), ApiError> {
    match options.cron {
        Some(_) => Err(ApiError::BadRequest(
            "Upstash-Cron is not accepted on a publish: create a schedule with POST /v2/schedules/{destination} instead".into(),
        )),
        None => Ok(()),
    }
}

/// The whole body as a `Vec` of its own size (`Vec::from` could keep all
/// of a large read buffer the body was a slice of).
pub async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    read_bytes(body, limit).await.map(|b| b.to_vec())
}

/// The whole body, up to `limit` bytes, without a copy (the admission
/// step's: a handler copies it once, into a message or a parser).
pub async fn read_bytes(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!(
            "request body is larger than the limit of {limit} bytes"
        ))
    })
}
