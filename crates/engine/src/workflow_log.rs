//! What `client.logs` shows of a run (`qstash_core::workflow_log`): its
//! log, the message log entries of its messages (errors, retries, what is
//! still under way) and its waiters, each read by index.

use qstash_core::dlq::{DlqFilter, DlqOrder, DlqQuery};
use qstash_core::log::{LogEntry, LogFilter};
use qstash_core::message::LogState;
use qstash_core::workflow::{Run, RunState, StepEntry};
use qstash_store::StoreError;
use serde_json::Value;

use crate::Engine;

/// Message ids one log query names.
const IDS_PER_QUERY: usize = 200;
/// Log entries one page of such a query holds.
const ENTRIES_PER_PAGE: usize = 1000;
/// Pages read per query at most: a run's messages have a few entries
/// each (created, active, one error and retry per failed attempt).
const MAX_PAGES: usize = 20;

impl Engine {
    /// One run as `client.logs` reads it. A finished run needs only its
    /// log; any other also reads its messages' log entries (by the message
    /// id index) and its waiters (by the run index).
    pub async fn workflow_run_log(&self, run: &Run) -> Result<Value, StoreError> {
        let w = self.store.workflows();
        let steps = w.run_steps(&run.user_id, &run.run_id).await?;
        let (events, waiters) = match run.state {
            RunState::Success => (Vec::new(), Vec::new()),
            RunState::Running => (
                self.run_events(&run.user_id, &steps).await?,
                w.run_waiters(&run.user_id, &run.run_id).await?,
            ),
            _ => (self.run_events(&run.user_id, &steps).await?, Vec::new()),
        };
        let mut log = qstash_core::workflow_log::run_log(run, &steps, &events, &waiters);
        if run.state == RunState::Failed {
            if let Some(dlq_id) = self.failed_step_dlq_id(&run.user_id, &events).await? {
                log["dlqId"] = Value::String(dlq_id);
            }
        }
        Ok(log)
    }

    /// The DLQ entry of a failed run's failed step (the SDK's `dlqId`, what
    /// `client.dlq.resume` takes), found by the message id of the step.
    async fn failed_step_dlq_id(
        &self,
        user_id: &str,
        events: &[LogEntry],
    ) -> Result<Option<String>, StoreError> {
        let failed: Vec<String> = events
            .iter()
            .filter(|e| e.state == LogState::Failed)
            .map(|e| e.message.id.clone())
            .collect();
        if failed.is_empty() {
            return Ok(None);
        }
        let query = DlqQuery {
            filter: DlqFilter {
                message_id: failed,
                ..Default::default()
            },
            count: 1,
            order: DlqOrder::LatestFirst,
            ..Default::default()
        };
        let page = self.store.list_dlq(user_id, query).await?;
        Ok(page.entries.into_iter().next().map(|e| e.dlq_id))
    }

    async fn run_events(
        &self,
        user_id: &str,
        steps: &[StepEntry],
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut events = Vec::new();
        for chunk in steps.chunks(IDS_PER_QUERY) {
            let filter = LogFilter {
                message_ids: chunk.iter().map(|s| s.message_id.clone()).collect(),
                ..Default::default()
            };
            let mut cursor = None;
            for _ in 0..MAX_PAGES {
                let page = self
                    .store
                    .list_logs(user_id, filter.clone(), cursor, ENTRIES_PER_PAGE)
                    .await?;
                events.extend(page.entries);
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        Ok(events)
    }
}
