//! The workflow methods of the store (SQLite, or PostgreSQL with
//! `QSTASH_TEST_BACKEND=postgres`): a run and its log, appends refused once
//! it has ended, concurrent appends numbered without gaps, and waiters
//! taken exactly once by a notify or their deadline, across a reopen.

use std::sync::Arc;

use qstash_core::headers::HeaderMap;
use qstash_core::workflow::{Run, RunFilter, RunState, TriggerConfig, Waiter, WorkflowTag};
use qstash_core::{Message, MessageSpec, MessageState};
use qstash_store::*;
use serde_json::json;

mod common;
use common::{open, reopen};

const T: i64 = 1_735_732_800_000;

fn step(id: &str, run: &str, init: bool, body: &str) -> NewMessage {
    NewMessage {
        message: Message {
            id: id.into(),
            user_id: "u".into(),
            spec: MessageSpec {
                url: "http://127.0.0.1/wf".into(),
                method: "POST".into(),
                workflow: Some(WorkflowTag {
                    run_id: run.into(),
                    init,
                    ..Default::default()
                }),
                ..Default::default()
            },
            body: body.as_bytes().to_vec().into(),
            created_at: T,
            not_before: T + 3_600_000,
            due_at: T + 3_600_000,
            retried: 0,
            state: MessageState::Pending,
        },
        dedup_key: None,
    }
}

fn run(id: &str) -> Run {
    Run {
        user_id: "u".into(),
        run_id: id.into(),
        url: "http://127.0.0.1/wf".into(),
        label: Some("l1".into()),
        state: RunState::Running,
        created_at: T,
        updated_at: T,
        initial_body: b"{\"n\":1}".to_vec(),
        config: TriggerConfig {
            inherit: true,
            max_retries: 1,
            ..Default::default()
        },
        result: None,
        failure: None,
    }
}

fn waiter(run: &str, event: &str, deadline: i64) -> Waiter {
    let mut headers = HeaderMap::new();
    headers.insert("Upstash-Workflow-RunId".into(), vec![run.into()]);
    Waiter {
        user_id: "u".into(),
        event_id: event.into(),
        run_id: run.into(),
        url: "http://127.0.0.1/wf".into(),
        deadline,
        headers: headers.clone(),
        timeout_url: "http://127.0.0.1/wf".into(),
        timeout_headers: headers,
        step: json!({"stepId": 2, "stepName": "w", "stepType": "Wait", "concurrent": 1}),
        created_at: T,
    }
}

/// A cancelled or failed run's live messages (its sleeps, its parallel
/// branches) are cancelled in the commit that ends it, so a crash right
/// after it cannot leave them live for an ended run.
#[tokio::test]
async fn ending_a_run_badly_cancels_its_live_messages_in_the_same_commit() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    w.start_run(run("wfr_c"), step("m0", "wfr_c", true, "{}"), T)
        .await
        .unwrap();
    w.append_to_run(
        "u",
        "wfr_c",
        vec![
            step("m1", "wfr_c", false, "s1"),
            step("m2", "wfr_c", false, "s2"),
        ],
        T,
    )
    .await
    .unwrap();
    let end = |state| w.end_run("u", "wfr_c", EndIf::Running, state, None, None, None, T + 1);
    let ended = end(RunState::Canceled).await.unwrap().unwrap();
    assert_eq!(
        (ended.was, ended.changed, ended.cancelled),
        (RunState::Running, true, 3)
    );
    for id in ["m0", "m1", "m2"] {
        assert!(
            store.get_message("u", id).await.unwrap().is_none(),
            "{id} is no longer live"
        );
    }
    // Ending it again finds nothing left to cancel.
    let again = end(RunState::Failed).await.unwrap().unwrap();
    assert_eq!(
        (again.was, again.changed, again.cancelled),
        (RunState::Canceled, false, 0)
    );
}

