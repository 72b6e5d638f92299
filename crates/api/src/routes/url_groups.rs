//! URL groups (`/v2/topics`): named sets of endpoints, per user.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::Json;
use qstash_core::destination::validate_group_name;
use qstash_core::url_group::UrlGroup;
use qstash_core::url_group::{validate_endpoints, validate_refs, Endpoint, EndpointRef};
use serde::Deserialize;

use crate::auth::Caller;
use crate::routes::publish::read_body;
use crate::views::{Empty, EndpointView, ErrorBody, UrlGroupView};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
struct Endpoints<T> {
    endpoints: Vec<T>,
}

/// The body of adding endpoints (documentation of `Endpoints<Endpoint>`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AddEndpoints {
    endpoints: Vec<EndpointView>,
}

/// Endpoints to remove: by url, or by name.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RemoveEndpoints {
    endpoints: Vec<EndpointRefDoc>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EndpointRefDoc {
    name: Option<String>,
    url: Option<String>,
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

/// The body of a URL group patch (documentation of `PatchBody`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PatchHeaders {
    /// Header name to a value, or to values joined with `, `.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    headers: std::collections::BTreeMap<String, String>,
}

/// `PATCH /v2/topics/{name}` with `{"headers": {...}}`: default `Upstash-*`
/// settings (and forwarded headers) for every publish to the group,
/// validated as a publish would validate them.
#[utoipa::path(
    patch,
    path = "/v2/topics/{name}",
    tag = "url groups",
    summary = "Set the group's default headers: Upstash-* settings and forwarded headers for every publish to it",
    params(("name" = String, Path, description = "A URL group name")),
    request_body = PatchHeaders,
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = "4XX", description = "The request is wrong (a header a publish would refuse is a 400), the group is unknown (404), unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Empty>, ApiError> {
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
    Ok(Json(Empty {}))
}

fn view(g: &UrlGroup) -> UrlGroupView {
    UrlGroupView {
        name: g.name.clone(),
        created_at: g.created_at,
        updated_at: g.updated_at,
        endpoints: g
            .endpoints
            .iter()
            .map(|e| EndpointView {
                name: e.name.clone(),
                url: e.url.clone(),
            })
            .collect(),
    }
}

#[utoipa::path(
    post,
    path = "/v2/topics/{name}/endpoints",
    tag = "url groups",
    summary = "Add or update endpoints (creates the group)",
    params(("name" = String, Path, description = "A URL group name")),
    request_body = AddEndpoints,
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn upsert_endpoints(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Empty>, ApiError> {
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
    Ok(Json(Empty {}))
}

#[utoipa::path(
    delete,
    path = "/v2/topics/{name}/endpoints",
    tag = "url groups",
    summary = "Remove endpoints (the last one deletes the group)",
    params(("name" = String, Path, description = "A URL group name")),
    request_body = RemoveEndpoints,
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn remove_endpoints(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Empty>, ApiError> {
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
    Ok(Json(Empty {}))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("url group {name:?} not found"))
}

#[utoipa::path(
    get,
    path = "/v2/topics/{name}",
    tag = "url groups",
    summary = "A URL group",
    params(("name" = String, Path, description = "A URL group name")),
    responses(
        (status = 200, description = "The URL group", body = UrlGroupView),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<UrlGroupView>, ApiError> {
    match state.engine.reads().url_group(&user.id, &name).await? {
        Some(g) => Ok(Json(view(&g))),
        None => Err(not_found(&name)),
    }
}

#[utoipa::path(
    get,
    path = "/v2/topics",
    tag = "url groups",
    summary = "Every URL group",
    responses(
        (status = 200, description = "The URL groups", body = Vec<UrlGroupView>),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<UrlGroupView>>, ApiError> {
    let groups = state.engine.reads().url_groups(&user.id).await?;
    Ok(Json(groups.iter().map(view).collect()))
}

/// Succeeds for a missing group too: the SDK tests delete before they
/// create.
#[utoipa::path(
    delete,
    path = "/v2/topics/{name}",
    tag = "url groups",
    summary = "Delete a URL group (a missing one too)",
    params(("name" = String, Path, description = "A URL group name")),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        (status = "4XX", description = "The request is wrong, unauthenticated or over a limit; nothing was stored", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable or full; nothing was stored", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<Empty>, ApiError> {
    state.engine.delete_url_group(&user.id, &name).await?;
    Ok(Json(Empty {}))
}
