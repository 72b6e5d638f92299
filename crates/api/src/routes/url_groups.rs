//! URL groups (`/v2/topics`): named sets of endpoints, per user.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::Json;
use qstash_core::destination::validate_group_name;
use qstash_core::url_group::UrlGroup;
use qstash_core::url_group::{validate_endpoints, validate_refs, Endpoint, EndpointRef};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::routes::publish::read_body;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
struct Endpoints<T> {
    endpoints: Vec<T>,
}

fn name_of(name: &str) -> Result<&str, ApiError> {
    validate_group_name(name).map_err(ApiError::bad)
}

async fn body_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"endpoints\": [{{\"url\", \"name\"}}]}}: {e}"
        ))
    })
}

/// A publish to a group creates one message per endpoint, so the number of
/// endpoints bounds how much one request can store.
async fn check_endpoint_limit(
    state: &AppState,
    user_id: &str,
    name: &str,
    adding: &[Endpoint],
) -> Result<(), ApiError> {
    let max = state.config.max_url_group_endpoints;
    let existing = state.engine.reads().url_group(user_id, name).await?;
    let mut urls: std::collections::HashSet<&str> = existing
        .iter()
        .flat_map(|g| g.endpoints.iter().map(|e| e.url.as_str()))
        .collect();
    urls.extend(adding.iter().map(|e| e.url.as_str()));
    if urls.len() > max {
        return Err(ApiError::BadRequest(format!(
            "url group {name:?} would have {} endpoints; the limit is {max} (--max-url-group-endpoints)",
            urls.len()
        )));
    }
    Ok(())
}

/// A default header value: a string, or a list of strings (the docs send
/// `["true"]`), whose values are joined with `, `.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    headers: std::collections::BTreeMap<String, HeaderValue>,
}

/// `PATCH /v2/topics/{name}` with `{"headers": {...}}`: default `Upstash-*`
/// settings (and forwarded headers) for every publish to the group,
/// validated as a publish would validate them.
pub async fn patch(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let name = name_of(&name)?;
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let req: PatchBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"headers\": {{\"Upstash-Retries\": \"3\", ...}}}}: {e}"
        ))
    })?;
    let headers: Vec<(String, String)> = req
        .headers
        .into_iter()
        .map(|(k, v)| match v {
            HeaderValue::One(v) => (k, v),
            HeaderValue::Many(vs) => (k, vs.join(", ")),
        })
        .collect();
    let options = qstash_core::publish::PublishOptions::from_headers(
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        state.engine.now(),
    )
    .map_err(ApiError::bad)?;
    crate::routes::publish::refuse_cron(&options)?;
    let found = state
        .engine
        .set_url_group_headers(&user.id, name, headers)
        .await?;
    if !found {
        return Err(ApiError::NotFound(format!("url group {name:?} not found")));
    }
    Ok(Json(json!({})))
}

fn view(g: &UrlGroup) -> Value {
    json!({
        "name": g.name,
        "createdAt": g.created_at,
        "updatedAt": g.updated_at,
        "endpoints": g.endpoints,
    })
}

pub async fn upsert_endpoints(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let name = name_of(&name)?;
    let req: Endpoints<Endpoint> = body_json(&state, body).await?;
    let endpoints = validate_endpoints(req.endpoints).map_err(ApiError::bad)?;
    for e in &endpoints {
        state
            .engine
            .policy()
            .check_url(&e.url)
            .map_err(|d| ApiError::BadRequest(format!("endpoint {}: {d}", e.url)))?;
    }
    check_endpoint_limit(&state, &user.id, name, &endpoints).await?;
    state
        .engine
        .upsert_endpoints(&user.id, name, endpoints)
        .await?;
    Ok(Json(json!({})))
}

pub async fn remove_endpoints(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let name = name_of(&name)?;
    let req: Endpoints<EndpointRef> = body_json(&state, body).await?;
    validate_refs(&req.endpoints).map_err(ApiError::bad)?;
    let found = state
        .engine
        .remove_endpoints(&user.id, name, req.endpoints)
        .await?;
    if !found {
        return Err(not_found(name));
    }
    Ok(Json(json!({})))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("url group {name:?} not found"))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.engine.reads().url_group(&user.id, &name).await? {
        Some(g) => Ok(Json(view(&g))),
        None => Err(not_found(&name)),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let groups = state.engine.reads().url_groups(&user.id).await?;
    Ok(Json(Value::Array(groups.iter().map(view).collect())))
}

/// Succeeds for a missing group too: the SDK tests delete before they
/// create.
pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.engine.delete_url_group(&user.id, &name).await?;
    Ok(Json(json!({})))
}