#[tokio::test]
async fn a_run_keeps_its_log_in_order_and_refuses_steps_after_its_end() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    let first = w
        .start_run(run("wfr_a"), step("m0", "wfr_a", true, "{\"n\":1}"), T)
        .await
        .unwrap();
    assert_eq!(first, Inserted::New("m0".into()));
    let again = w
        .start_run(run("wfr_a"), step("m9", "wfr_a", true, "x"), T)
        .await
        .unwrap();
    assert_eq!(again, Inserted::Duplicate("m0".into()));
    let appended = w
        .append_to_run(
            "u",
            "wfr_a",
            vec![
                step("m1", "wfr_a", false, "s1"),
                step("m2", "wfr_a", false, "s2"),
            ],
            T,
        )
        .await
        .unwrap();
    assert_eq!(
        appended,
        Appended::Stored(vec![Inserted::New("m1".into()), Inserted::New("m2".into())])
    );
    let log = w.run_steps("u", "wfr_a").await.unwrap();
    let ids: Vec<_> = log
        .iter()
        .map(|s| (s.seq, s.message_id.as_str(), s.body.clone()))
        .collect();
    assert_eq!(
        ids,
        vec![
            (0, "m0", b"{\"n\":1}".to_vec()),
            (1, "m1", b"s1".to_vec()),
            (2, "m2", b"s2".to_vec())
        ]
    );
    assert!(
        store.get_message("u", "m2").await.unwrap().is_some(),
        "the step's message is stored"
    );
    let stored = w.get_run("u", "wfr_a").await.unwrap().unwrap();
    assert_eq!(
        (
            stored.state,
            stored.config.max_retries,
            stored.label.as_deref()
        ),
        (RunState::Running, 1, Some("l1"))
    );

    let ended = w
        .end_run(
            "u",
            "wfr_a",
            EndIf::Running,
            RunState::Success,
            Some(b"\"r\"".to_vec()),
            None,
            None,
            T + 1,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.was, RunState::Running);
    assert_eq!(
        ended.cancelled, 0,
        "a finished run's messages are left alone"
    );
    assert!(store.get_message("u", "m2").await.unwrap().is_some());
    let late = w
        .append_to_run("u", "wfr_a", vec![step("m3", "wfr_a", false, "s3")], T)
        .await
        .unwrap();
    assert_eq!(late, Appended::Ended(RunState::Success));
    assert!(
        store.get_message("u", "m3").await.unwrap().is_none(),
        "nothing stored after the end"
    );
    // Ending again changes nothing.
    let twice = w
        .end_run(
            "u",
            "wfr_a",
            EndIf::Running,
            RunState::Canceled,
            None,
            None,
            None,
            T + 2,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(twice.was, RunState::Success);
    let done = w.get_run("u", "wfr_a").await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.result.as_deref()),
        (RunState::Success, Some(&b"\"r\""[..]))
    );
    assert_eq!(
        w.append_to_run("u", "wfr_none", vec![], T).await.unwrap(),
        Appended::Unknown
    );
    let listed = w
        .list_runs(
            "u",
            RunFilter {
                state: Some(RunState::Success),
                ..Default::default()
            },
            None,
            10,
            RUN_SCAN_BUDGET,
        )
        .await
        .unwrap()
        .runs;
    assert_eq!(listed.len(), 1);
    assert!(
        w.get_run("other", "wfr_a").await.unwrap().is_none(),
        "runs belong to their user"
    );
}

