//! Upstash Workflow runs and their step logs (issue 14), behind a trait of
//! their own so the message hot paths stay untouched: a run row, and an
//! ordered log of the messages published as part of the run, each written
//! in the same commit as its message.

use async_trait::async_trait;
use qstash_core::clock::Millis;
use qstash_core::message::{Inserted, NewMessage};
use qstash_core::workflow::{Run, RunFilter, RunState, StepEntry, Waiter};

use crate::Result;

/// What appending to a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored(Vec<Inserted>),
    /// No such run.
    Unknown,
    /// The run has finished, failed or been cancelled: nothing stored.
    Ended(RunState),
}

/// The step resuming the run that invoked an ending run (`context.invoke`).
#[derive(Debug, Clone)]
pub struct Resume {
    /// The invoking run.
    pub run_id: String,
    /// Its next step; the store applies that run's trigger settings.
    pub message: NewMessage,
}

/// A run one of whose steps failed for good, not ended yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub user_id: String,
    pub run_id: String,
    /// The step's error.
    pub error: String,
}

/// When `Workflows::end_run` ends a running run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndIf {
    /// Whenever it is running (the SDK's finish, a cancel).
    Running,
    /// Only if a failing note of the run (`Workflows::failing_runs`) is
    /// taken in the same commit. The note is a one-time token: whoever
    /// takes it fails the run, once; a run a DLQ resume revived meanwhile
    /// (the resume takes the run's notes) is left running.
    Noted,
}

/// What ending a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The state before this call.
    pub was: RunState,
    /// This call moved the run from running to the asked state (false:
    /// it had ended already, or `EndIf::Noted` found no note).
    pub changed: bool,
    /// Live messages of the run (sleeps, parallel branches) cancelled in
    /// this same commit, because the run is now neither running nor
    /// successful ([`cancels_leftovers`]).
    pub cancelled: u64,
}

/// Whether a run in `state` has its live messages cancelled: a finished
/// run has nothing left to deliver, a cancelled or failed one may (sleeps,
/// parallel branches), and a run left running keeps them.
pub fn cancels_leftovers(state: RunState) -> bool {
    !matches!(state, RunState::Success | RunState::Running)
}

#[async_trait]
pub trait Workflows: Send + Sync {
    /// Creates `run` with `message` (its trigger) as the first log entry,
    /// in one commit; a run id already used answers `Duplicate` with the
    /// id of that run's trigger and stores nothing.
    async fn start_run(&self, run: Run, message: NewMessage, now: Millis) -> Result<Inserted>;

    /// Stores messages of a running run and appends them to its log, in
    /// one commit, in order; nothing if the run has ended.
    async fn append_to_run(
        &self,
        user_id: &str,
        run_id: &str,
        messages: Vec<NewMessage>,
        now: Millis,
    ) -> Result<Appended>;

    async fn get_run(&self, user_id: &str, run_id: &str) -> Result<Option<Run>>;

    /// The run's log, oldest first.
    async fn run_steps(&self, user_id: &str, run_id: &str) -> Result<Vec<StepEntry>>;

    /// Moves a running run to `state` (keeping `result` or `failure`),
    /// as `when` says; takes the run's failing notes either way. None when
    /// there is no such run. If the run is ended here, `resume` (the step
    /// resuming the run that invoked it) is appended to that run in the
    /// same commit, when that run is still running: a crash can neither
    /// end the child without resuming its parent nor resume the parent
    /// twice. A run that is (now or already) cancelled or failed has its
    /// live messages cancelled in the same commit too, so no crash leaves
    /// them live for an ended run.
    #[allow(clippy::too_many_arguments)]
    async fn end_run(
        &self,
        user_id: &str,
        run_id: &str,
        when: EndIf,
        state: RunState,
        result: Option<Vec<u8>>,
        failure: Option<String>,
        resume: Option<Resume>,
        now: Millis,
    ) -> Result<Option<Ended>>;

