//! Answers of this server's own extensions, which the console reads:
//! the live message list (`GET /v2/messages`), `GET /v2/stats` and
//! `GET /v2/cron/next`.

use qstash_core::live::LiveCounts;
use serde::Serialize;
use utoipa::ToSchema;

use super::MessageView;

/// How many live messages match, by kind; counting stops at a cap.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountsView {
    /// The sum of the four kinds.
    pub all: u64,
    pub waiting: u64,
    pub delayed: u64,
    pub retrying: u64,
    pub in_flight: u64,
    /// Counting stopped at the cap: there may be more.
    pub capped: bool,
}

impl From<&LiveCounts> for CountsView {
    fn from(c: &LiveCounts) -> Self {
        Self {
            all: c.total(),
            waiting: c.waiting,
            delayed: c.delayed,
            retrying: c.retrying,
            in_flight: c.in_flight,
            capped: c.capped,
        }
    }
}

/// A live message: the Message object plus where it stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveMessageView {
    #[serde(flatten)]
    pub message: MessageView,
    /// WAITING, DELAYED, RETRYING or IN_FLIGHT.
    #[schema(value_type = String)]
    pub state: &'static str,
    /// Unix milliseconds of the next attempt.
    pub next_delivery_time: i64,
}

/// A page of `GET /v2/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LivePage {
    pub messages: Vec<LiveMessageView>,
    /// Present when more messages follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// With `withTotal=true`: how many match the filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<CountsView>,
}

/// One minute of `GET /v2/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteView {
    /// Start of the minute (unix ms).
    pub time: i64,
    pub published: u64,
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
}

/// The DLQ's size, counted up to a cap.
#[derive(Debug, Serialize, ToSchema)]
pub struct DlqCountView {
    pub all: u64,
    pub capped: bool,
}

/// `GET /v2/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    /// When this process started counting minutes (unix ms).
    pub since: i64,
    /// The last hour, oldest first.
    pub minutes: Vec<MinuteView>,
    pub messages: CountsView,
    pub dlq: DlqCountView,
}

/// One tick of a cron expression.
#[derive(Debug, Serialize, ToSchema)]
pub struct CronTick {
    /// Unix milliseconds.
    pub time: i64,
    /// Wall-clock time in the expression's time zone
    /// (`2026-01-02 03:04 UTC`).
    pub local: Option<String>,
}

/// `GET /v2/cron/next`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronNextView {
    /// The expression, normalized.
    pub cron: String,
    /// Its time zone (`CRON_TZ=`), UTC by default.
    #[schema(value_type = String)]
    pub time_zone: &'static str,
    pub next: Vec<CronTick>,
}
