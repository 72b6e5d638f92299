//! Admission of every request, before routing: who is calling, within its
//! rate limits, then its whole body.

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::auth::{self, Caller};
use crate::client_ip;
use crate::routes::publish::read_bytes;
use crate::{ApiError, AppState};

/// The API's description is public, like the probes.
const OPENAPI: &str = "/v2/openapi.json";

/// hyper closes a keep-alive connection whose request body is still unread
/// when the answer goes out, and a client reusing it in that instant sees
/// "server disconnected". So every answer waits for the body.
///
/// The caller is authenticated from the headers first: a request that will
/// be refused (401, 429) has its body read and thrown away chunk by chunk,
/// never buffered, so unauthenticated uploads cost no memory. Only an
/// admitted request's body is buffered, up to the limit.
pub async fn read_whole_body(state: &AppState, request: Request, next: Next) -> Response {
    // Only the API asks who calls; anything else (a path no route knows)
    // gets its 404 from the router.
    let path = request.uri().path();
    if !path.starts_with("/v2/") || path == OPENAPI {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let admitted = auth::caller_or_hook(state, &parts.headers, &parts.uri).and_then(|user| {
        state
            .limits
            .admit(&user.id, parts.uri.path())
            .map(|()| user)
    });
    let user = match admitted {
        Ok(user) => user,
        Err(refusal) => {
            let _ = tokio::time::timeout(
                state.config.body_read_timeout,
                drain(body, state.config.max_body_bytes),
            )
            .await;
            return refusal.into_response();
        }
    };
    if let Some(slot) = parts.extensions.get::<crate::observe::RequestUser>() {
        slot.set(&user);
    }
    parts.extensions.insert(Caller(user));
    if !state.config.trusted_proxies.is_empty() {
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied()
        {
            let ip = client_ip::caller_ip(peer.ip(), &parts.headers, &state.config.trusted_proxies);
            parts
                .extensions
                .insert(ConnectInfo(SocketAddr::new(ip, peer.port())));
        }
    }
    let limit = state.config.body_read_timeout;
    let read = tokio::time::timeout(limit, read_bytes(body, state.config.max_body_bytes)).await;
    match read {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::RequestTimeout(format!(
            "the request body did not arrive within {} s",
            limit.as_secs_f64()
        ))
        .into_response(),
    }
}

/// Reads and drops up to `limit` bytes of `body`; past that the connection
/// is not worth keeping and hyper closes it.
async fn drain(mut body: Body, limit: usize) {
    let mut seen = 0;
    while seen <= limit {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}
