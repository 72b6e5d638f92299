//! `GET /v2/cluster`: the nodes sharing this server's database, their last
//! heartbeat, the leader and what each has in flight. An extension of this
//! server (docs/ARCHITECTURE.md, "A cluster"); any user may read it (it
//! shows no user's data).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::views::ErrorBody;
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The node that answered.
    node: String,
    /// The node that runs the gate, the schedule timer and retention
    /// (`null` while none leads).
    leader: Option<String>,
    nodes: Vec<NodeView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    id: String,
    address: String,
    /// Unix milliseconds.
    started_at: i64,
    /// Unix milliseconds.
    last_heartbeat: i64,
    leader: bool,
    /// Deliveries it has claimed and not yet finished.
    claims: u64,
}

#[utoipa::path(
    get,
    path = "/v2/cluster",
    tag = "console",
    summary = "The nodes sharing this server's database (an extension of this server)",
    responses(
        (status = 200, description = "The nodes", body = ClusterView),
        (status = "4XX", description = "Unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(_user): Caller,
) -> Result<Json<ClusterView>, ApiError> {
    let view = state.engine.cluster_view().await?;
    Ok(Json(ClusterView {
        node: view.node,
        leader: view.leader,
        nodes: view
            .nodes
            .into_iter()
            .map(|n| NodeView {
                id: n.id,
                address: n.address,
                started_at: n.started_at,
                last_heartbeat: n.heartbeat_at,
                leader: n.leader,
                claims: n.claims,
            })
            .collect(),
    }))
}
