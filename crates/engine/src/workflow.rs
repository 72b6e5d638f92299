//! Upstash Workflow runs (issue 14): publishes that start or extend a run,
//! the body and headers of a workflow delivery, and what a failed step
//! does to its run. The store keeps runs and logs (`Store::workflows`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use qstash_core::dlq::DlqEntry;
use qstash_core::headers::insert;
use qstash_core::message::{Inserted, NewMessage};
use qstash_core::outcome::OutcomeKind;
use qstash_core::workflow::{
    logged, patch_failure_callback, steps_json, InvokeRequest, Invoker, Run, RunFilter, RunState,
    StepEntry, TriggerConfig, Waiter, WorkflowTag,
};
use qstash_core::Message;
use qstash_store::{Appended, EndIf, StoreError};

use crate::Engine;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("workflow run {0} does not exist")]
    UnknownRun(String),
    /// A step of a run that has ended: the SDK stops quietly on this 400.
    #[error("workflow run {0} is not running: it is {1}")]
    Ended(String, &'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a workflow delivery needs besides the message: its run.
pub(crate) struct Delivery<'m> {
    pub message: Cow<'m, Message>,
    pub run: Option<Run>,
}

fn tag(m: &Message) -> Option<&WorkflowTag> {
    m.spec.workflow.as_ref()
}

/// How a published message takes part in a workflow.
enum Part {
    Plain,
    Trigger,
    Step(String),
}

fn part(m: &NewMessage) -> Part {
    match tag(&m.message) {
        Some(t) if t.init && t.is_step() => Part::Trigger,
        Some(t) if t.is_published_part() => Part::Step(t.run_id.clone()),
        _ => Part::Plain,
    }
}

impl Engine {
    /// Commits published messages: workflow triggers start runs, workflow
    /// steps are appended to their runs (refused if the run has ended),
    /// anything else goes through [`Engine::submit`]. Answers in order.
    pub async fn submit_published(
        self: &Arc<Self>,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Inserted>, WorkflowError> {
        if messages.iter().all(|m| matches!(part(m), Part::Plain)) {
            return Ok(self.submit(messages).await?);
        }
        let now = self.now();
        let mut answers: Vec<Option<Inserted>> = vec![None; messages.len()];
        let mut plain = Vec::new();
        let mut triggers = Vec::new();
        let mut steps: Vec<(String, Vec<(usize, NewMessage)>)> = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
            match part(&m) {
                Part::Plain => plain.push((i, m)),
                Part::Trigger => triggers.push((i, m)),
                Part::Step(run_id) => match steps.iter_mut().find(|(r, _)| *r == run_id) {
                    Some((_, list)) => list.push((i, m)),
                    None => steps.push((run_id, vec![(i, m)])),
                },
            }
        }
        // Every run must exist and be running before anything is stored.
        let mut runs = HashMap::new();
        for (run_id, list) in &steps {
            let user = &list[0].1.message.user_id;
            let run = self.running(user, run_id).await?;
            runs.insert(run_id.clone(), run);
        }
        for (i, m) in triggers {
            answers[i] = Some(self.start_run(m, now).await?);
        }
        for (run_id, list) in steps {
            let run = &runs[&run_id];
            let (index, mut batch): (Vec<usize>, Vec<NewMessage>) = list.into_iter().unzip();
            for m in &mut batch {
                if tag(&m.message).is_some_and(WorkflowTag::is_step) {
                    run.config.apply(&mut m.message.spec);
                }
            }
            let stored = self
                .store
                .workflows()
                .append_to_run(&run.user_id, &run_id, batch, now)
                .await?;
            let inserted = match stored {
                Appended::Stored(inserted) => inserted,
                Appended::Unknown => return Err(WorkflowError::UnknownRun(run_id)),
                Appended::Ended(state) => return Err(WorkflowError::Ended(run_id, state.as_str())),
            };
            self.count_published(&run.user_id, &inserted);
            for (i, ins) in index.into_iter().zip(inserted) {
                answers[i] = Some(ins);
            }
        }
        if !plain.is_empty() {
            let (index, batch): (Vec<usize>, Vec<NewMessage>) = plain.into_iter().unzip();
            for (i, ins) in index.into_iter().zip(self.submit(batch).await?) {
                answers[i] = Some(ins);
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.expect("every message answered"))
            .collect())
    }

