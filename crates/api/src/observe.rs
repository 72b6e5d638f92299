//! What every request leaves behind: a count and, for publishes, a time in
//! the metrics, and one log line (target `qstash::http`). Routes are named
//! by their template (`/v2/messages/{id}`), never by the raw path, so
//! labels stay bounded and ids, destinations and tokens stay out of both.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use metrics::{counter, histogram, SharedString};
use qstash_core::users::User;
use qstash_engine::meter::Kind;

/// The authenticated user of a request, filled in by the admission
/// middleware (it runs inside this one) for the log line.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(Arc<OnceLock<Arc<User>>>);

impl RequestUser {
    pub fn set(&self, user: &Arc<User>) {
        let _ = self.0.set(user.clone());
    }
}

/// Wraps every route of `app` (call it last, on the whole app).
pub fn layer(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(observe))
}

async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route_label(request.extensions().get::<MatchedPath>());
    let user = RequestUser::default();
    request.extensions_mut().insert(user.clone());
    let response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    counter!(
        "qstash_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status_class(status)
    )
    .increment(1);
    if let Some(kind) = publish_kind(&route) {
        histogram!("qstash_publish_duration_seconds", "kind" => kind.as_str())
            .record(took.as_secs_f64());
    }
    tracing::info!(
        target: "qstash::http",
        method,
        route = %route,
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        user = user.0.get().map(|u| u.id.as_str()),
        "request"
    );
    response
}

/// The route's template; the API's own routes as the table's static
/// strings, so a request's count allocates no label (the console's and
/// `/metrics` are copied).
fn route_label(matched: Option<&MatchedPath>) -> SharedString {
    let Some(matched) = matched.map(MatchedPath::as_str) else {
        return SharedString::const_str("unmatched");
    };
    match crate::routes::ROUTES
        .iter()
        .find(|(path, _)| *path == matched)
    {
        Some((path, _)) => SharedString::const_str(path),
        None => SharedString::from(matched.to_string()),
    }
}

/// Methods outside the standard ones share one label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn publish_kind(route: &str) -> Option<Kind> {
    match route {
        "/v2/publish/{*destination}" => Some(Kind::Publish),
        "/v2/enqueue/{queue}/{*destination}" => Some(Kind::Enqueue),
        "/v2/batch" => Some(Kind::Batch),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(publish_kind("/v2/batch"), Some(Kind::Batch));
        assert_eq!(publish_kind("/v2/messages/{id}"), None);
        assert_eq!(&*route_label(None), "unmatched");
    }
}
