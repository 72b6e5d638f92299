//! Probes for orchestrators (Kubernetes, load balancers), without auth:
//! `GET /healthz` says the process answers; `GET /readyz` says whether it
//! can take work now, and if not, what failed.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// How long the storage has to commit the probe's write.
const WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// What failed, when unready (`check: reason; ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub checks: BTreeMap<&'static str, CheckView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub ok: bool,
    /// Milliseconds the probe took.
    pub ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    summary = "The process answers",
    security(()),
    responses(
        (status = 200, description = "Alive", body = Health),
    )
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    summary = "Whether this node can take work now",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: `error` says what failed", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let checks = state.engine.readiness(WITHIN).await;
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.name)))
        .collect();
    let view = Readiness {
        status: if failed.is_empty() {
            "ready"
        } else {
            "unready"
        },
        error: (!failed.is_empty()).then(|| failed.join("; ")),
        checks: checks
            .into_iter()
            .map(|c| {
                let view = CheckView {
                    ok: c.error.is_none(),
                    ms: c.took.as_millis() as u64,
                    error: c.error,
                };
                (c.name, view)
            })
            .collect(),
    };
    if failed.is_empty() {
        (StatusCode::OK, Json(view))
    } else {
        tracing::warn!(error = view.error.as_deref(), "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, Json(view))
    }
}