    async fn running(&self, user_id: &str, run_id: &str) -> Result<Run, WorkflowError> {
        match self.store.workflows().get_run(user_id, run_id).await? {
            None => Err(WorkflowError::UnknownRun(run_id.to_string())),
            Some(run) if run.state != RunState::Running => {
                Err(WorkflowError::Ended(run_id.to_string(), run.state.as_str()))
            }
            Some(run) => Ok(run),
        }
    }

    async fn start_run(&self, mut m: NewMessage, now: i64) -> Result<Inserted, WorkflowError> {
        // A child run of `context.invoke`: its payload is the request's
        // `body`; the rest says which run to resume when it ends.
        let mut invoker = None;
        if tag(&m.message).is_some_and(|t| t.invoke) {
            let request = InvokeRequest::parse(&m.message.body).map_err(WorkflowError::Invalid)?;
            m.message.body = request.body.unwrap_or_default().into_bytes().into();
            invoker = Some(request.invoker);
        }
        let spec = &m.message.spec;
        let t = tag(&m.message).expect("a trigger has a workflow tag");
        let run = Run {
            user_id: m.message.user_id.clone(),
            run_id: t.run_id.clone(),
            url: t.url.clone().unwrap_or_else(|| spec.url.clone()),
            label: spec.labels.first().cloned(),
            state: RunState::Running,
            created_at: now,
            updated_at: now,
            initial_body: m.message.body.to_vec(),
            config: TriggerConfig {
                invoker,
                ..TriggerConfig::of_trigger(spec, t)
            },
            result: None,
            failure: None,
        };
        let user = run.user_id.clone();
        let inserted = self.store.workflows().start_run(run, m, now).await?;
        self.count_published(&user, std::slice::from_ref(&inserted));
        Ok(inserted)
    }

    fn count_published(&self, user: &str, inserted: &[Inserted]) {
        let new = inserted.iter().filter(|i| matches!(i, Inserted::New(_)));
        self.stats.add(
            user,
            self.now(),
            crate::stats::Event::Published,
            new.count() as u64,
        );
    }

