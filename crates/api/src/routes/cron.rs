//! `GET /v2/cron?cron=<expr>&count=5` (an extension of this server, for
//! the console): the next ticks of an `Upstash-Cron` expression, as unix
//! ms and as wall-clock time in the expression's own time zone. The
//! console shows a schedule's next fires with it and previews the create
//! form, so cron is only ever computed by the server.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use qstash_core::schedule::CronExpr;

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::logs::count;
use crate::views::{CronNextView, CronTick, ErrorBody};
use crate::{ApiError, AppState};

const MAX_COUNT: usize = 20;

#[utoipa::path(
    get,
    path = "/v2/cron/next",
    tag = "console",
    summary = "The next ticks of a cron expression (an extension of this server)",
    params(("cron" = String, Query, description = "An `Upstash-Cron` expression (`CRON_TZ=` allowed)"),
        ("count" = Option<u32>, Query, description = "How many ticks (default 5, at most 20)")),
    responses(
        (status = 200, description = "The next ticks", body = CronNextView),
        (status = "4XX", description = "The expression is missing or wrong, or the request is unauthenticated", body = ErrorBody),
    )
)]
pub async fn next(
    State(state): State<AppState>,
    _caller: Caller,
    uri: Uri,
) -> Result<Json<CronNextView>, ApiError> {
    let q = Query::parse(uri.query());
    let raw = q
        .get("cron")
        .ok_or_else(|| ApiError::BadRequest("cron is required: ?cron=<expression>".into()))?;
    let cron = CronExpr::parse(raw).map_err(ApiError::bad)?;
    let count = count(&q, 5, MAX_COUNT)?;
    let next = cron
        .upcoming(state.engine.now(), count)
        .into_iter()
        .map(|t| CronTick {
            time: t,
            local: cron.local_time(t),
        })
        .collect();
    Ok(Json(CronNextView {
        cron: cron.as_str().to_string(),
        time_zone: cron.zone_name(),
        next,
    }))
}
