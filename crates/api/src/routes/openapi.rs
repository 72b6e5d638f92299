//! `GET /v2/openapi.json`: the OpenAPI 3.1 document of every route,
//! generated (utoipa) from the handlers' annotations and the very structs
//! their answers are serialized from. Served without auth. A test checks
//! it against the route table (`super::ROUTES`), both ways.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    cluster, cron, dlq, flow_control, health, keys, live, logs, messages, publish, queues,
    schedules, stats, url_groups, workflows,
};
use crate::views;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "qstash-server",
        description = "A self-hosted server for the QStash REST API v2. Every error answer is {\"error\": \"...\"}."
    ),
    paths(
        health::healthz,
        health::readyz,
        document,
        publish::publish,
        publish::batch,
        queues::enqueue,
        queues::upsert,
        queues::list,
        queues::get,
        queues::delete,
        queues::pause,
        queues::resume,
        messages::get,
        messages::cancel_one,
        messages::cancel_many,
        live::list,
        keys::get,
        keys::rotate,
        url_groups::list,
        url_groups::get,
        url_groups::delete,
        url_groups::patch,
        url_groups::upsert_endpoints,
        url_groups::remove_endpoints,
        flow_control::list,
        flow_control::get,
        flow_control::pause,
        flow_control::resume,
        flow_control::reset_rate,
        flow_control::pin,
        flow_control::unpin,
        flow_control::global_parallelism,
        dlq::list,
        dlq::get,
        dlq::delete_one,
        dlq::delete_many,
        dlq::retry_one,
        dlq::retry_many,
        schedules::list,
        schedules::get,
        schedules::delete,
        schedules::create,
        schedules::pause,
        schedules::resume,
        logs::events,
        logs::logs,
        stats::get,
        cron::next,
        cluster::get,
        workflows::steps,
        workflows::end,
        workflows::cancel_many,
        workflows::logs,
        workflows::events,
        workflows::wait,
        workflows::notify_all,
        workflows::notify_run,
        workflows::waiters,
        workflows::hook,
        workflows::dlq_delete,
        workflows::dlq_resume,
        workflows::dlq_restart,
        workflows::dlq_callback,
        workflows::dlq_not_supported,
        workflows::trigger_not_supported,
    ),
    components(schemas(views::ErrorBody)),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags(
        (name = "messages", description = "Publish, read and cancel messages"),
        (name = "queues", description = "Queues and enqueue"),
        (name = "keys", description = "Signing keys"),
        (name = "url groups", description = "URL groups (topics) and their endpoints"),
        (name = "flow control", description = "Flow-control keys and global parallelism"),
        (name = "dlq", description = "The dead-letter queue"),
        (name = "schedules", description = "Schedules"),
        (name = "logs", description = "The log of every message's state changes"),
        (name = "workflow", description = "Upstash Workflow: runs, their logs, waits, notifies, webhooks and the workflow DLQ actions"),
        (name = "console", description = "Extensions of this server the web console reads"),
        (name = "probes", description = "Health, readiness and this document (no auth)"),
    )
)]
struct ApiDoc;

/// `Authorization: Bearer <QSTASH_TOKEN>`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
});

#[utoipa::path(
    get,
    path = "/v2/openapi.json",
    tag = "probes",
    summary = "This document",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value, content_type = "application/json"),
    )
)]
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> serde_json::Value {
        serde_json::from_str(&DOCUMENT).unwrap()
    }

    /// Every (path, method) the document describes.
    fn operations(doc: &serde_json::Value) -> Vec<(String, &'static str)> {
        let paths = doc["paths"].as_object().expect("paths");
        let mut out = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if item.get(method).is_some() {
                    out.push((path.clone(), method));
                }
            }
        }
        out
    }

    fn segments(path: &str) -> Vec<&str> {
        path.trim_start_matches('/').split('/').collect()
    }

    fn is_param(segment: &str) -> bool {
        segment.starts_with('{')
    }

    /// How axum ranks a route segment: a literal beats a parameter, which
    /// beats a catch-all.
    fn rank(segment: &str) -> u8 {
        match segment {
            s if s.starts_with("{*") => 2,
            s if is_param(s) => 1,
            _ => 0,
        }
    }

    /// Whether the axum `route` serves the document's `path`: literals
    /// equal, a parameter for a parameter, a catch-all for one or more
    /// segments of anything.
    fn serves(route: &str, path: &str) -> bool {
        let (r, p) = (segments(route), segments(path));
        for (i, seg) in r.iter().enumerate() {
            if seg.starts_with("{*") {
                return p.len() > i && p[i..].iter().all(|s| !s.is_empty());
            }
            let Some(other) = p.get(i) else {
                return false;
            };
            if is_param(seg) != is_param(other) || (!is_param(seg) && seg != other) {
                return false;
            }
        }
        r.len() == p.len()
    }

    /// The route axum picks for the document's `path`: the most specific
    /// one that serves it.
    fn route_of(path: &str) -> Option<&'static (&'static str, &'static [&'static str])> {
        let key = |r: &&(&str, &[&str])| segments(r.0).into_iter().map(rank).collect::<Vec<_>>();
        crate::routes::ROUTES
            .iter()
            .filter(|(route, _)| serves(route, path))
            .min_by_key(key)
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(doc["components"]["schemas"]["MessageView"].is_object());
        assert!(doc["components"]["schemas"]["LogEntryView"].is_object());
    }

    /// Each operation of the document is one the router serves (no 404 or
    /// 405 described as a success).
    #[test]
    fn every_documented_operation_is_routed() {
        for (path, method) in operations(&document()) {
            let (route, methods) = route_of(&path)
                .unwrap_or_else(|| panic!("{method} {path} is documented but not routed"));
            assert!(
                methods.contains(&method) || methods.contains(&"any"),
                "{method} {path} is documented but {route} takes only {methods:?}"
            );
        }
    }

    /// Each method of each route is described by at least one operation
    /// of the document (a route that takes any method by at least one).
    #[test]
    fn every_route_is_documented() {
        let ops = operations(&document());
        let mut missing = Vec::new();
        for (route, methods) in crate::routes::ROUTES {
            let described: Vec<&str> = ops
                .iter()
                .filter(|(path, _)| route_of(path).is_some_and(|(r, _)| r == route))
                .map(|(_, m)| *m)
                .collect();
            for method in *methods {
                let ok = match *method {
                    "any" => !described.is_empty(),
                    m => described.contains(&m),
                };
                if !ok {
                    missing.push(format!("{method} {route}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from the document: {missing:?}"
        );
    }

    #[test]
    fn the_route_matcher_follows_axum() {
        assert!(serves(
            "/v2/publish/{*destination}",
            "/v2/publish/{destination}"
        ));
        assert!(serves(
            "/v2/schedules/{*rest}",
            "/v2/schedules/{scheduleId}/pause"
        ));
        assert!(!serves("/v2/dlq/{id}", "/v2/dlq/retry"));
        assert!(!serves("/v2/queues/{name}", "/v2/queues/{name}/pause"));
        assert_eq!(route_of("/v2/dlq/retry").unwrap().0, "/v2/dlq/retry");
        assert_eq!(
            route_of("/v2/workflows/dlq/resume").unwrap().0,
            "/v2/workflows/dlq/resume"
        );
        assert_eq!(
            route_of("/v2/workflows/dlq/{action}").unwrap().0,
            "/v2/workflows/dlq/{*rest}"
        );
    }
}
