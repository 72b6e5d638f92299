//! Reads every request body before routing.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::routes::publish::read_body;
use crate::{ApiError, AppState};

/// hyper closes a keep-alive connection whose request body is still unread
/// when the answer goes out, and a client reusing it in that instant sees
/// "server disconnected". Answers that come before a handler reads the body
/// (a 401, a 404, a 400 on the path) would do that whenever the body
/// arrives after the headers, so the body is read first, up to the limit.
pub async fn read_whole_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}
