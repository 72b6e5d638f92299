//! What every request leaves behind: a count and, for publishes, a time in
//! the metrics, and one log line (target `qstash::http`). Routes are named
//! by their template (`/v2/messages/{id}`), never by the raw path, so
//! labels stay bounded and ids, destinations and tokens stay out of both.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use metrics::{counter, histogram, Counter, Histogram, SharedString};
use qstash_core::users::User;
use qstash_engine::meter::{self, Kind};

/// The authenticated user of a request, filled in by the admission
/// middleware (it runs inside this one) for the log line.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(Arc<OnceLock<Arc<User>>>);

impl RequestUser {
    pub fn set(&self, user: &Arc<User>) {
        let _ = self.0.set(user.clone());
    }
}

/// Wraps every route of `app`: for the routers other than the API's (the
/// console's, `/metrics`), whose admission step observes its requests
/// itself (`routes::admit`; each axum layer boxes the request's future
/// and clones the service below it, per request).
pub fn layer(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(observe))
}

async fn observe(request: Request, next: Next) -> Response {
    around(request, |request| next.run(request)).await
}

/// Runs `inner` on `request`, then counts it, times it (a publish) and
/// writes its log line.
pub async fn around<F, Fut>(mut request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let method = method_index(request.method());
    let route = Route::of(request.extensions().get::<MatchedPath>());
    let user = RequestUser::default();
    request.extensions_mut().insert(user.clone());
    let response = inner(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    route.count(method, status_index(status));
    if let Some(kind) = publish_kind(route.label()) {
        publish_duration(kind, took);
    }
    tracing::info!(
        target: "qstash::http",
        method = METHODS[method],
        route = route.label(),
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        user = user.0.get().map(|u| u.id.as_str()),
        "request"
    );
    response
}

/// A request's route: one of the API's (by its index in the table), or
/// another router's (the console's, `/metrics`), or none.
enum Route {
    Api(usize),
    Other(String),
    Unmatched,
}

impl Route {
    fn of(matched: Option<&MatchedPath>) -> Route {
        let Some(matched) = matched.map(MatchedPath::as_str) else {
            return Route::Unmatched;
        };
        match crate::routes::ROUTES
            .iter()
            .position(|(path, _)| *path == matched)
        {
            Some(i) => Route::Api(i),
            None => Route::Other(matched.to_string()),
        }
    }

    /// The route's template, as the metrics and the log name it.
    fn label(&self) -> &str {
        match self {
            Route::Api(i) => crate::routes::ROUTES[*i].0,
            Route::Other(path) => path,
            Route::Unmatched => "unmatched",
        }
    }

    /// Counts a request. The API's routes keep their counter handles
    /// (`meter::kept`: a labelled key looked up in the recorder for every
    /// request cost more than all the rest of this layer).
    /// `method` and `status` index [`METHODS`] and [`STATUSES`].
    fn count(&self, method: usize, status: usize) {
        let new = || {
            let route = match self {
                Route::Api(i) => SharedString::const_str(crate::routes::ROUTES[*i].0),
                _ => SharedString::from(self.label().to_string()),
            };
            counter!(
                "qstash_http_requests_total",
                "method" => METHODS[method],
                "route" => route,
                "status" => STATUSES[status]
            )
        };
        let Route::Api(i) = self else {
            return new().increment(1);
        };
        meter::kept(&REQUESTS[*i][method][status], new, |c| c.increment(1));
    }
}

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];
const STATUSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const ROUTE_COUNT: usize = crate::routes::ROUTES.len();

/// The request counters of the API's routes, by route, method and status.
static REQUESTS: [[[OnceLock<Counter>; STATUSES.len()]; METHODS.len()]; ROUTE_COUNT] =
    [const { [const { [const { OnceLock::new() }; STATUSES.len()] }; METHODS.len()] }; ROUTE_COUNT];

/// Records a publish's duration in its kind's histogram (kept, as above).
fn publish_duration(kind: Kind, took: Duration) {
    static DURATIONS: [OnceLock<Histogram>; meter::KINDS.len()] =
        [const { OnceLock::new() }; meter::KINDS.len()];
    meter::kept(
        &DURATIONS[kind.index()],
        || histogram!("qstash_publish_duration_seconds", "kind" => kind.as_str()),
        |h| h.record(took.as_secs_f64()),
    );
}

/// A method's place in [`METHODS`]; methods outside the standard ones
/// share the last, `other`.
fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// A status's class, its place in [`STATUSES`].
fn status_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
fn method_label(m: &Method) -> &'static str {
    METHODS[method_index(m)]
}

#[cfg(test)]
fn status_class(status: u16) -> &'static str {
    STATUSES[status_index(status)]
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
        assert_eq!(Route::of(None).label(), "unmatched");
        for m in &METHODS[..7] {
            assert_eq!(method_label(&Method::from_bytes(m.as_bytes()).unwrap()), *m);
        }
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(302), "3xx");
        assert_eq!(status_class(404), "4xx");
    }
}
