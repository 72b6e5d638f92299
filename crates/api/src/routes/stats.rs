//! `GET /v2/stats` (an extension of this server, for the console's
//! overview): the caller's published, delivered, failed and retried counts
//! per minute over the last hour (kept in memory since `since`), and how
//! many messages wait, are delayed, retrying or in flight, and how many
//! sit in the DLQ (counted along indexes, up to a cap).

use axum::extract::State;
use axum::Json;
use qstash_store::MessageFilter;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::routes::live::{counts_view, COUNT_CAP};
use crate::{ApiError, AppState};

pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Value>, ApiError> {
    let engine = &state.engine;
    let live = engine
        .live_counts(&user.id, MessageFilter::default(), COUNT_CAP)
        .await?;
    let dlq = engine.dlq_size(&user.id, COUNT_CAP).await?;
    let minutes: Vec<Value> = engine
        .minute_stats(&user.id)
        .iter()
        .map(|m| {
            json!({
                "time": m.minute,
                "published": m.published,
                "delivered": m.delivered,
                "failed": m.failed,
                "retried": m.retried,
            })
        })
        .collect();
    Ok(Json(json!({
        "since": engine.stats_since(),
        "minutes": minutes,
        "messages": counts_view(&live),
        "dlq": { "all": dlq.min(COUNT_CAP), "capped": dlq > COUNT_CAP },
    })))
}
