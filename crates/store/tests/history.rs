//! Logs and DLQ of the store (SQLite, or PostgreSQL with
//! `QSTASH_TEST_BACKEND=postgres`): paging, index use, and outcomes that
//! create callback messages and DLQ entries in one commit.

use std::collections::HashSet;

use qstash_core::message::LogState;
use qstash_core::{Message, MessageSpec, MessageState};
use qstash_store::rows::SCAN_BUDGET;
use qstash_store::sqlite::{logs, Durability, SqliteStore};
use qstash_store::*;

mod common;
use common::open;

fn message(id: &str, url: &str, labels: &[&str]) -> Message {
    Message {
        id: id.into(),
        user_id: "u".into(),
        spec: MessageSpec {
            url: url.into(),
            method: "POST".into(),
            max_retries: 0,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Default::default()
        },
        body: b"hi".to_vec().into(),
        created_at: 0,
        not_before: 0,
        due_at: 0,
        retried: 0,
        state: MessageState::Pending,
    }
}

fn new(m: Message) -> NewMessage {
    NewMessage {
        message: m,
        dedup_key: None,
    }
}

fn failed(id: &str, at: i64, dlq_id: &str, callbacks: Vec<NewMessage>) -> Outcome {
    Outcome {
        message_id: id.into(),
        at,
        kind: OutcomeKind::Failed {
            error: "destination answered 500".into(),
        },
        response: AttemptResponse {
            status: 500,
            body: b"boom".to_vec(),
            ..Default::default()
        },
        dlq_id: Some(dlq_id.into()),
        callbacks,
        fails_run: None,
    }
}

#[tokio::test]
async fn log_paging_sees_each_entry_once_while_new_entries_arrive() {
    let (_dir, store) = open().await;
    let batch = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| new(message(&format!("m{i:03}"), "http://a/x", &[])))
            .collect::<Vec<_>>()
    };
    store.insert_messages(batch(0, 40), 0).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut extra = 40;
    loop {
        let page = store
            .list_logs("u", LogFilter::default(), cursor, 7)
            .await
            .unwrap();
        seen.extend(page.entries.iter().map(|e| e.message.id.clone()));
        // Writes land between pages, newer than everything listed so far.
        store.insert_messages(batch(extra, 3), 0).await.unwrap();
        extra += 3;
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was listed twice");
    for i in 0..40 {
        assert!(
            unique.contains(&format!("m{i:03}")),
            "entry of m{i:03} skipped"
        );
    }
    let first = store
        .list_logs("u", LogFilter::default(), None, 1)
        .await
        .unwrap();
    assert_eq!(
        first.entries[0].message.id,
        format!("m{:03}", extra - 1),
        "newest first"
    );
}