#[tokio::test]
async fn concurrent_appends_of_one_run_are_numbered_without_gaps() {
    let (_dir, store) = open().await;
    store
        .workflows()
        .start_run(run("wfr_p"), step("p0", "wfr_p", true, "{}"), T)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 1..=8 {
        let store: Arc<dyn Store> = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("p{i}");
            store
                .workflows()
                .append_to_run("u", "wfr_p", vec![step(&id, "wfr_p", false, &id)], T)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Appended::Stored(_)));
    }
    let seqs: Vec<i64> = store
        .workflows()
        .run_steps("u", "wfr_p")
        .await
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, (0..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_waiter_is_taken_once_by_notify_or_deadline_and_survives_a_reopen() {
    let (dir, store) = open().await;
    let w = store.workflows();
    w.start_run(run("wfr_w"), step("w0", "wfr_w", true, "{}"), T)
        .await
        .unwrap();
    assert_eq!(
        w.add_waiter(waiter("wfr_w", "evt", T + 10_000))
            .await
            .unwrap(),
        Appended::Stored(vec![])
    );
    assert_eq!(
        w.add_waiter(waiter("wfr_x", "evt", T + 10_000))
            .await
            .unwrap(),
        Appended::Unknown
    );
    drop(store);
    let store = reopen(dir.path()).await;
    let w = store.workflows();
    assert_eq!(
        w.list_waiters("u", "evt").await.unwrap().len(),
        1,
        "the waiter survived"
    );
    assert_eq!(
        w.expire_waiters(T + 5_000, 10).await.unwrap(),
        0,
        "not yet due"
    );
    let resumed = w
        .notify("u", "evt", None, b"data".to_vec(), T + 6_000)
        .await
        .unwrap();
    assert_eq!(resumed.len(), 1);
    let log = w.run_steps("u", "wfr_w").await.unwrap();
    assert_eq!(
        log.last().unwrap().message_id,
        resumed[0].1,
        "the resume step is logged"
    );
    let body: serde_json::Value = serde_json::from_slice(&log.last().unwrap().body).unwrap();
    assert_eq!(body["waitTimeout"], false);
    let resumed_message = store
        .get_message("u", &resumed[0].1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resumed_message.spec.max_retries, 1,
        "the run's trigger settings apply"
    );
    assert!(w
        .notify("u", "evt", None, b"again".to_vec(), T + 7_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        w.expire_waiters(T + 20_000, 10).await.unwrap(),
        0,
        "taken already"
    );

    w.add_waiter(waiter("wfr_w", "late", T + 10_000))
        .await
        .unwrap();
    assert_eq!(w.expire_waiters(T + 10_000, 10).await.unwrap(), 1);
    let body: serde_json::Value = serde_json::from_slice(
        &w.run_steps("u", "wfr_w")
            .await
            .unwrap()
            .last()
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["waitTimeout"], true);
    assert!(w.list_waiters("u", "late").await.unwrap().is_empty());

    // Ending a run drops its waiters.
    w.add_waiter(waiter("wfr_w", "gone", T + 10_000))
        .await
        .unwrap();
    w.end_run(
        "u",
        "wfr_w",
        EndIf::Running,
        RunState::Canceled,
        None,
        None,
        None,
        T,
    )
    .await
    .unwrap();
    assert!(w.list_waiters("u", "gone").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_run_scoped_notify_before_the_wait_is_kept_for_it() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    w.start_run(run("wfr_l"), step("l0", "wfr_l", true, "{}"), T)
        .await
        .unwrap();
    let early = w
        .notify("u", "evt", Some("wfr_l".into()), b"first".to_vec(), T)
        .await
        .unwrap();
    assert!(early.is_empty(), "nobody waits yet");
    // Unscoped, or to a run that does not exist, nothing is kept.
    w.notify("u", "evt", None, b"lost".to_vec(), T)
        .await
        .unwrap();
    w.notify("u", "evt", Some("wfr_none".into()), b"lost".to_vec(), T)
        .await
        .unwrap();
    let answer = w
        .add_waiter(waiter("wfr_l", "evt", T + 10_000))
        .await
        .unwrap();
    let Appended::Stored(resumed) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(resumed.len(), 1, "resumed at once by the kept event");
    assert!(w.list_waiters("u", "evt").await.unwrap().is_empty());
    let last = w.run_steps("u", "wfr_l").await.unwrap().pop().unwrap();
    assert_eq!(Inserted::New(last.message_id), resumed[0]);
    let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["out"], "Zmlyc3Q=", "base64 of the kept event");
    // The next wait waits: the event was used once.
    assert_eq!(
        w.add_waiter(waiter("wfr_l", "evt", T + 10_000))
            .await
            .unwrap(),
        Appended::Stored(vec![])
    );
}

#[tokio::test]
async fn ending_a_child_run_resumes_its_invoker_in_the_same_commit_once() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    for (id, m) in [
        ("wfr_p", "p0"),
        ("wfr_c", "c0"),
        ("wfr_p2", "q0"),
        ("wfr_c2", "d0"),
    ] {
        w.start_run(run(id), step(m, id, true, "{}"), T)
            .await
            .unwrap();
    }
    let resume = |m: &str, parent: &str| Resume {
        run_id: parent.into(),
        message: step(m, parent, false, "out"),
    };
    let ended = w
        .end_run(
            "u",
            "wfr_c",
            EndIf::Running,
            RunState::Success,
            None,
            None,
            Some(resume("r1", "wfr_p")),
            T + 1,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.was, RunState::Running);
    let log: Vec<_> = w
        .run_steps("u", "wfr_p")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.message_id)
        .collect();
    assert_eq!(
        log,
        vec!["p0", "r1"],
        "the parent resumes with the child's end"
    );
    let r1 = store
        .get_message("u", "r1")
        .await
        .unwrap()
        .expect("the resume is stored");
    assert_eq!(
        r1.spec.max_retries, 1,
        "the parent's trigger settings apply"
    );

    // A retried DELETE finds the child ended: the parent is not resumed twice.
    let again = w
        .end_run(
            "u",
            "wfr_c",
            EndIf::Running,
            RunState::Success,
            None,
            None,
            Some(resume("r2", "wfr_p")),
            T + 2,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.was, RunState::Success);
    assert_eq!(w.run_steps("u", "wfr_p").await.unwrap().len(), 2);
    assert!(store.get_message("u", "r2").await.unwrap().is_none());

    // A parent that has ended is left alone; the child still ends.
    w.end_run(
        "u",
        "wfr_p2",
        EndIf::Running,
        RunState::Canceled,
        None,
        None,
        None,
        T + 3,
    )
    .await
    .unwrap();
    w.end_run(
        "u",
        "wfr_c2",
        EndIf::Running,
        RunState::Failed,
        None,
        Some("x".into()),
        Some(resume("r3", "wfr_p2")),
        T + 4,
    )
    .await
    .unwrap();
    assert_eq!(
        w.get_run("u", "wfr_c2").await.unwrap().unwrap().state,
        RunState::Failed
    );
    assert!(store.get_message("u", "r3").await.unwrap().is_none());
}

