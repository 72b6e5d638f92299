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
mod openapi;
mod publish;
mod queues;
mod schedules;
mod stats;
mod url_groups;
mod whole_body;
mod workflows;

use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use axum::Router;

use crate::{ApiError, AppState};

pub fn router(state: AppState) -> Router {
    let v2 = Router::new()
        .route("/v2/publish/{*destination}", post(publish::publish))
        .route("/v2/batch", post(publish::batch))
        .route(
            "/v2/messages",
            get(live::list).delete(messages::cancel_many),
        )
        .route(
            "/v2/messages/{id}",
            get(messages::get).delete(messages::cancel_one),
        )
        .route("/v2/keys", get(keys::get))
        .route("/v2/keys/rotate", post(keys::rotate))
        .route("/v2/enqueue/{queue}/{*destination}", post(queues::enqueue))
        .route("/v2/queues", get(queues::list).post(queues::upsert))
        .route("/v2/queues/{name}", get(queues::get).delete(queues::delete))
        .route("/v2/queues/{name}/pause", post(queues::pause))
        .route("/v2/queues/{name}/resume", post(queues::resume))
        .route("/v2/topics", get(url_groups::list))
        .route(
            "/v2/topics/{name}",
            get(url_groups::get)
                .delete(url_groups::delete)
                .patch(url_groups::patch),
        )
        .route(
            "/v2/topics/{name}/endpoints",
            post(url_groups::upsert_endpoints).delete(url_groups::remove_endpoints),
        )
        .route("/v2/flowControl", get(flow_control::list))
        .route("/v2/flowControl/{key}", get(flow_control::get))
        .route("/v2/flowControl/{key}/pause", post(flow_control::pause))
        .route("/v2/flowControl/{key}/resume", post(flow_control::resume))
        .route("/v2/flowControl/{key}/pin", post(flow_control::pin))
        .route("/v2/flowControl/{key}/unpin", post(flow_control::unpin))
        .route(
            "/v2/flowControl/{key}/resetRate",
            post(flow_control::reset_rate),
        )
        .route(
            "/v2/globalParallelism",
            get(flow_control::global_parallelism),
        )
        .route("/v2/events", get(logs::events))
        .route("/v2/logs", get(logs::logs))
        .route("/v2/dlq", get(dlq::list).delete(dlq::delete_many))
        .route("/v2/dlq/{id}", get(dlq::get).delete(dlq::delete_one))
        .route("/v2/dlq/retry", post(dlq::retry_many))
        .route("/v2/dlq/retry/{id}", post(dlq::retry_one))
        .route("/v2/schedules", get(schedules::list))
        .route(
            "/v2/schedules/{*rest}",
            post(schedules::post)
                .get(schedules::get)
                .delete(schedules::delete)
                .patch(schedules::patch),
        )
        // Extensions of this server, for the console (docs/ARCHITECTURE.md).
        .route("/v2/stats", get(stats::get))
        .route("/v2/cron/next", get(cron::next))
        .route("/v2/cluster", get(cluster::get))
        // Probes: outside /v2/, so no token is asked for.
        .route("/v2/openapi.json", get(openapi::document))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Upstash Workflow (issue 14).
        .route(
            "/v2/workflows/runs",
            axum::routing::delete(workflows::cancel_many),
        )
        .route(
            "/v2/workflows/runs/{id}",
            get(workflows::steps).delete(workflows::end),
        )
        .route("/v2/workflows/logs", get(workflows::logs))
        .route("/v2/workflows/events", get(workflows::logs))
        .route("/v2/wait/{event}", post(workflows::wait))
        .route("/v2/notify/{*rest}", post(workflows::notify))
        .route("/v2/waiters/{event}", get(workflows::waiters))
        .route(
            "/v2/workflows/hooks/{user}/{run}/{event}",
            any(workflows::hook),
        )
        .route(
            "/v2/workflows/dlq",
            axum::routing::delete(workflows::dlq_delete),
        )
        .route("/v2/workflows/dlq/resume", post(workflows::dlq_resume))
        .route("/v2/workflows/dlq/restart", post(workflows::dlq_restart))
        .route(
            "/v2/workflows/dlq/callback/{id}",
            post(workflows::dlq_callback),
        )
        .route("/v2/workflows/dlq/{*rest}", any(workflows::not_supported))
        .route("/v2/trigger/{*rest}", any(workflows::not_supported));
    v2.method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(from_fn_with_state(
            state.clone(),
            whole_body::read_whole_body,
        ))
        .layer(axum::middleware::from_fn(json_errors::json_errors))
        .with_state(state)
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}