    /// The run's log for the SDK's lazy fetch; None when there is no such
    /// run or it has ended (the SDK reads a 404 as "the run is over").
    pub async fn running_steps(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> Result<Option<Vec<StepEntry>>, StoreError> {
        let w = self.store.workflows();
        match w.get_run(user_id, run_id).await? {
            Some(run) if run.state == RunState::Running => {
                Ok(Some(w.run_steps(user_id, run_id).await?))
            }
            _ => Ok(None),
        }
    }

    pub async fn workflow_run(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> Result<Option<Run>, StoreError> {
        self.store.workflows().get_run(user_id, run_id).await
    }

    pub async fn workflow_steps(
        &self,
        user_id: &str,
        run_id: &str,
    ) -> Result<Vec<StepEntry>, StoreError> {
        self.store.workflows().run_steps(user_id, run_id).await
    }

    pub async fn workflow_runs(
        &self,
        user_id: &str,
        filter: RunFilter,
        before: Option<(i64, String)>,
        count: usize,
    ) -> Result<qstash_store::RunPage, StoreError> {
        self.store
            .workflows()
            .list_runs(
                user_id,
                filter,
                before,
                count,
                qstash_store::RUN_SCAN_BUDGET,
            )
            .await
    }

    /// Ends a run: finished with `result` (the SDK's last `DELETE`) or
    /// cancelled, whose live messages are then cancelled. None when there
    /// is no such run; ending an ended run changes nothing.
    ///
    /// Crash analysis: the child's end and its invoking run's resume are
    /// one store commit (`Workflows::end_run` with a `Resume`), so a crash
    /// leaves either both or neither; a retried `DELETE` after "neither"
    /// does both, after "both" finds the run ended and resumes nothing.
    /// Store errors propagate (the route answers 5xx, the SDK retries).
    /// The leftover messages of a run ended other than successfully are
    /// cancelled in that same commit (and again by every later call, which
    /// finds none); here they are only counted and the gate woken.
    /// `when` is `EndIf::Noted` for a failure: see `fail_noted_run`.
    pub async fn end_run(
        &self,
        user_id: &str,
        run_id: &str,
        when: EndIf,
        state: RunState,
        result: Option<Vec<u8>>,
        failure: Option<String>,
    ) -> Result<Option<RunState>, StoreError> {
        let run = match self.store.workflows().get_run(user_id, run_id).await? {
            Some(run) => run,
            None => return Ok(None),
        };
        let outcome = result
            .clone()
            .or_else(|| failure.clone().map(String::into_bytes));
        let resume = match (&run.state, &run.config.invoker) {
            (RunState::Running, Some(invoker)) => {
                self.invoker_resume(user_id, invoker, state, outcome.as_deref())
            }
            _ => None,
        };
        let Some(ended) = self
            .store
            .workflows()
            .end_run(
                user_id,
                run_id,
                when,
                state,
                result,
                failure,
                resume,
                self.now(),
            )
            .await?
        else {
            return Ok(None);
        };
        // A cancelled or failed run's live messages (sleeps, parallel
        // branches) were cancelled in the same commit; one of them may have
        // held a queue's head.
        if ended.cancelled > 0 {
            crate::meter::deliveries("cancelled", user_id, ended.cancelled);
            self.gate.user_changed(user_id);
        }
        Ok(Some(ended.was))
    }

    /// The message as the workflow endpoint must receive it: a step
    /// carries its run's log up to itself as its body (empty once the run
    /// has ended, which the SDK reads as "stop"); every workflow message
    /// carries the run id and creation time.
    pub(crate) async fn workflow_delivery<'m>(&self, m: &'m Message) -> Delivery<'m> {
        let Some(t) = tag(m).filter(|t| !t.is_call()) else {
            return Delivery {
                message: Cow::Borrowed(m),
                run: None,
            };
        };
        let w = self.store.workflows();
        let run = match w.get_run(&m.user_id, &t.run_id).await {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(id = %m.id, error = %e, "cannot read the message's workflow run");
                None
            }
        };
        let mut sent = m.clone();
        let h = &mut sent.spec.header;
        insert(h, "Upstash-Workflow-RunId", &t.run_id);
        if let Some(run) = &run {
            insert(h, "Upstash-Workflow-CreatedAt", &run.created_at.to_string());
            if let Some(label) = &run.label {
                insert(h, "Upstash-Label", label);
            }
        }
        if t.is_step() && m.spec.callback_of.is_none() {
            sent.body = match &run {
                Some(run) if run.state == RunState::Running => {
                    let steps = w.run_steps(&m.user_id, &t.run_id).await.unwrap_or_default();
                    if logged(&steps, &m.id) {
                        steps_json(&steps, Some(&m.id))
                            .to_string()
                            .into_bytes()
                            .into()
                    } else {
                        bytes::Bytes::new()
                    }
                }
                _ => bytes::Bytes::new(),
            };
        }
        Delivery {
            message: Cow::Owned(sent),
            run,
        }
    }

    /// Adjusts the callbacks of an attempt of a workflow message: a
    /// `context.call` reports once (on its last attempt), and the failure
    /// callback of a step names its run and carries the run's payload.
    pub(crate) fn workflow_callbacks(
        &self,
        m: &Message,
        run: Option<&Run>,
        kind: &OutcomeKind,
        callbacks: &mut Vec<NewMessage>,
    ) {
        let Some(t) = tag(m) else { return };
        if t.is_call() && matches!(kind, OutcomeKind::Retry { .. }) {
            callbacks.retain(|c| {
                c.message.spec.url.as_str() != m.spec.callback.as_deref().unwrap_or("")
            });
        }
        let Some(run) = run else { return };
        if !matches!(kind, OutcomeKind::Failed { .. }) || !t.is_step() {
            return;
        }
        for c in callbacks.iter_mut() {
            if let Some(body) = patch_failure_callback(&c.message.body, run) {
                c.message.body = body.into();
            }
        }
    }

    /// A step whose retries ran out fails its run. The outcome's commit
    /// noted the run as failing (`fails_run`); the run is failed only by
    /// taking that note (`EndIf::Noted`), so whichever of this, the
    /// leader's housekeeping (`repair_failing_runs`, for what a crash or an
    /// error left noted) and a DLQ action comes first fails it, once, and a
    /// DLQ resume landing between the outcome's commit and this is not
    /// undone. Called only when the outcome committed.
    pub(crate) async fn workflow_outcome(&self, m: &Message, kind: &OutcomeKind) {
        let OutcomeKind::Failed { error } = kind else {
            return;
        };
        let Some(run_id) = fails_run(m, kind) else {
            return;
        };
        if let Err(e) = self.fail_noted_run(&m.user_id, &run_id, error).await {
            tracing::warn!(run = %run_id, error = %e, "cannot mark the workflow run failed; housekeeping will");
        }
    }

    /// Fails a running run if it has a failing note, taking the note in
    /// the same commit; a run without one is left as it is.
    async fn fail_noted_run(
        &self,
        user_id: &str,
        run_id: &str,
        error: &str,
    ) -> Result<Option<RunState>, StoreError> {
        let failure = Some(error.to_string());
        self.end_run(
            user_id,
            run_id,
            EndIf::Noted,
            RunState::Failed,
            None,
            failure,
        )
        .await
    }

    /// Fails the runs a failed step was noted for but that are not ended
    /// yet: a crash (or a store error) came between the step's DLQ commit
    /// and the run's end. Noted rows older than a few seconds only, so a
    /// delivery about to end its run is usually not raced (a race is
    /// harmless: the note is taken once, see `workflow_outcome`). Taking
    /// a note deletes it, so each page reads new ones: pages are read
    /// until one comes back short or `REPAIR_BUDGET` has passed (the rest
    /// waits for the next pass).
    pub(crate) async fn repair_failing_runs(&self) {
        let started = std::time::Instant::now();
        loop {
            let before = self.now() - 5_000;
            let failing = match self
                .store
                .workflows()
                .failing_runs(before, REPAIR_PAGE)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the failing workflow runs failed");
                    return;
                }
            };
            let full = failing.len() == REPAIR_PAGE;
            let mut progress = false;
            for f in failing {
                tracing::info!(run = %f.run_id, "failing a workflow run whose step failed before a crash, if still noted");
                match self.fail_noted_run(&f.user_id, &f.run_id, &f.error).await {
                    Ok(_) => progress = true,
                    Err(e) => {
                        tracing::warn!(run = %f.run_id, error = %e, "cannot mark the workflow run failed")
                    }
                }
            }
            // A page whose every note failed would be read again as is.
            if !full || !progress || started.elapsed() >= REPAIR_BUDGET {
                return;
            }
        }
    }
    /// The step resuming the run that invoked an ending child run of
    /// `context.invoke`, with `{body, isFailed, isCanceled}`; None (logged)
    /// when the stored invoker's headers no longer parse, which no retry
    /// can change.
    fn invoker_resume(
        &self,
        user_id: &str,
        invoker: &Invoker,
        state: RunState,
        body: Option<&[u8]>,
    ) -> Option<qstash_store::Resume> {
        let parent = &invoker.workflow_run_id;
        match invoker.resume(user_id, state, body, self.now()) {
            Ok(message) => Some(qstash_store::Resume {
                run_id: parent.clone(),
                message,
            }),
            Err(e) => {
                tracing::warn!(run = %parent, error = %e, "cannot resume the invoking run");
                None
            }
        }
    }

    /// Delivery commits a failed step's DLQ entry with a failing note and
    /// then fails its run in a second commit (`workflow_outcome`): a crash
    /// between leaves the run running, noted. Here that second step is done
    /// early if the note is still there, with the invoker's resume and the
    /// leftover cancel, so `dlq.resume` / `dlq.restart` work on it. A
    /// running run without a note (resumed already from another of its
    /// entries) is left running, and the caller passes over the entry.
    async fn failed_by_dlq(&self, run: Run, error: Option<&str>) -> Result<Run, WorkflowError> {
        if run.state != RunState::Running {
            return Ok(run);
        }
        let failure = error.unwrap_or("a step of the run failed");
        self.fail_noted_run(&run.user_id, &run.run_id, failure)
            .await?;
        self.store
            .workflows()
            .get_run(&run.user_id, &run.run_id)
            .await?
            .ok_or_else(|| WorkflowError::UnknownRun(run.run_id.clone()))
    }

    /// The DLQ entry `dlq_id` of a failed workflow step, with its run: what
    /// every workflow DLQ action starts from.
    async fn dlq_step(
        &self,
        user_id: &str,
        dlq_id: &str,
    ) -> Result<(DlqEntry, Run), WorkflowError> {
        let entry = self
            .store
            .get_dlq(user_id, dlq_id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("DLQ entry {dlq_id} not found")))?;
        let m = &entry.message;
        let run_id = tag(m)
            .filter(|t| t.is_step() && m.spec.callback_of.is_none())
            .map(|t| t.run_id.clone())
            .ok_or_else(|| {
                WorkflowError::Invalid(format!("DLQ entry {dlq_id} is not a workflow step"))
            })?;
        let run = self
            .store
            .workflows()
            .get_run(user_id, &run_id)
            .await?
            .ok_or(WorkflowError::UnknownRun(run_id))?;
        Ok((entry, run))
    }

    /// Checks the `Upstash-*` overrides of a DLQ resume or restart, before
    /// anything is selected or changed: a bad header is the request's
    /// error, not a reason to pass over an entry.
    pub fn check_dlq_overrides(&self, overrides: &[(String, String)]) -> Result<(), WorkflowError> {
        let pairs = overrides.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        qstash_core::publish::PublishOptions::from_headers(pairs, self.now())
            .map(|_| ())
            .map_err(|e| WorkflowError::Invalid(e.to_string()))
    }

    /// `client.dlq.resume`: each DLQ entry (a failed step) is delivered
    /// again in the failed message's place in its run's log, and its run
    /// runs again. `overrides` are the request's `Upstash-*` headers.
    /// Answers each resumed run (id, creation time); a second entry of a
    /// run resumed by the same call changes nothing and is not answered.
    pub async fn resume_from_dlq(
        &self,
        user_id: &str,
        dlq_ids: &[String],
        overrides: &[(String, String)],
    ) -> Result<Vec<Run>, WorkflowError> {
        self.check_dlq_overrides(overrides)?;
        let now = self.now();
        let pairs = || overrides.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut plans = Vec::new();
        for dlq_id in dlq_ids {
            let (entry, run) = self.dlq_step(user_id, dlq_id).await?;
            let run_id = run.run_id.clone();
            let run = self.failed_by_dlq(run, entry.error.as_deref()).await?;
            let old = entry.message;
            if run.state != RunState::Failed {
                return Err(WorkflowError::Invalid(format!(
                    "workflow run {run_id} is {}, not failed: only a failed run resumes",
                    run.state.as_str()
                )));
            }
            let options = qstash_core::dlq::retry_options(&old.spec, pairs(), now)
                .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
            let mut message = crate::publish::new_message(
                &crate::PublishRequest {
                    user_id: user_id.to_string(),
                    caller_ip: old.spec.caller_ip.clone(),
                    destination: qstash_core::destination::Destination::Url(old.spec.url.clone()),
                    queue: old.spec.queue_name.clone(),
                    options,
                    body: old.body.clone(),
                    now,
                    parsed_url: None,
                },
                &old.spec.url,
                None,
                None,
            );
            message.message.spec.workflow = old.spec.workflow.clone();
            let revive = self.cancelled_by_failure(&run, now).await?;
            plans.push((
                run,
                old.id,
                qstash_core::dlq::DlqRetry {
                    dlq_id: dlq_id.clone(),
                    message,
                },
                revive,
            ));
        }
        let mut resumed = Vec::new();
        for (run, failed, retry, revive) in plans {
            let created = self
                .store
                .workflows()
                .resume_from_dlq(user_id, &run.run_id, &failed, retry, revive, now)
                .await?;
            if created.is_some() {
                resumed.push(run);
            }
        }
        Ok(resumed)
    }

    /// The messages of a failed run that failing it cancelled (the other
    /// branches of a parallel block, a sleep), each with a copy to take its
    /// place when the run is resumed: without them a parallel run would
    /// wait for results that never come. A failed run's log holds no other
    /// cancelled message: a cancelled run does not resume, and an earlier
    /// resume replaced the ones cancelled before.
    async fn cancelled_by_failure(
        &self,
        run: &Run,
        now: i64,
    ) -> Result<Vec<(String, NewMessage)>, WorkflowError> {
        // The message log keeps a cancelled message (the messages table
        // answers live ones only): its newest entry says it was cancelled.
        let steps = self.workflow_steps(&run.user_id, &run.run_id).await?;
        let ids: Vec<String> = steps.iter().map(|s| s.message_id.clone()).collect();
        let mut events = self.message_events(&run.user_id, &ids).await?;
        let mut out = Vec::new();
        for id in ids {
            let Some(newest) = events
                .remove(&id)
                .and_then(|e| e.into_iter().max_by_key(|e| e.time))
            else {
                continue;
            };
            // A cancel writes both entries at the same time.
            use qstash_core::message::LogState;
            if !matches!(newest.state, LogState::Canceled | LogState::CancelRequested) {
                continue;
            }
            let m = newest.message;
            let due = m.not_before.max(now);
            let copy = Message {
                id: qstash_core::ids::message_id(),
                created_at: now,
                not_before: due,
                due_at: due,
                retried: 0,
                state: qstash_core::MessageState::Pending,
                ..m
            };
            let message = NewMessage {
                message: copy,
                dedup_key: None,
            };
            out.push((id, message));
        }
        Ok(out)
    }

    /// `client.dlq.retryFailureFunction`: the failure callback of a failed
    /// run's DLQ entry is sent again, with the entry's last response.
    pub async fn retry_failure_function(
        self: &Arc<Self>,
        user_id: &str,
        dlq_id: &str,
    ) -> Result<Run, WorkflowError> {
        let (entry, run) = self.dlq_step(user_id, dlq_id).await?;
        let run_id = run.run_id.clone();
        let source = &entry.message;
        let report = qstash_core::callback::AttemptReport {
            status: entry.response.status,
            header: &entry.response.header,
            body: &entry.response.body,
            dlq_id: Some(dlq_id),
        };
        let kind = qstash_core::callback::CallbackKind::Failure;
        let mut message = qstash_core::callback::message(kind, source, &report, self.now())
            .map_err(|e| WorkflowError::Invalid(e.to_string()))?
            .ok_or_else(|| {
                WorkflowError::Invalid(format!(
                    "workflow run {run_id} has no failure function or failure URL"
                ))
            })?;
        if let Some(body) = patch_failure_callback(&message.body, &run) {
            message.body = body.into();
        }
        self.submit(vec![NewMessage {
            message,
            dedup_key: None,
        }])
        .await?;
        Ok(run)
    }

    /// `client.dlq.restart`: a failed run's DLQ entry starts a new run
    /// from the beginning (same URL, payload and trigger settings, a new
    /// run id); the entry is consumed.
    pub async fn restart_from_dlq(
        &self,
        user_id: &str,
        dlq_ids: &[String],
        overrides: &[(String, String)],
    ) -> Result<Vec<Run>, WorkflowError> {
        self.check_dlq_overrides(overrides)?;
        let now = self.now();
        let pairs = || overrides.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        // Every entry is checked and its new run planned before any is
        // started: a 400 for one entry leaves the others as they were.
        // Entries of one run (a parallel run's failed branches) restart it
        // once.
        let mut planned = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for dlq_id in dlq_ids {
            let (entry, run) = self.dlq_step(user_id, dlq_id).await?;
            let run = self.failed_by_dlq(run, entry.error.as_deref()).await?;
            // A stale entry of a run resumed from another entry: the live
            // run is not duplicated.
            if run.state == RunState::Running {
                return Err(WorkflowError::Invalid(format!(
                    "workflow run {} is running again (resumed from another DLQ entry): only an ended run restarts",
                    run.run_id
                )));
            }
            let old = entry.message;
            let old_tag = tag(&old).cloned().expect("dlq_step checked the tag");
            let options = qstash_core::dlq::retry_options(&old.spec, pairs(), now)
                .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
            let mut message = crate::publish::new_message(
                &crate::PublishRequest {
                    user_id: user_id.to_string(),
                    caller_ip: old.spec.caller_ip.clone(),
                    destination: qstash_core::destination::Destination::Url(run.url.clone()),
                    queue: None,
                    options,
                    body: run.initial_body.clone().into(),
                    now,
                    parsed_url: None,
                },
                &run.url,
                None,
                None,
            );
            let run_id = format!(
                "wfr_{}",
                qstash_core::ids::message_id().trim_start_matches("msg_")
            );
            message.message.spec.workflow = Some(WorkflowTag {
                run_id: run_id.clone(),
                init: true,
                url: Some(run.url.clone()),
                call_type: None,
                features: old_tag.features.clone(),
                invoke: false,
            });
            let first = seen.insert(run.run_id.clone());
            let new_run = Run {
                run_id,
                state: RunState::Running,
                created_at: now,
                updated_at: now,
                result: None,
                failure: None,
                ..run
            };
            planned.push((dlq_id, first.then_some((new_run, message))));
        }
        let mut started = Vec::new();
        for (dlq_id, start) in planned {
            if let Some((new_run, message)) = start {
                self.store
                    .workflows()
                    .start_run(new_run.clone(), message, now)
                    .await?;
                started.push(new_run);
            }
            let query = qstash_core::dlq::DlqQuery {
                filter: qstash_core::dlq::DlqFilter {
                    dlq_ids: vec![dlq_id.clone()],
                    ..Default::default()
                },
                count: 1,
                ..Default::default()
            };
            self.store.delete_dlq(user_id, query).await?;
        }
        Ok(started)
    }

    /// Stores a waiter of a running run (`context.waitForEvent`).
    pub async fn add_waiter(&self, waiter: Waiter) -> Result<(), WorkflowError> {
        let run_id = waiter.run_id.clone();
        match self.store.workflows().add_waiter(waiter).await? {
            Appended::Stored(_) => Ok(()),
            Appended::Unknown => Err(WorkflowError::UnknownRun(run_id)),
            Appended::Ended(state) => Err(WorkflowError::Ended(run_id, state.as_str())),
        }
    }

    /// Resumes every waiter of `event_id` (of one run, if given) with
    /// `event`; answers the waiters and the ids of their messages.
    pub async fn notify(
        &self,
        user_id: &str,
        event_id: &str,
        run_id: Option<String>,
        event: Vec<u8>,
    ) -> Result<Vec<(Waiter, String)>, StoreError> {
        self.store
            .workflows()
            .notify(user_id, event_id, run_id, event, self.now())
            .await
    }

    pub async fn waiters(&self, user_id: &str, event_id: &str) -> Result<Vec<Waiter>, StoreError> {
        self.store.workflows().list_waiters(user_id, event_id).await
    }
}