#[tokio::test]
async fn an_old_run_is_found_by_id_behind_more_than_a_thousand_newer_ones() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    let mut old = run("wfr_old");
    old.label = Some("old".into());
    w.start_run(old, step("o0", "wfr_old", true, "{}"), T)
        .await
        .unwrap();
    for i in 0..1_005 {
        let id = format!("wfr_n{i:04}");
        let mut r = run(&id);
        r.created_at = T + 1 + i;
        w.start_run(r, step(&format!("n{i:04}"), &id, true, "{}"), T + 1 + i)
            .await
            .unwrap();
    }
    let by_id = RunFilter {
        run_ids: vec!["wfr_old".into(), "wfr_n0003".into(), "wfr_none".into()],
        ..Default::default()
    };
    let found: Vec<_> = w
        .list_runs("u", by_id, None, 10, RUN_SCAN_BUDGET)
        .await
        .unwrap()
        .runs
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(
        found,
        vec!["wfr_n0003", "wfr_old"],
        "newest first, the unknown id left out"
    );
    let running_old = RunFilter {
        run_ids: vec!["wfr_old".into()],
        state: Some(RunState::Running),
        ..Default::default()
    };
    assert_eq!(
        w.list_runs("u", running_old, None, 100, RUN_SCAN_BUDGET)
            .await
            .unwrap()
            .runs
            .len(),
        1
    );
    // The other filters run in SQL: the old run's label is found too.
    let by_label = RunFilter {
        label: Some("old".into()),
        ..Default::default()
    };
    let found = w
        .list_runs("u", by_label, None, 10, RUN_SCAN_BUDGET)
        .await
        .unwrap()
        .runs;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].run_id, "wfr_old");
    let by_url = RunFilter {
        url: Some("http://127.0.0.1/w".into()),
        to_date: Some(T + 3),
        ..Default::default()
    };
    let found: Vec<_> = w
        .list_runs("u", by_url, None, 10, RUN_SCAN_BUDGET)
        .await
        .unwrap()
        .runs
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(
        found,
        vec!["wfr_n0002", "wfr_n0001", "wfr_n0000", "wfr_old"]
    );
    let exact = RunFilter {
        url: Some("http://127.0.0.1/w".into()),
        url_exact: true,
        ..Default::default()
    };
    assert!(w
        .list_runs("u", exact, None, 10, RUN_SCAN_BUDGET)
        .await
        .unwrap()
        .runs
        .is_empty());
}

