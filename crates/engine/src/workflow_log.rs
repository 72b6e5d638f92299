//! What `client.logs` shows of a page of runs (`qstash_core::workflow_log`):
//! their logs, the message log entries of their messages (errors, retries,
//! what is still under way) and their waiters. Reads are batched per page,
//! not per run: one log read per couple of hundred message ids, one waiter
//! read per couple of hundred runs, one DLQ read for the failed runs.

use std::collections::HashMap;

use qstash_core::dlq::{DlqFilter, DlqOrder, DlqQuery};
use qstash_core::log::{LogEntry, LogFilter};
use qstash_core::message::LogState;
use qstash_core::workflow::{Run, RunState, Waiter};
use qstash_store::StoreError;
use serde_json::Value;

use crate::Engine;

/// Message ids one log (or DLQ) query names.
const IDS_PER_QUERY: usize = 200;
/// Log entries one page of such a query holds.
const ENTRIES_PER_PAGE: usize = 1000;

impl Engine {
    /// A page of runs as `client.logs` reads them, in order. A finished
    /// run needs only its log; any other also needs its messages' log
    /// entries (by the message id index), a running one its waiters (by
    /// the run index), a failed one the DLQ entry of its failed step.
    pub async fn workflow_run_logs(
        &self,
        user_id: &str,
        runs: &[Run],
    ) -> Result<Vec<Value>, StoreError> {
        let w = self.store.workflows();
        let mut steps = Vec::with_capacity(runs.len());
        for run in runs {
            steps.push(w.run_steps(user_id, &run.run_id).await?);
        }
        let ids: Vec<String> = runs
            .iter()
            .zip(&steps)
            .filter(|(run, _)| run.state != RunState::Success)
            .flat_map(|(_, s)| s.iter().map(|e| e.message_id.clone()))
            .collect();
        let mut events = self.message_events(user_id, &ids).await?;
        let mut waiters = self.page_waiters(user_id, runs).await?;
        let mut out = Vec::with_capacity(runs.len());
        let mut failed = Vec::new();
        for (run, steps) in runs.iter().zip(&steps) {
            let mine: Vec<LogEntry> = steps
                .iter()
                .filter_map(|s| events.remove(&s.message_id))
                .flatten()
                .collect();
            let waiting = waiters.remove(&run.run_id).unwrap_or_default();
            out.push(qstash_core::workflow_log::run_log(
                run, steps, &mine, &waiting,
            ));
            if run.state == RunState::Failed {
                failed.push((out.len() - 1, failed_ids(&mine)));
            }
        }
        self.add_dlq_ids(user_id, &mut out, failed).await?;
        Ok(out)
    }

    /// The log entries of `ids`, by message id.
    pub(crate) async fn message_events(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<LogEntry>>, StoreError> {
        let mut out: HashMap<String, Vec<LogEntry>> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let filter = LogFilter {
                message_ids: chunk.to_vec(),
                ..Default::default()
            };
            let mut cursor = None;
            loop {
                let page = self
                    .store
                    .list_logs(user_id, filter.clone(), cursor, ENTRIES_PER_PAGE)
                    .await?;
                for e in page.entries {
                    out.entry(e.message.id.clone()).or_default().push(e);
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// The waiters of the page's running runs, by run id.
    async fn page_waiters(
        &self,
        user_id: &str,
        runs: &[Run],
    ) -> Result<HashMap<String, Vec<Waiter>>, StoreError> {
        let running: Vec<String> = runs
            .iter()
            .filter(|r| r.state == RunState::Running)
            .map(|r| r.run_id.clone())
            .collect();
        let mut out: HashMap<String, Vec<Waiter>> = HashMap::new();
        if running.is_empty() {
            return Ok(out);
        }
        let w = self.store.workflows();
        for waiter in w.runs_waiters(user_id, &running).await? {
            out.entry(waiter.run_id.clone()).or_default().push(waiter);
        }
        Ok(out)
    }

    /// Gives each failed run (`(index in logs, its failed messages)`) the
    /// `dlqId` of its failed step (what `client.dlq.resume` takes): the
    /// newest DLQ entry of its failed messages, found by the DLQ's message
    /// id index.
    async fn add_dlq_ids(
        &self,
        user_id: &str,
        logs: &mut [Value],
        failed: Vec<(usize, Vec<String>)>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = failed.iter().flat_map(|(_, m)| m.clone()).collect();
        // Message id -> (entry time, DLQ id): the newest entry of each.
        let mut newest: HashMap<String, (i64, String)> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let query = DlqQuery {
                filter: DlqFilter {
                    message_id: chunk.to_vec(),
                    ..Default::default()
                },
                count: chunk.len(),
                order: DlqOrder::LatestFirst,
                ..Default::default()
            };
            for e in self.store.list_dlq(user_id, query).await?.entries {
                let seen = newest.entry(e.message.id.clone());
                seen.or_insert((e.created_at, e.dlq_id));
            }
        }
        for (i, messages) in failed {
            let entry = messages
                .iter()
                .filter_map(|m| newest.get(m))
                .max_by_key(|(at, _)| *at);
            if let Some((_, dlq_id)) = entry {
                logs[i]["dlqId"] = Value::String(dlq_id.clone());
            }
        }
        Ok(())
    }
}

/// The ids of a run's messages that failed for good.
fn failed_ids(events: &[LogEntry]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| e.state == LogState::Failed)
        .map(|e| e.message.id.clone())
        .collect();
    ids.dedup();
    ids
}
