//! The route table.

mod cluster;
mod cron;
mod dlq;
mod flow_control;
mod health;
mod json_errors;
mod keys;
mod live;
mod logs;
mod messages;
mod no_nul;
mod openapi;
mod publish;
mod queues;
mod schedules;
mod stats;
mod url_groups;
mod whole_body;
mod workflows;

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{any, delete, get, post};
use axum::Router;

use crate::{ApiError, AppState};

/// Builds the route table and, from the very same tokens, [`ROUTES`]: each
/// path with the methods it takes (`any` for every method). The OpenAPI
/// test checks the document against it, so a route cannot be added
/// without being described.
macro_rules! route_table {
    ($($path:literal => $first:ident($handler:expr) $(.$method:ident($more:expr))*),* $(,)?) => {
        fn table() -> Router<AppState> {
            Router::new()$(.route($path, $first($handler)$(.$method($more))*))*
        }

        /// Every route: its axum path and its methods.
        pub const ROUTES: &[(&str, &[&str])] =
            &[$(($path, &[stringify!($first) $(, stringify!($method))*])),*];
    };
}

route_table! {
    "/v2/publish/{*destination}" => post(publish::publish),
    "/v2/batch" => post(publish::batch),
    "/v2/messages" => get(live::list).delete(messages::cancel_many),
    "/v2/messages/{id}" => get(messages::get).delete(messages::cancel_one),
    "/v2/keys" => get(keys::get),
    "/v2/keys/rotate" => post(keys::rotate),
    "/v2/enqueue/{queue}/{*destination}" => post(queues::enqueue),
    "/v2/queues" => get(queues::list).post(queues::upsert),
    "/v2/queues/{name}" => get(queues::get).delete(queues::delete),
    "/v2/queues/{name}/pause" => post(queues::pause),
    "/v2/queues/{name}/resume" => post(queues::resume),
    "/v2/topics" => get(url_groups::list),
    "/v2/topics/{name}" => get(url_groups::get)
        .delete(url_groups::delete)
        .patch(url_groups::patch),
    "/v2/topics/{name}/endpoints" => post(url_groups::upsert_endpoints)
        .delete(url_groups::remove_endpoints),
    "/v2/flowControl" => get(flow_control::list),
    "/v2/flowControl/{key}" => get(flow_control::get),
    "/v2/flowControl/{key}/pause" => post(flow_control::pause),
    "/v2/flowControl/{key}/resume" => post(flow_control::resume),
    "/v2/flowControl/{key}/pin" => post(flow_control::pin),
    "/v2/flowControl/{key}/unpin" => post(flow_control::unpin),
    "/v2/flowControl/{key}/resetRate" => post(flow_control::reset_rate),
    "/v2/globalParallelism" => get(flow_control::global_parallelism),
    "/v2/events" => get(logs::events),
    "/v2/logs" => get(logs::logs),
    "/v2/dlq" => get(dlq::list).delete(dlq::delete_many),
    "/v2/dlq/{id}" => get(dlq::get).delete(dlq::delete_one),
    "/v2/dlq/retry" => post(dlq::retry_many),
    "/v2/dlq/retry/{id}" => post(dlq::retry_one),
    "/v2/schedules" => get(schedules::list),
    // Create, get, delete, pause and resume: the handlers tell them apart
    // by the shape of the path (schedules.rs).
    "/v2/schedules/{*rest}" => post(schedules::post)
        .get(schedules::get)
        .delete(schedules::delete)
        .patch(schedules::patch),
    // Extensions of this server, for the console (docs/ARCHITECTURE.md).
    "/v2/stats" => get(stats::get),
    "/v2/cron/next" => get(cron::next),
    "/v2/cluster" => get(cluster::get),
    // Without a token: the document and the probes (outside /v2/).
    "/v2/openapi.json" => get(openapi::document),
    "/healthz" => get(health::healthz),
    "/readyz" => get(health::readyz),
    // Upstash Workflow (issue 14).
    "/v2/workflows/runs" => delete(workflows::cancel_many),
    "/v2/workflows/runs/{id}" => get(workflows::steps).delete(workflows::end),
    "/v2/workflows/logs" => get(workflows::logs),
    "/v2/workflows/events" => get(workflows::events),
    "/v2/wait/{event}" => post(workflows::wait),
    "/v2/notify/{*rest}" => post(workflows::notify),
    "/v2/waiters/{event}" => get(workflows::waiters),
    "/v2/workflows/hooks/{user}/{run}/{event}" => any(workflows::hook),
    "/v2/workflows/dlq" => delete(workflows::dlq_delete),
    "/v2/workflows/dlq/resume" => post(workflows::dlq_resume),
    "/v2/workflows/dlq/restart" => post(workflows::dlq_restart),
    "/v2/workflows/dlq/callback/{id}" => post(workflows::dlq_callback),
    "/v2/workflows/dlq/{*rest}" => any(workflows::dlq_not_supported),
    "/v2/trigger/{*rest}" => any(workflows::trigger_not_supported),
}

pub fn router(state: AppState) -> Router {
    table()
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), admit))
        .with_state(state)
}

/// Every API request, in one layer: counted and logged (`observe`), its
/// size and NULs checked, then its caller admitted and its whole body
/// read, and any error answered as JSON (`json_errors`, `whole_body`).
async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::observe::around(request, move |request| {
        json_errors::around(request, move |request| async move {
            whole_body::read_whole_body(&state, request, next).await
        })
    })
    .await
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}