#[tokio::test]
async fn a_filtered_run_walk_stops_at_its_budget_and_gives_a_cursor() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    let mut old = run("wfr_old");
    old.label = Some("old".into());
    w.start_run(old, step("o0", "wfr_old", true, "{}"), T)
        .await
        .unwrap();
    for i in 0..30 {
        let id = format!("wfr_n{i:02}");
        let mut r = run(&id);
        r.created_at = T + 1 + i;
        w.start_run(r, step(&format!("n{i:02}"), &id, true, "{}"), T + 1 + i)
            .await
            .unwrap();
    }
    let by_label = || RunFilter {
        label: Some("old".into()),
        ..Default::default()
    };
    // 30 newer runs, a budget of 20: nothing yet, and where to go on.
    let first = w.list_runs("u", by_label(), None, 10, 20).await.unwrap();
    assert!(first.runs.is_empty());
    let next = first.next.expect("a cursor when the budget runs out");
    assert_eq!(next, (T + 11, "wfr_n10".to_string()));
    let second = w
        .list_runs("u", by_label(), Some(next), 10, 20)
        .await
        .unwrap();
    assert_eq!(second.runs.len(), 1);
    assert_eq!(second.runs[0].run_id, "wfr_old");
    assert_eq!(second.next, None, "the walk reached the end");
    // A full page gives its last run as the cursor.
    let full = w
        .list_runs("u", RunFilter::default(), None, 5, 20)
        .await
        .unwrap();
    assert_eq!(full.runs.len(), 5);
    assert_eq!(full.next, Some((T + 26, "wfr_n25".to_string())));
}