#[tokio::test]
async fn filters_select_by_label_url_state_and_dates() {
    let (_dir, store) = open().await;
    let mut a = message("a", "http://a/x", &["red", "blue"]);
    a.created_at = 10;
    let mut b = message("b", "http://b/x", &["green"]);
    b.created_at = 20;
    store
        .insert_messages(vec![new(a), new(b)], 0)
        .await
        .unwrap();
    store.claim_due(30, 10).await.unwrap();
    let ids = |p: LogPage| -> Vec<(String, LogState)> {
        p.entries
            .into_iter()
            .map(|e| (e.message.id, e.state))
            .collect()
    };
    let by = |f: LogFilter| {
        let store = store.clone();
        async move { ids(store.list_logs("u", f, None, 100).await.unwrap()) }
    };
    let blue = by(LogFilter {
        label: vec!["blue".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(
        blue,
        vec![
            ("a".into(), LogState::Active),
            ("a".into(), LogState::Created)
        ]
    );
    let url_b_created = by(LogFilter {
        url: vec!["http://b/x".into()],
        states: vec![LogState::Created],
        ..Default::default()
    })
    .await;
    assert_eq!(url_b_created, vec![("b".into(), LogState::Created)]);
    let window = by(LogFilter {
        from_date: Some(10),
        to_date: Some(20),
        ..Default::default()
    })
    .await;
    assert_eq!(
        window,
        vec![
            ("b".into(), LogState::Created),
            ("a".into(), LogState::Created)
        ]
    );
    let active = by(LogFilter {
        states: vec![LogState::Active],
        message_ids: vec!["b".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(active, vec![("b".into(), LogState::Active)]);
}

/// Every filter shape is answered by walking an index from the cursor: no
/// full scan and no sort of all entries, however large the log grows.
#[test]
fn every_log_query_walks_an_index() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), Durability::Normal).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("qstash.db")).unwrap();
    qstash_store::sqlite::logs::register_url_functions(&conn).unwrap();
    let one = |s: &str| vec![s.to_string()];
    let filters = [
        LogFilter::default(),
        LogFilter {
            url: one("http://a"),
            ..Default::default()
        },
        LogFilter {
            label: one("l"),
            from_date: Some(1),
            to_date: Some(2),
            ..Default::default()
        },
        LogFilter {
            topic_name: one("t"),
            queue_name: one("q"),
            states: vec![LogState::Failed],
            ..Default::default()
        },
        LogFilter {
            schedule_id: one("s"),
            ..Default::default()
        },
        LogFilter {
            states: vec![LogState::Delivered],
            caller_ip: one("1.2.3.4"),
            ..Default::default()
        },
        LogFilter {
            from_date: Some(5),
            ..Default::default()
        },
        LogFilter {
            host: one("example.org"),
            path: one("/a"),
            ..Default::default()
        },
        LogFilter {
            message_ids: vec!["a".into(), "b".into()],
            ..Default::default()
        },
        LogFilter {
            states: vec![LogState::Created, LogState::Failed],
            from_date: Some(1),
            ..Default::default()
        },
    ];
    for f in filters {
        let cursor = Some(LogCursor { time: 9, seq: 3 });
        let (sql, args) = logs::page_sql("u", &f, cursor, 101);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for step in &plan {
            assert!(!step.starts_with("SCAN"), "{f:?} scans: {plan:?}");
            if f.message_ids.is_empty() {
                assert!(!step.contains("TEMP B-TREE"), "{f:?} sorts: {plan:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_failed_outcome_commits_its_dlq_entry_and_callbacks_together() {
    let (_dir, store) = open().await;
    let mut m = message("src", "http://a/x", &["l1"]);
    m.spec.failure_callback = Some("http://cb/fail".into());
    store.insert_messages(vec![new(m)], 0).await.unwrap();
    store.claim_due(0, 10).await.unwrap();
    let mut cb = message("cb1", "http://cb/fail", &[]);
    cb.spec.callback_of = Some("src".into());
    cb.created_at = 5;
    store
        .record_outcomes(vec![failed("src", 5, "5-77", vec![new(cb)])])
        .await
        .unwrap();
    let entry = store
        .get_dlq("u", "5-77")
        .await
        .unwrap()
        .expect("in the DLQ");
    assert_eq!(entry.message.id, "src");
    assert_eq!(entry.response.status, 500);
    assert_eq!(entry.response.body, b"boom");
    assert!(store.get_dlq("other", "5-77").await.unwrap().is_none());
    let claimed = store.claim_due(10, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].spec.callback_of.as_deref(), Some("src"));

    // An outcome that no longer applies creates nothing.
    store
        .record_outcomes(vec![failed(
            "src",
            6,
            "6-1",
            vec![new(message("cb2", "http://cb", &[]))],
        )])
        .await
        .unwrap();
    assert!(store.get_dlq("u", "6-1").await.unwrap().is_none());
    assert!(store.claim_due(10, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn dlq_pages_deletes_and_retries() {
    let (_dir, store) = open().await;
    let ids: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    store
        .insert_messages(
            ids.iter()
                .map(|id| new(message(id, "http://a/x", &[])))
                .collect(),
            0,
        )
        .await
        .unwrap();
    store.claim_due(0, 10).await.unwrap();
    let outcomes = ids
        .iter()
        .enumerate()
        .map(|(i, id)| failed(id, 100 + i as i64, &format!("{}-{i}", 100 + i), vec![]))
        .collect();
    store.record_outcomes(outcomes).await.unwrap();

    let q = |cursor: Option<DlqCursor>, order| DlqQuery {
        count: 2,
        cursor,
        order,
        ..Default::default()
    };
    let p1 = store
        .list_dlq("u", q(None, DlqOrder::EarliestFirst))
        .await
        .unwrap();
    assert_eq!(
        p1.entries
            .iter()
            .map(|e| e.dlq_id.as_str())
            .collect::<Vec<_>>(),
        ["100-0", "101-1"]
    );
    let c = DlqCursor::parse(p1.cursor.as_deref().unwrap()).unwrap();
    let p2 = store
        .list_dlq("u", q(Some(c), DlqOrder::EarliestFirst))
        .await
        .unwrap();
    assert_eq!(p2.entries[0].dlq_id, "102-2");
    let latest = store
        .list_dlq("u", q(None, DlqOrder::LatestFirst))
        .await
        .unwrap();
    assert_eq!(latest.entries[0].dlq_id, "104-4");

    let deleted = store
        .delete_dlq(
            "u",
            DlqQuery {
                filter: DlqFilter {
                    dlq_ids: vec!["100-0".into(), "nope".into()],
                    ..Default::default()
                },
                count: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        deleted,
        DlqDeleted {
            deleted: 1,
            cursor: None
        }
    );

    let retry = |dlq_id: &str, id: &str| DlqRetry {
        dlq_id: dlq_id.into(),
        message: new(message(id, "http://a/x", &[])),
    };
    let answers = store
        .retry_dlq("u", vec![retry("101-1", "r1"), retry("100-0", "r0")], 200)
        .await
        .unwrap();
    assert_eq!(answers, vec![Some("r1".to_string()), None]);
    assert!(store.get_dlq("u", "101-1").await.unwrap().is_none());
    assert!(store.get_message("u", "r1").await.unwrap().is_some());
    assert!(store.get_message("u", "r0").await.unwrap().is_none());

    // Retention: DLQ entries older than the cutoff go.
    store.purge_history(0, 104).await.unwrap();
    let left = store
        .list_dlq("u", q(None, DlqOrder::EarliestFirst))
        .await
        .unwrap();
    assert_eq!(
        left.entries
            .iter()
            .map(|e| e.dlq_id.as_str())
            .collect::<Vec<_>>(),
        ["104-4"]
    );
}

/// Listing cost does not grow with the log: a page from a log of 200k
/// entries, filtered by a rare label or state, in milliseconds. Slow to set
/// up, so run on demand: `cargo test -p qstash-store --release --test
/// history -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn log_listing_stays_fast_on_a_large_log() {
    let (_dir, store) = open().await;
    let total = 200_000;
    for chunk in 0..total / 1000 {
        let batch = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let label = if n % 10_000 == 0 { "rare" } else { "common" };
                let mut m = message(
                    &format!("m{n:07}"),
                    &format!("http://h/{}", n % 100),
                    &[label],
                );
                m.created_at = n as i64;
                new(m)
            })
            .collect();
        store.insert_messages(batch, 0).await.unwrap();
    }
    let cases = [
        ("no filter", LogFilter::default()),
        (
            "rare label",
            LogFilter {
                label: vec!["rare".into()],
                ..Default::default()
            },
        ),
        (
            "url",
            LogFilter {
                url: vec!["http://h/7".into()],
                ..Default::default()
            },
        ),
        (
            "state with no match",
            LogFilter {
                states: vec![LogState::Failed],
                ..Default::default()
            },
        ),
        (
            "old date window",
            LogFilter {
                from_date: Some(1000),
                to_date: Some(1100),
                ..Default::default()
            },
        ),
    ];
    for (name, f) in cases {
        let started = std::time::Instant::now();
        let page = store.list_logs("u", f, None, 100).await.unwrap();
        let took = started.elapsed();
        println!("{name}: {} entries in {took:?}", page.entries.len());
        assert!(
            took < std::time::Duration::from_millis(200),
            "{name}: {took:?}"
        );
    }
}

/// Purging the log walks the (user, state, time) index too: the per-user
/// and per-state delete and the steps to the next user and state never
/// scan the table; the key rows go by their time index.
#[test]
fn purging_the_log_walks_an_index() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), Durability::Normal).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("qstash.db")).unwrap();
    for sql in [
        "SELECT MIN(user_id) FROM events WHERE user_id > 'u'",
        "SELECT MIN(state) FROM events WHERE user_id = 'u' AND state > 'A'",
        "DELETE FROM events WHERE user_id = 'u' AND state = 'ACTIVE' AND time < 5",
        "DELETE FROM event_key_hashes WHERE time < 5",
    ] {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter()
                .all(|s| s.contains("USING") && s.contains("INDEX")),
            "{sql}: {plan:?}"
        );
    }
}

#[tokio::test]
async fn a_filter_no_index_answers_pages_through_a_large_log_in_bounded_steps() {
    // More entries than two scan budgets: a host filter that matches only
    // the oldest and a middle entry must be answered page by page, each
    // page examining at most a budget of rows, never the whole log.
    let (_dir, store) = open().await;
    let n = 2 * SCAN_BUDGET + 1_000;
    let rare = [0, SCAN_BUDGET + 500];
    let all: Vec<_> = (0..n)
        .map(|i| {
            let host = if rare.contains(&i) { "rare" } else { "common" };
            let mut m = message(
                &format!("m{i:05}"),
                &format!("http://{host}.example/p"),
                &[],
            );
            m.created_at = i as i64;
            new(m)
        })
        .collect();
    for chunk in all.chunks(2_000) {
        store.insert_messages(chunk.to_vec(), 0).await.unwrap();
    }
    let f = LogFilter {
        host: vec!["rare.example".into()],
        ..Default::default()
    };
    let (mut found, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = store.list_logs("u", f.clone(), cursor, 10).await.unwrap();
        pages += 1;
        found.extend(page.entries.into_iter().map(|e| e.message.id));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(found, vec!["m05500".to_string(), "m00000".to_string()]);
    assert_eq!(pages, 3, "{n} entries at {SCAN_BUDGET} rows a page");
    // A filter the index answers is one walk, not cut short.
    let page = store
        .list_logs("u", LogFilter::default(), None, 1_000)
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1_000);
    assert_eq!(page.entries[0].message.id, format!("m{:05}", n - 1));
}

/// The purge drops every log entry before the cutoff, of every user and in
/// every state, and nothing after it; a listing of several states merges
/// them newest first.
#[tokio::test]
async fn purging_drops_log_entries_before_the_cutoff_of_every_user_and_state() {
    let (_dir, store) = open().await;
    // A CREATED entry is at the message's creation time.
    let at = |id: &str, user: &str, created_at| {
        let mut m = message(id, &format!("http://{id}/x"), &[]);
        m.user_id = user.into();
        m.created_at = created_at;
        new(m)
    };
    store
        .insert_messages(vec![at("a", "u", 10), at("c", "v", 10)], 10)
        .await
        .unwrap();
    assert_eq!(store.claim_due(20, 10).await.unwrap().len(), 2);
    store
        .insert_messages(vec![at("b", "u", 30)], 30)
        .await
        .unwrap();
    let list = |user: &'static str, states: Vec<LogState>| {
        let store = store.clone();
        async move {
            let f = LogFilter {
                states,
                ..Default::default()
            };
            let page = store.list_logs(user, f, None, 100).await.unwrap();
            page.entries
                .into_iter()
                .map(|e| (e.message.id, e.state, e.time))
                .collect::<Vec<_>>()
        }
    };
    let created_or_active = vec![LogState::Created, LogState::Active];
    assert_eq!(
        list("u", created_or_active.clone()).await,
        vec![
            ("b".to_string(), LogState::Created, 30),
            ("a".to_string(), LogState::Active, 20),
            ("a".to_string(), LogState::Created, 10),
        ]
    );
    assert_eq!(list("u", vec![]).await.len(), 3);
    assert_eq!(list("v", vec![]).await.len(), 2);

    let purged = store.purge(100, 25).await.unwrap();
    assert_eq!(purged.events, 4, "a's and c's CREATED and ACTIVE");
    assert_eq!(
        list("u", vec![]).await,
        vec![("b".to_string(), LogState::Created, 30)]
    );
    assert_eq!(list("u", created_or_active).await.len(), 1);
    assert!(list("v", vec![]).await.is_empty());
}