/// Notes the housekeeping takes per read (`repair_failing_runs`).
const REPAIR_PAGE: usize = 100;

/// How long one housekeeping pass takes notes before leaving the rest
/// for the next pass (the leader's other housekeeping waits meanwhile).
const REPAIR_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// The run a final failure of `m` fails: a step of a workflow run (not a
/// callback the server makes for one).
pub(crate) fn fails_run(m: &Message, kind: &OutcomeKind) -> Option<String> {
    let t = tag(m)?;
    let step = t.is_step() && m.spec.callback_of.is_none();
    (step && matches!(kind, OutcomeKind::Failed { .. })).then(|| t.run_id.clone())
}

/// Resumes waiters whose deadline has passed, with `waitTimeout: true`.
/// Each second it reads the earliest deadline from the deadline index (a
/// read, no write while nothing is due); a waiter taken is resumed in the
/// same commit, so a crash repeats or loses nothing, and in a cluster two
/// nodes take different waiters.
pub(crate) async fn waiter_timer(engine: Arc<Engine>) {
    let mut shutdown = engine.shutdown.subscribe();
    loop {
        let due = match engine.store.workflows().next_waiter_deadline().await {
            Ok(next) => next.is_some_and(|at| at <= engine.now()),
            Err(e) => {
                tracing::warn!(error = %e, "reading the next workflow waiter deadline failed");
                false
            }
        };
        if due {
            expire_due_waiters(&engine).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Takes due waiters a hundred at a time until none is left.
async fn expire_due_waiters(engine: &Engine) {
    loop {
        match engine
            .store
            .workflows()
            .expire_waiters(engine.now(), 100)
            .await
        {
            Ok(100) => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "expiring workflow waiters failed; will try again");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qstash_core::{MessageSpec, MessageState};

    fn message(tag: Option<WorkflowTag>, callback_of: Option<&str>) -> Message {
        Message {
            id: "m".into(),
            user_id: "u".into(),
            spec: MessageSpec {
                workflow: tag,
                callback_of: callback_of.map(String::from),
                ..Default::default()
            },
            body: bytes::Bytes::new(),
            created_at: 0,
            not_before: 0,
            due_at: 0,
            retried: 0,
            state: MessageState::Active,
        }
    }

    #[test]
    fn only_a_final_failure_of_a_workflow_step_fails_its_run() {
        let step = WorkflowTag {
            run_id: "wfr_1".into(),
            ..Default::default()
        };
        let failed = OutcomeKind::Failed { error: "x".into() };
        let retry = OutcomeKind::Retry {
            next_due: 1,
            error: "x".into(),
        };
        assert_eq!(
            fails_run(&message(Some(step.clone()), None), &failed).as_deref(),
            Some("wfr_1")
        );
        assert_eq!(fails_run(&message(Some(step.clone()), None), &retry), None);
        assert_eq!(
            fails_run(&message(Some(step.clone()), Some("src")), &failed),
            None
        );
        assert_eq!(fails_run(&message(None, None), &failed), None);
        let call = WorkflowTag {
            call_type: Some(qstash_core::workflow::TO_CALLBACK.into()),
            ..step
        };
        assert_eq!(fails_run(&message(Some(call), None), &failed), None);
    }
}