/// A step's final failure notes its run as failing in the outcome's own
/// commit; ending the run (however) clears the note. A note left by a
/// crash between the two commits is there after a reopen, for the
/// leader's housekeeping to end the run.
#[tokio::test]
async fn a_failed_step_notes_its_run_failing_until_the_run_is_ended() {
    use qstash_core::outcome::{AttemptResponse, Outcome, OutcomeKind};
    let (dir, store) = open().await;
    let w = store.workflows();
    for id in ["wfr_f1", "wfr_f2"] {
        let trigger = step(&format!("{id}-m0"), id, true, "{}");
        w.start_run(run(id), trigger, T).await.unwrap();
    }
    let now = T + 3_600_000;
    assert_eq!(store.claim_due(now, 10).await.unwrap().len(), 2);
    let failed = |id: &str, run: Option<&str>| Outcome {
        message_id: id.into(),
        at: now,
        kind: OutcomeKind::Failed {
            error: "destination answered 500".into(),
        },
        response: AttemptResponse {
            status: 500,
            ..Default::default()
        },
        dlq_id: None,
        callbacks: vec![],
        fails_run: run.map(String::from),
    };
    store
        .record_outcomes(vec![
            failed("wfr_f1-m0", Some("wfr_f1")),
            failed("wfr_f2-m0", Some("wfr_f2")),
        ])
        .await
        .unwrap();
    let runs = |f: Vec<Failing>| f.into_iter().map(|f| f.run_id).collect::<Vec<_>>();
    // Only notes older than `before`.
    assert!(w.failing_runs(now, 10).await.unwrap().is_empty());
    let noted = w.failing_runs(now + 1, 10).await.unwrap();
    assert_eq!(runs(noted.clone()), vec!["wfr_f1", "wfr_f2"]);
    assert_eq!(noted[0].error, "destination answered 500");
    assert_eq!(noted[0].user_id, "u");
    assert_eq!(w.failing_runs(now + 1, 1).await.unwrap().len(), 1);

    // The run ends: its note goes with it.
    let ended = w
        .end_run(
            "u",
            "wfr_f1",
            EndIf::Running,
            RunState::Failed,
            None,
            Some("x".into()),
            None,
            now,
        )
        .await
        .unwrap();
    assert_eq!(ended.map(|e| e.was), Some(RunState::Running));
    assert_eq!(
        runs(w.failing_runs(now + 1, 10).await.unwrap()),
        vec!["wfr_f2"]
    );

    // A crash before the second run was ended: the note survives.
    drop(store);
    let store = reopen(dir.path()).await;
    let w = store.workflows();
    assert_eq!(
        runs(w.failing_runs(now + 1, 10).await.unwrap()),
        vec!["wfr_f2"]
    );
    assert_eq!(
        w.get_run("u", "wfr_f2").await.unwrap().unwrap().state,
        RunState::Running
    );
    w.end_run(
        "u",
        "wfr_f2",
        EndIf::Running,
        RunState::Failed,
        None,
        None,
        None,
        now,
    )
    .await
    .unwrap();
    assert!(w.failing_runs(now + 1, 10).await.unwrap().is_empty());
}

/// The final failure of `id` (a step of `run`), with DLQ entry `dlq_id`.
fn step_failed(id: &str, run: &str, dlq_id: &str, at: i64) -> qstash_core::outcome::Outcome {
    use qstash_core::outcome::{AttemptResponse, Outcome, OutcomeKind};
    Outcome {
        message_id: id.into(),
        at,
        kind: OutcomeKind::Failed {
            error: "destination answered 500".into(),
        },
        response: AttemptResponse {
            status: 500,
            ..Default::default()
        },
        dlq_id: Some(dlq_id.into()),
        callbacks: vec![],
        fails_run: Some(run.into()),
    }
}

/// What the engine's `resume_from_dlq` commits for DLQ entry `dlq_id`
/// (the failed step `failed` of `run`): its retry, as message `new_id`.
async fn dlq_resume(
    store: &Arc<dyn Store>,
    run: &str,
    failed: &str,
    dlq_id: &str,
    new_id: &str,
    at: i64,
) -> Option<String> {
    let retry = qstash_core::dlq::DlqRetry {
        dlq_id: dlq_id.into(),
        message: step(new_id, run, false, "[]"),
    };
    store
        .workflows()
        .resume_from_dlq("u", run, failed, retry, vec![], at)
        .await
        .unwrap()
}

fn state_of(m: Option<Message>) -> Option<MessageState> {
    m.map(|m| m.state)
}