/// Paging through the merged per-state walks in small pages, over entries
/// of several states at equal times, meets every entry once, newest first,
/// with and without a date window.
#[tokio::test]
async fn paging_through_several_states_sees_each_entry_once_in_order() {
    let (_dir, store) = open().await;
    // Twelve CREATED entries, three per time 0..=3, then six ACTIVE ones
    // all at time 2: the states interleave and times tie.
    let batch: Vec<_> = (0..12)
        .map(|i| {
            let mut m = message(&format!("m{i:02}"), "http://a/x", &[]);
            m.created_at = i / 3;
            new(m)
        })
        .collect();
    store.insert_messages(batch, 0).await.unwrap();
    assert_eq!(store.claim_due(2, 6).await.unwrap().len(), 6);
    let everything = store
        .list_logs("u", LogFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(everything.entries.len(), 18);
    for window in [(None, None), (Some(1), Some(2)), (Some(2), None)] {
        let f = LogFilter {
            from_date: window.0,
            to_date: window.1,
            ..Default::default()
        };
        let expected: Vec<_> = everything
            .entries
            .iter()
            .filter(|e| window.0.is_none_or(|from| e.time >= from))
            .filter(|e| window.1.is_none_or(|to| e.time <= to))
            .map(|e| (e.message.id.clone(), e.state))
            .collect();
        let (mut seen, mut times, mut cursor) = (Vec::new(), Vec::new(), None);
        loop {
            let page = store.list_logs("u", f.clone(), cursor, 2).await.unwrap();
            for e in &page.entries {
                seen.push((e.message.id.clone(), e.state));
                times.push(e.time);
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{window:?}");
        assert!(times.windows(2).all(|t| t[0] >= t[1]), "{times:?}");
    }
    // ... and so does a listing of several states.
    let f = LogFilter {
        states: vec![LogState::Active, LogState::Created],
        ..Default::default()
    };
    let (mut seen, mut cursor) = (HashSet::new(), None);
    loop {
        let page = store.list_logs("u", f.clone(), cursor, 4).await.unwrap();
        for e in page.entries {
            assert!(seen.insert((e.message.id, e.state)), "listed twice");
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 18);
}

/// A plain connection to a store's database, which may still be closing
/// (its writer thread finishes on its own): it waits for the lock.
fn raw(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("qstash.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// The message ids of a page, in order.
fn page_ids(p: LogPage) -> Vec<String> {
    p.entries.into_iter().map(|e| e.message.id).collect()
}

/// SQLite finds a key's entries by a 64-bit hash of user and key, which
/// can collide: forged rows under the hashes of one URL and one label,
/// pointing at another message's entries and another user's, list none
/// of them.
#[tokio::test]
async fn a_colliding_key_hash_lists_no_other_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let a = message("a", "http://a/x", &["red"]);
    let b = message("b", "http://b/x", &["green"]);
    let mut c = message("c", "http://a/x", &["red"]);
    c.user_id = "v".into();
    store
        .insert_messages(vec![new(a), new(b), new(c)], 0)
        .await
        .unwrap();
    drop(store);
    let conn = raw(dir.path());
    for key in ["url:http://a/x", "label:red"] {
        let forged = conn
            .execute(
                "INSERT OR IGNORE INTO event_key_hashes (hash, time, seq)
                 SELECT ?1, time, seq FROM events WHERE message_id IN ('b', 'c')",
                [logs::key_hash("u", key)],
            )
            .unwrap();
        assert_eq!(forged, 2);
    }
    drop(conn);
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    for f in [
        LogFilter {
            url: vec!["http://a/x".into()],
            ..Default::default()
        },
        LogFilter {
            label: vec!["red".into()],
            ..Default::default()
        },
    ] {
        let page = store.list_logs("u", f.clone(), None, 10).await.unwrap();
        assert_eq!(page_ids(page), ["a"], "{f:?}");
    }
}

/// Migration 8 hashes the keys a database stored as text: a database
/// put back into the older layout lists the same entries by URL and
/// label after it is opened again.
#[tokio::test]
async fn keys_stored_as_text_are_hashed_by_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let batch = (0..5)
        .map(|i| {
            let url = if i % 2 == 0 {
                "http://a/x"
            } else {
                "http://b/x"
            };
            let mut m = message(&format!("m{i}"), url, &["red"]);
            m.created_at = i;
            new(m)
        })
        .collect();
    store.insert_messages(batch, 0).await.unwrap();
    drop(store);
    let conn = raw(dir.path());
    conn.execute_batch(
        "CREATE TABLE event_keys (user_id TEXT NOT NULL, key TEXT NOT NULL, time INTEGER NOT NULL,
             seq INTEGER NOT NULL, PRIMARY KEY (user_id, key, time, seq)) WITHOUT ROWID;
         CREATE INDEX event_keys_time ON event_keys(time);
         INSERT INTO event_keys SELECT e.user_id, 'url:' || m.url, e.time, e.seq
             FROM events e JOIN messages m ON m.id = e.message_id;
         INSERT INTO event_keys SELECT e.user_id, 'label:red', e.time, e.seq FROM events e;
         DROP TABLE event_key_hashes;
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let by_url = LogFilter {
        url: vec!["http://a/x".into()],
        ..Default::default()
    };
    let page = store.list_logs("u", by_url, None, 10).await.unwrap();
    assert_eq!(page_ids(page), ["m4", "m2", "m0"]);
    let by_label = LogFilter {
        label: vec!["red".into()],
        ..Default::default()
    };
    let page = store.list_logs("u", by_label, None, 10).await.unwrap();
    assert_eq!(page_ids(page), ["m4", "m3", "m2", "m1", "m0"]);
    drop(store);
    let conn = raw(dir.path());
    let old: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'event_keys%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the text keys and their index are gone");
}

/// A new data directory's log has no `AUTOINCREMENT` (migration 9), so
/// a seq is used again once the whole log is purged. A key row that
/// outlived its entry (keys are purged in a step of their own) then names
/// nothing: listings join key rows on the time as well as the seq, and the
/// new entry is younger than the purged one.
#[tokio::test]
async fn a_key_row_that_outlived_its_entry_names_no_new_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let mut old = message("old", "http://a/x", &[]);
    old.created_at = 1;
    store.insert_messages(vec![new(old)], 1).await.unwrap();
    drop(store);
    let conn = raw(dir.path());
    let schema: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!schema.contains("AUTOINCREMENT"), "{schema}");
    conn.execute("DELETE FROM events", []).unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let mut young = message("young", "http://a/x", &[]);
    young.created_at = 5;
    store.insert_messages(vec![new(young)], 5).await.unwrap();
    let by_url = LogFilter {
        url: vec!["http://a/x".into()],
        ..Default::default()
    };
    let page = store.list_logs("u", by_url, None, 10).await.unwrap();
    assert_eq!(page_ids(page), ["young"]);
    drop(store);
    let conn = raw(dir.path());
    let (keys, seqs): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM event_key_hashes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (keys, seqs),
        (2, 1),
        "the young entry took the old one's seq"
    );
}
