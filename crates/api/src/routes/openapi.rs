//! `GET /v2/openapi.json`: the OpenAPI 3.1 document of the routes listed
//! here, generated (utoipa) from the handlers' annotations and the very
//! structs their answers are serialized from. Served without auth.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{dlq, flow_control, health, keys, messages, publish, queues, schedules, url_groups};
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
        keys::get,
        keys::rotate,
        url_groups::list,
        url_groups::get,
        url_groups::delete,
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
        (name = "schedules", description = "Schedules (creating, pausing and resuming are not described yet)"),
        (name = "probes", description = "Health and readiness (no auth)"),
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

pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_annotated_route() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/healthz",
            "/v2/publish/{destination}",
            "/v2/batch",
            "/v2/messages/{id}",
            "/v2/queues/{name}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert!(doc["components"]["schemas"]["MessageView"].is_object());
    }
}