/// Review of wf2, must-fix 1: the leader's housekeeping reads a run's
/// failing note (left by a crash between a step's DLQ commit and the
/// run's end), a DLQ resume fails and revives the run meanwhile, then the
/// housekeeping ends the run it read: the note is a one-time token, so it
/// finds none and the revived run, and its resumed step, live on.
#[tokio::test]
async fn a_failing_note_is_taken_once_and_a_resumed_run_is_not_failed_again() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    w.start_run(run("wfr_r"), step("r0", "wfr_r", true, "{}"), T)
        .await
        .unwrap();
    let now = T + 3_600_000;
    assert_eq!(store.claim_due(now, 10).await.unwrap().len(), 1);
    store
        .record_outcomes(vec![step_failed("r0", "wfr_r", "dlq_r", now)])
        .await
        .unwrap();
    // (crash: the run was not ended) The housekeeping reads the note ...
    let noted = w.failing_runs(now + 1, 100).await.unwrap();
    assert_eq!(noted.len(), 1);
    // ... a DLQ resume lands: `failed_by_dlq` takes the note and fails the
    // run, the store resumes it ...
    let failed = w
        .end_run(
            "u",
            "wfr_r",
            EndIf::Noted,
            RunState::Failed,
            None,
            Some("x".into()),
            None,
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(failed.changed);
    let resumed = dlq_resume(&store, "wfr_r", "r0", "dlq_r", "r0b", now + 1).await;
    assert_eq!(resumed.as_deref(), Some("r0b"));
    // ... and the housekeeping ends the run it read: no note, no change.
    let late = w
        .end_run(
            "u",
            "wfr_r",
            EndIf::Noted,
            RunState::Failed,
            None,
            Some("x".into()),
            None,
            now + 2,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((late.was, late.changed), (RunState::Running, false));
    let r = w.get_run("u", "wfr_r").await.unwrap().unwrap();
    assert_eq!((r.state, r.failure), (RunState::Running, None));
    assert_eq!(
        state_of(store.get_message("u", "r0b").await.unwrap()),
        Some(MessageState::Pending)
    );
    assert!(w.failing_runs(now + 10, 100).await.unwrap().is_empty());
    // An unconditional end (a cancel) still ends it.
    let cancel = w
        .end_run(
            "u",
            "wfr_r",
            EndIf::Running,
            RunState::Canceled,
            None,
            None,
            None,
            now + 3,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(cancel.changed);
}

/// Review of wf2, must-fix 2: both parallel branches of a run fail (the
/// second's outcome committed before the first's end, whose commit cancels
/// what is still live, and a crash before the second's
/// `workflow_outcome`), so one resume page holds two entries of
/// the run. The first resumes it (taking the second's note); the second
/// finds it running with no note: it neither fails it (which would cancel
/// the resumed step) nor resumes it twice, and its entry stays.
#[tokio::test]
async fn a_second_dlq_entry_of_a_resumed_run_changes_nothing() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    w.start_run(run("wfr_p"), step("p0", "wfr_p", true, "{}"), T)
        .await
        .unwrap();
    let branches = vec![
        step("p1", "wfr_p", false, "{}"),
        step("p2", "wfr_p", false, "{}"),
    ];
    w.append_to_run("u", "wfr_p", branches, T).await.unwrap();
    let now = T + 3_600_000;
    assert_eq!(store.claim_due(now, 10).await.unwrap().len(), 3);
    store
        .record_outcomes(vec![step_failed("p1", "wfr_p", "dlq_p1", now)])
        .await
        .unwrap();
    store
        .record_outcomes(vec![step_failed("p2", "wfr_p", "dlq_p2", now + 1)])
        .await
        .unwrap();
    // The first branch's `workflow_outcome` fails the run.
    let first = w
        .end_run(
            "u",
            "wfr_p",
            EndIf::Noted,
            RunState::Failed,
            None,
            Some("x".into()),
            None,
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(first.changed);
    // resume({all: true}): the first entry.
    assert_eq!(
        dlq_resume(&store, "wfr_p", "p1", "dlq_p1", "p1b", now + 2)
            .await
            .as_deref(),
        Some("p1b")
    );
    // The second: `failed_by_dlq` finds the run running ...
    let second = w
        .end_run(
            "u",
            "wfr_p",
            EndIf::Noted,
            RunState::Failed,
            None,
            Some("x".into()),
            None,
            now + 3,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.was, second.changed), (RunState::Running, false));
    // ... and a resume of it (planned while the run was failed) is refused.
    assert_eq!(
        dlq_resume(&store, "wfr_p", "p2", "dlq_p2", "p2b", now + 3).await,
        None
    );
    assert_eq!(state_of(store.get_message("u", "p2b").await.unwrap()), None);
    assert!(store.get_dlq("u", "dlq_p2").await.unwrap().is_some());
    assert_eq!(
        w.get_run("u", "wfr_p").await.unwrap().unwrap().state,
        RunState::Running
    );
    assert_eq!(
        state_of(store.get_message("u", "p1b").await.unwrap()),
        Some(MessageState::Pending)
    );
    // The housekeeping finds no note of the revived run.
    assert!(w.failing_runs(now + 10, 100).await.unwrap().is_empty());
}

/// The waiters of a page of runs come in one read, each with its run id,
/// and only those of the runs named (and of the user).
#[tokio::test]
async fn the_waiters_of_several_runs_are_read_at_once() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    for id in ["wfr_w1", "wfr_w2", "wfr_w3"] {
        w.start_run(run(id), step(&format!("{id}-m0"), id, true, "{}"), T)
            .await
            .unwrap();
    }
    for (run, event) in [
        ("wfr_w1", "e1"),
        ("wfr_w1", "e2"),
        ("wfr_w2", "e3"),
        ("wfr_w3", "e4"),
    ] {
        w.add_waiter(waiter(run, event, T + 60_000)).await.unwrap();
    }
    let ids = |runs: &[&str]| runs.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let mut got: Vec<(String, String)> = w
        .runs_waiters("u", &ids(&["wfr_w1", "wfr_w2", "wfr_none"]))
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.run_id, x.event_id))
        .collect();
    got.sort();
    let want = [("wfr_w1", "e1"), ("wfr_w1", "e2"), ("wfr_w2", "e3")];
    assert_eq!(got, want.map(|(r, e)| (r.to_string(), e.to_string())));
    assert!(w
        .runs_waiters("other", &ids(&["wfr_w1"]))
        .await
        .unwrap()
        .is_empty());
    assert!(w.runs_waiters("u", &[]).await.unwrap().is_empty());
}