    /// Runs matching `filter`, newest first, created before `before` if
    /// given; at most `count`. Named runs are looked up by primary key;
    /// otherwise the (user, created) index is walked from `before` within
    /// the date bounds, examining at most `budget` runs, and `next` says
    /// where a further call continues.
    async fn list_runs(
        &self,
        user_id: &str,
        filter: RunFilter,
        before: Option<(Millis, String)>,
        count: usize,
        budget: usize,
    ) -> Result<RunPage>;

    // --- Waiters (`context.waitForEvent`) ---

    /// Stores (or replaces) the run's waiter for its event, if the run is
    /// running (`Stored(vec![])`); if an event was kept for it (a
    /// run-scoped notify that came first), resumes the run with it at once
    /// instead (`Stored` with the resume message).
    async fn add_waiter(&self, waiter: Waiter) -> Result<Appended>;

    /// Takes every waiter of `event_id` (of `run_id` only, if given) and,
    /// in the same commit, stores the message resuming each running run
    /// with `event` and appends it to the run's log. Answers the waiters
    /// and their messages' ids. A run-scoped notify that finds no waiter
    /// keeps the event for the run's next wait on it (lookback).
    async fn notify(
        &self,
        user_id: &str,
        event_id: &str,
        run_id: Option<String>,
        event: Vec<u8>,
        now: Millis,
    ) -> Result<Vec<(Waiter, String)>>;

    /// Takes up to `limit` waiters whose deadline has passed and resumes
    /// their runs with a timeout, the same way; answers how many.
    async fn expire_waiters(&self, now: Millis, limit: usize) -> Result<usize>;

    async fn list_waiters(&self, user_id: &str, event_id: &str) -> Result<Vec<Waiter>>;

    /// Runs noted as failing (a `Failed` outcome with `fails_run`, noted
    /// in its commit) before `before` and not ended since, oldest first, at
    /// most `limit`. Ending a run (`end_run`) and resuming it from the DLQ
    /// (`resume_from_dlq`) take its notes.
    async fn failing_runs(&self, before: Millis, limit: usize) -> Result<Vec<Failing>>;

    /// The waiters of these runs (the `(user, run)` index, one query per
    /// couple of hundred runs), for a page of their logs.
    async fn runs_waiters(&self, user_id: &str, run_ids: &[String]) -> Result<Vec<Waiter>>;

    /// The earliest deadline of any waiter (a read of the deadline index).
    async fn next_waiter_deadline(&self) -> Result<Option<Millis>>;

    // --- The workflow DLQ ---

    /// Resumes a failed run from its DLQ entry, in one commit: the entry
    /// becomes `retry`'s message (as `Store::retry_dlq` does), which takes
    /// the failed message's place in the run's log (so the step is replayed
    /// from the same point), and the run is running again; its failing
    /// notes are taken (they were about the failure being resumed). None,
    /// changing nothing, when the entry is gone or the run is not failed
    /// (a second entry of a run resumed already). Each of `revive` (a
    /// message of the run that failing it cancelled, such as a parallel
    /// sibling of the failed branch, and its replacement) is stored and
    /// takes the cancelled one's place in the log in the same commit, so
    /// the run can finish.
    async fn resume_from_dlq(
        &self,
        user_id: &str,
        run_id: &str,
        failed_message_id: &str,
        retry: qstash_core::dlq::DlqRetry,
        revive: Vec<(String, NewMessage)>,
        now: Millis,
    ) -> Result<Option<String>>;
}

/// The JSON columns of a waiter row.
pub(crate) fn encode_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
}

/// The message resuming `waiter`'s run (`config` is the run's), or None
/// when its stored headers no longer parse (logged, the waiter dropped).
pub(crate) fn resume_message(
    waiter: &Waiter,
    event: Option<&[u8]>,
    config: &qstash_core::workflow::TriggerConfig,
    now: Millis,
) -> Option<NewMessage> {
    match waiter.resume(event, config, now) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(run = %waiter.run_id, error = %e, "cannot resume a workflow waiter");
            None
        }
    }
}

