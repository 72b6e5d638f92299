//! The console's reads (SQLite, or PostgreSQL with
//! `QSTASH_TEST_BACKEND=postgres`): live messages paged newest first along
//! their own index, counts by kind, and the DLQ size.

use qstash_core::{Message, MessageSpec, MessageState};
use qstash_store::sqlite::{live, Durability, SqliteStore};
use qstash_store::*;

mod common;

fn message(id: &str, user: &str, due_at: i64) -> NewMessage {
    NewMessage {
        message: Message {
            id: id.into(),
            user_id: user.into(),
            spec: MessageSpec {
                url: format!("http://sink.test/{id}"),
                method: "POST".into(),
                max_retries: 0,
                labels: vec![format!("l-{id}")],
                ..Default::default()
            },
            body: b"hi".to_vec().into(),
            created_at: 0,
            not_before: due_at,
            due_at,
            retried: 0,
            state: MessageState::Pending,
        },
        dedup_key: None,
    }
}

fn outcome(id: &str, kind: OutcomeKind) -> Outcome {
    Outcome {
        message_id: id.into(),
        at: 10,
        kind,
        response: AttemptResponse {
            status: 500,
            ..Default::default()
        },
        dlq_id: None,
        callbacks: vec![],
        fails_run: None,
    }
}

async fn ids(store: &dyn Store, user: &str, f: MessageFilter, per_page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_live_messages(user, f.clone(), cursor, per_page)
            .await
            .unwrap();
        assert!(page.messages.len() <= per_page);
        out.extend(page.messages.into_iter().map(|m| m.id));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn live_messages_are_paged_newest_first_without_finished_or_foreign_ones() {
    let (_dir, store) = common::open().await;
    let store = store.as_ref();
    // a0..a9 due now, d0..d2 delayed, b0 of another user.
    let mut batch: Vec<NewMessage> = (0..10).map(|i| message(&format!("a{i}"), "u", 0)).collect();
    batch.extend((0..3).map(|i| message(&format!("d{i}"), "u", 1_000_000)));
    batch.push(message("b0", "other", 0));
    store.insert_messages(batch, 0).await.unwrap();

    // Claim the due ones; a0 is delivered, a1 fails for good (DLQ), a2
    // waits for a retry; the rest stay in flight.
    let claimed = store.claim_due(5, 100).await.unwrap();
    assert_eq!(claimed.len(), 11);
    store
        .record_outcomes(vec![
            outcome("a0", OutcomeKind::Delivered),
            outcome(
                "a1",
                OutcomeKind::Failed {
                    error: "500".into(),
                },
            ),
            outcome(
                "a2",
                OutcomeKind::Retry {
                    next_due: 20,
                    error: "500".into(),
                },
            ),
        ])
        .await
        .unwrap();

    let all = ids(store, "u", MessageFilter::default(), 4).await;
    let want: Vec<String> = [
        "d2", "d1", "d0", "a9", "a8", "a7", "a6", "a5", "a4", "a3", "a2",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(all, want, "newest first, each once, live only");
    assert_eq!(
        ids(store, "other", MessageFilter::default(), 4).await,
        vec!["b0"]
    );

    let by_label = MessageFilter {
        label: vec!["l-a5".into(), "l-d1".into()],
        ..Default::default()
    };
    assert_eq!(ids(store, "u", by_label, 1).await, vec!["d1", "a5"]);
    let by_path = MessageFilter {
        path: vec!["/a7".into()],
        ..Default::default()
    };
    assert_eq!(ids(store, "u", by_path, 10).await, vec!["a7"]);

    let counts = store
        .count_live_messages("u", MessageFilter::default(), 15, 100)
        .await
        .unwrap();
    assert_eq!(
        counts,
        LiveCounts {
            waiting: 0,
            delayed: 3,
            retrying: 1,
            in_flight: 7,
            capped: false,
        }
    );
    assert_eq!(counts.total(), 11);
    let capped = store
        .count_live_messages("u", MessageFilter::default(), 15, 2)
        .await
        .unwrap();
    assert!(capped.capped);
    // The cap bounds the pending rows read (plus one that tells); the
    // in-flight ones are bounded by --max-in-flight and all counted.
    assert_eq!(capped.total(), 3 + 7);
    assert_eq!(capped.in_flight, 7);

    assert_eq!(store.count_dlq("u", 100).await.unwrap(), 1);
    assert_eq!(store.count_dlq("other", 100).await.unwrap(), 0);
}

#[test]
fn a_live_page_walks_the_live_index_and_never_sorts() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), Durability::Normal).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("qstash.db")).unwrap();
    qstash_store::sqlite::logs::register_url_functions(&conn).unwrap();
    let one = |v: &str| vec![v.to_string()];
    let filters = [
        MessageFilter::default(),
        MessageFilter {
            queue_name: one("q"),
            label: one("l"),
            ..Default::default()
        },
        MessageFilter {
            host: one("example.org"),
            from_date: Some(3),
            to_date: Some(9),
            ..Default::default()
        },
    ];
    for f in filters {
        for cursor in [None, Some(LiveCursor(77))] {
            let (sql, args) = live::page_sql("u", &f, cursor, 26);
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|s| s.contains("messages_pending_user")),
                "{f:?}: {plan:?}"
            );
            for step in &plan {
                assert!(!step.contains("TEMP B-TREE"), "{f:?} sorts: {plan:?}");
            }
        }
    }
}
