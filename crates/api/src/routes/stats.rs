//! `GET /v2/stats` (an extension of this server, for the console's
//! overview): the caller's published, delivered, failed and retried counts
//! per minute over the last hour (kept in memory since `since`), and how
//! many messages wait, are delayed, retrying or in flight, and how many
//! sit in the DLQ (counted along indexes, up to a cap).

use axum::extract::State;
use axum::Json;
use qstash_store::MessageFilter;

use crate::auth::Caller;
use crate::routes::live::COUNT_CAP;
use crate::views::{CountsView, DlqCountView, ErrorBody, MinuteView, StatsView};
use crate::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/v2/stats",
    tag = "console",
    summary = "Counts per minute over the last hour and what waits now (an extension of this server)",
    responses(
        (status = 200, description = "The counts", body = StatsView),
        (status = "4XX", description = "Unauthenticated or over a limit", body = ErrorBody),
        (status = "5XX", description = "The storage is unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<StatsView>, ApiError> {
    let engine = &state.engine;
    let live = engine
        .live_counts(&user.id, MessageFilter::default(), COUNT_CAP)
        .await?;
    let dlq = engine.dlq_size(&user.id, COUNT_CAP).await?;
    let minutes = engine
        .minute_stats(&user.id)
        .iter()
        .map(|m| MinuteView {
            time: m.minute,
            published: m.published,
            delivered: m.delivered,
            failed: m.failed,
            retried: m.retried,
        })
        .collect();
    Ok(Json(StatsView {
        since: engine.stats_since(),
        minutes,
        messages: CountsView::from(&live),
        dlq: DlqCountView {
            all: dlq.min(COUNT_CAP),
            capped: dlq > COUNT_CAP,
        },
    }))
}