/// Runs a walk examines at most per call (see `Workflows::list_runs`).
pub const RUN_SCAN_BUDGET: usize = 5_000;

/// Rows one query of a run walk fetches.
pub(crate) const RUN_SCAN_CHUNK: usize = 500;

/// A page of runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Where the next page starts (created_at, run_id) when more runs may
    /// match: after the last run when the page is full, or after the last
    /// run examined when the budget ran out first.
    pub next: Option<(Millis, String)>,
}

/// A walk of runs newest first in chunks: each backend fetches chunks of
/// rows after `from()` (index-served bounds only) and feeds them here.
pub(crate) struct RunWalk<'f> {
    filter: &'f RunFilter,
    count: usize,
    budget: usize,
    examined: usize,
    page: RunPage,
    /// The last row examined: the next chunk starts after it.
    last: (Millis, String),
    done: bool,
}

impl<'f> RunWalk<'f> {
    pub fn new(
        filter: &'f RunFilter,
        before: Option<(Millis, String)>,
        count: usize,
        budget: usize,
    ) -> Self {
        Self {
            filter,
            count,
            budget: budget.max(1),
            examined: 0,
            page: RunPage::default(),
            last: before.unwrap_or((Millis::MAX, "\u{10ffff}".to_string())),
            done: count == 0,
        }
    }

    /// The (created_at, run_id) the next chunk starts strictly after.
    pub fn from(&self) -> (Millis, String) {
        self.last.clone()
    }

    /// How many rows the next chunk asks for; 0 once the walk is over.
    pub fn want(&self) -> usize {
        if self.done {
            0
        } else {
            RUN_SCAN_CHUNK.min(self.budget - self.examined)
        }
    }

    /// Takes one chunk (newest first, at most `want()` rows).
    pub fn feed(&mut self, rows: Vec<Run>) {
        let asked = self.want();
        let got = rows.len();
        for run in rows {
            self.examined += 1;
            self.last = (run.created_at, run.run_id.clone());
            if self.filter.matches(&run) {
                self.page.runs.push(run);
                if self.page.runs.len() == self.count {
                    self.page.next = Some(self.last.clone());
                    self.done = true;
                    return;
                }
            }
        }
        if got < asked {
            self.done = true;
        } else if self.examined >= self.budget {
            self.page.next = Some(self.last.clone());
            self.done = true;
        }
    }

    pub fn finish(self) -> RunPage {
        self.page
    }
}

/// Runs looked up by id as a page: those matching the rest of `filter`,
/// created before the cursor `before`, newest first, at most `count`.
pub(crate) fn by_id_page(
    mut runs: Vec<Run>,
    filter: &RunFilter,
    before: (Millis, &str),
    count: usize,
) -> RunPage {
    runs.retain(|r| filter.matches(r) && (r.created_at, r.run_id.as_str()) < before);
    runs.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
    runs.dedup_by(|a, b| a.run_id == b.run_id);
    runs.truncate(count);
    RunPage { runs, next: None }
}

/// The JSON columns of a run row.
pub(crate) fn encode_config(run: &Run) -> Result<String> {
    serde_json::to_string(&run.config).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode_config(s: &str) -> Result<qstash_core::workflow::TriggerConfig> {
    serde_json::from_str(s).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode_state(s: &str) -> Result<RunState> {
    RunState::parse(s).ok_or_else(|| crate::StoreError::Corrupt(format!("run state {s:?}")))
}

/// The call type a message is logged with.
pub(crate) fn call_type(m: &NewMessage) -> String {
    m.message
        .spec
        .workflow
        .as_ref()
        .map(|t| t.call_type().to_string())
        .unwrap_or_else(|| qstash_core::workflow::STEP.to_string())
}
