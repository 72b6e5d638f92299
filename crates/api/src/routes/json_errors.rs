//! Every error answer is `{"error": "..."}`: the ones our handlers build,
//! and the ones axum's extractors build as plain text (a bad
//! percent-encoding in a path parameter, a body that is not JSON).

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::views::ErrorBody;
use crate::ApiError;

/// Longest request target accepted (414 past it). Publish paths carry a
/// whole destination URL with its query, so this is generous.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most header bytes (names and values) accepted (431 past them).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Plain-text error bodies are short; anything longer is cut.
const MAX_TEXT: usize = 4 * 1024;

/// Runs `inner` on `request` (a middleware step of `routes::admit`, not a
/// layer of its own: each axum layer boxes the request's future and
/// clones the service below it, per request).
pub async fn around<F, Fut>(request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if let Err(e) = check_size(&request).and_then(|()| super::no_nul::check(request.uri())) {
        return e.into_response();
    }
    let response = inner(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let body =
        serde_json::to_string(&ErrorBody { error: message }).expect("an error body serializes");
    Response::from_parts(parts, Body::from(body))
}

/// The length of `uri` as written, without formatting it: the request
/// target is origin-form (`/path?query`) but for proxies' absolute form.
fn uri_len(uri: &axum::http::Uri) -> usize {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let origin = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => scheme.len() + "://".len() + authority.as_str().len(),
        (None, Some(authority)) => authority.as_str().len(),
        _ => 0,
    };
    origin + target
}

fn check_size(request: &Request) -> Result<(), ApiError> {
    let uri = uri_len(request.uri());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(format!(
            "the request URI is {uri} bytes; the limit is {MAX_URI_BYTES}"
        )));
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request headers are {headers} bytes; the limit is {MAX_HEADER_BYTES}"
        )));
    }
    Ok(())
}
