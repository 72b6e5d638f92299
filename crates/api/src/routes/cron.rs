//! `GET /v2/cron?cron=<expr>&count=5` (an extension of this server, for
//! the console): the next ticks of an `Upstash-Cron` expression, as unix
//! ms and as wall-clock time in the expression's own time zone. The
//! console shows a schedule's next fires with it and previews the create
//! form, so cron is only ever computed by the server.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use qstash_core::schedule::CronExpr;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::query::Query;
use crate::routes::logs::count;
use crate::{ApiError, AppState};

const MAX_COUNT: usize = 20;

pub async fn next(
    State(state): State<AppState>,
    _caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = Query::parse(uri.query());
    let raw = q
        .get("cron")
        .ok_or_else(|| ApiError::BadRequest("cron is required: ?cron=<expression>".into()))?;
    let cron = CronExpr::parse(raw).map_err(ApiError::bad)?;
    let count = count(&q, 5, MAX_COUNT)?;
    let ticks: Vec<Value> = cron
        .upcoming(state.engine.now(), count)
        .into_iter()
        .map(|t| json!({ "time": t, "local": cron.local_time(t) }))
        .collect();
    Ok(Json(json!({
        "cron": cron.as_str(),
        "timeZone": cron.zone_name(),
        "next": ticks,
    })))
}