/// A DLQ resume brings back, in the same commit, the messages failing the
/// run cancelled (a parallel sibling): each copy takes its place in the log.
#[tokio::test]
async fn a_dlq_resume_puts_revived_messages_in_their_places() {
    let (_dir, store) = open().await;
    let w = store.workflows();
    w.start_run(run("wfr_v"), step("v0", "wfr_v", true, "{}"), T)
        .await
        .unwrap();
    let branches = vec![
        step("v1", "wfr_v", false, "{}"),
        step("v2", "wfr_v", false, "{\"sibling\":1}"),
    ];
    w.append_to_run("u", "wfr_v", branches, T).await.unwrap();
    let now = T + 3_600_000;
    store.claim_due(now, 10).await.unwrap();
    store
        .record_outcomes(vec![step_failed("v1", "wfr_v", "dlq_v1", now)])
        .await
        .unwrap();
    w.end_run(
        "u",
        "wfr_v",
        EndIf::Noted,
        RunState::Failed,
        None,
        None,
        None,
        now,
    )
    .await
    .unwrap();
    let retry = qstash_core::dlq::DlqRetry {
        dlq_id: "dlq_v1".into(),
        message: step("v1b", "wfr_v", false, "[]"),
    };
    let revive = vec![(
        "v2".to_string(),
        step("v2b", "wfr_v", false, "{\"sibling\":1}"),
    )];
    let created = w
        .resume_from_dlq("u", "wfr_v", "v1", retry, revive, now + 1)
        .await
        .unwrap();
    assert_eq!(created.as_deref(), Some("v1b"));
    let ids: Vec<String> = w
        .run_steps("u", "wfr_v")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.message_id)
        .collect();
    assert_eq!(ids, ["v0", "v1b", "v2b"]);
    let revived = store.get_message("u", "v2b").await.unwrap().unwrap();
    assert_eq!(&revived.body[..], b"{\"sibling\":1}");
}
