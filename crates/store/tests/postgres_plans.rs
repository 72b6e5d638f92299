//! On PostgreSQL, the due timer, the gate's lines, the log listing, the
//! DLQ listing and the console's live-message listing keep their index discipline: with a realistically filled and
//! analyzed database, `EXPLAIN` shows no sequential scan of a big table and
//! no sort of more than a page, for every filter shape. PostgreSQL has no
//! index hints, so this is what holds the planner to it. Runs with
//! `QSTASH_TEST_BACKEND=postgres` (scripts/test does both backends).

use qstash_core::dlq::{DlqCursor, DlqFilter, DlqOrder, DlqQuery};
use qstash_core::live::LiveCursor;
use qstash_core::log::{LogCursor, LogFilter};
use qstash_core::message::{LogState, MessageFilter};
use qstash_store::postgres::{dlq, gates, live, logs, messages, PgOptions, PgStore};
use qstash_testkit::backend;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

const BIG_TABLES: [&str; 4] = ["messages", "events", "event_keys", "dlq"];

/// A schema with tables made by the store, filled with 60k messages of
/// 3 users over queues, keys, labels and URLs, their log and DLQ entries,
/// then analyzed (only these: a bare ANALYZE would lock every table of
/// every test schema in the database).
async fn filled() -> Option<Client> {
    if !backend::postgres() {
        eprintln!("postgres_plans: skipped (QSTASH_TEST_BACKEND is not postgres)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = backend::database_url_for(dir.path()).unwrap();
    drop(
        PgStore::connect(&PgOptions::new(url.clone()))
            .await
            .unwrap(),
    );
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "INSERT INTO messages (id, user_id, state, due_at, created_at, not_before, retried,
                updated_at, url, topic_name, queue_name, schedule_id, flow_control_key, caller_ip,
                labels, spec, body)
             SELECT 'm' || i, 'u' || (i % 3),
                (ARRAY['pending', 'active', 'delivered', 'failed', 'cancelled'])[1 + i % 5],
                i * 10, i * 10, i * 10, 0, i * 10,
                'http://h' || (i % 50) || '.example/p' || (i % 7),
                CASE WHEN i % 11 = 0 THEN 'group' || (i % 4) END,
                CASE WHEN i % 13 = 0 THEN 'queue' || (i % 5) END,
                CASE WHEN i % 17 = 0 THEN 'sched' || (i % 3) END,
                CASE WHEN i % 19 = 0 THEN 'key' || (i % 9) END,
                '10.0.0.' || (i % 200),
                ',label' || (i % 23) || ',',
                '{}', 'body'
             FROM generate_series(1, 60000) AS i;
             INSERT INTO events (user_id, message_id, time, state)
             SELECT 'u' || (i % 3), 'm' || i, i * 10 + s, (ARRAY['CREATED', 'ACTIVE', 'DELIVERED'])[s]
             FROM generate_series(1, 60000) AS i, generate_series(1, 3) AS s;
             INSERT INTO event_keys (user_id, key, time, seq)
             SELECT e.user_id, k, e.time, e.seq
             FROM events e, LATERAL unnest(ARRAY['url:http://h' || (e.seq % 50) || '.example/p1',
                'label:label' || (e.seq % 23)]) AS k;
             INSERT INTO dlq (dlq_id, user_id, message_id, created_at, response_status,
                response_header, response_body)
             SELECT (i * 10) || '-' || i, 'u' || (i % 3), 'm' || i, i * 10, 500, '{}', ''
             FROM generate_series(1, 60000, 5) AS i;
             ANALYZE messages, events, event_keys, dlq;",
        )
        .await
        .unwrap();
    Some(client)
}

async fn plan(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> String {
    let rows = c.query(&format!("EXPLAIN {sql}"), params).await.unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_no_scan(what: &str, plan: &str) {
    for table in BIG_TABLES {
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "{what} scans {table}:\n{plan}"
        );
    }
}

/// No Sort node anywhere in the plan. A node's line is `Sort  (cost=…` or
/// `->  Sort  (cost=…` (two spaces after the arrow); a `Merge Append`'s
/// `Sort Key: …` line only says which order it keeps.
fn assert_no_sort(what: &str, plan: &str) {
    let sorts = plan.lines().any(|l| {
        let node = l.trim_start().trim_start_matches("->").trim_start();
        (node.starts_with("Sort ") && !node.starts_with("Sort Key"))
            || node.starts_with("Incremental Sort")
    });
    assert!(!sorts, "{what} sorts:\n{plan}");
}

#[tokio::test]
async fn the_timer_and_the_lines_walk_their_indexes() {
    let Some(c) = filled().await else { return };
    let limit = 256i64;
    let now = 300_000i64;
    let node = "node-a".to_string();
    for (what, sql, params) in [
        ("next due", messages::NEXT_DUE.to_string(), vec![]),
        (
            "claim",
            messages::claim_due_sql(),
            vec![&now as &(dyn ToSql + Sync), &limit, &node],
        ),
    ] {
        let p = plan(&c, &sql, &params).await;
        assert_no_scan(what, &p);
        assert!(p.contains("messages_due_plain"), "{what}:\n{p}");
    }
    let (u, q, k) = ("u1".to_string(), "queue2".to_string(), "key3".to_string());
    let p = plan(&c, gates::QUEUE_LINE, &[&u, &q, &1i64]).await;
    assert_no_scan("queue line", &p);
    assert_no_sort("queue line", &p);
    let p = plan(&c, gates::KEY_LINE, &[&u, &k, &10i64]).await;
    assert_no_scan("key line", &p);
    assert_no_sort("key line", &p);
}

#[tokio::test]
async fn every_log_query_walks_an_index() {
    let Some(c) = filled().await else { return };
    let one = |s: &str| vec![s.to_string()];
    let filters = [
        LogFilter::default(),
        LogFilter {
            url: one("http://h7.example/p1"),
            ..Default::default()
        },
        LogFilter {
            label: one("label4"),
            from_date: Some(1),
            to_date: Some(200_000),
            ..Default::default()
        },
        LogFilter {
            topic_name: one("group1"),
            queue_name: one("queue2"),
            states: vec![LogState::Failed],
            ..Default::default()
        },
        LogFilter {
            schedule_id: one("sched1"),
            ..Default::default()
        },
        LogFilter {
            states: vec![LogState::Delivered],
            caller_ip: one("10.0.0.4"),
            ..Default::default()
        },
        LogFilter {
            from_date: Some(5),
            ..Default::default()
        },
        LogFilter {
            host: one("h3.example"),
            path: one("/p1"),
            ..Default::default()
        },
        LogFilter {
            message_ids: vec!["m10".into(), "m11".into()],
            ..Default::default()
        },
        LogFilter {
            states: vec![LogState::Created, LogState::Failed],
            from_date: Some(1),
            ..Default::default()
        },
    ];
    for f in filters {
        for cursor in [
            None,
            Some(LogCursor {
                time: 300_000,
                seq: 9,
            }),
        ] {
            let (sql, w) = logs::page_sql("u1", &f, cursor, 101);
            let p = plan(&c, &sql, &w.params()).await;
            assert_no_scan(&format!("{f:?}"), &p);
            if f.message_ids.is_empty() {
                assert_no_sort(&format!("{f:?}"), &p);
            }
        }
    }
}

/// The log's purge steps through users and their states, and deletes in
/// batches, along the (user, state, time) index.
#[tokio::test]
async fn the_log_purge_walks_an_index() {
    let Some(c) = filled().await else { return };
    let (user, state) = ("u1".to_string(), "ACTIVE".to_string());
    let p = plan(&c, messages::NEXT_LOG_STATE, &[&user, &String::new()]).await;
    assert_no_scan("next log state", &p);
    let purge = messages::batch_delete(messages::PURGE_LOG_STATE);
    let p = plan(&c, &purge, &[&5_000i64, &user, &state, &0i64]).await;
    assert!(p.contains("Tid Scan"), "log purge:\n{p}");
    let p = plan(&c, &purge, &[&5_000i64, &user, &state, &1_000i64]).await;
    assert_no_scan("log purge", &p);
    assert_no_sort("log purge", &p);
}

/// Every batch of every purge of a big table finds its rows along an
/// index and deletes them by TID, never by scanning the table once per
/// batch (dedup keys are few: no fill here).
#[tokio::test]
async fn every_purge_batch_walks_an_index() {
    let Some(c) = filled().await else { return };
    // A purge pass in the steady state: the oldest sliver of each table.
    let cut = 1_000i64;
    for (what, purge) in [
        ("finished", messages::PURGE_FINISHED),
        ("keys", logs::PURGE_KEYS),
        ("dlq", dlq::PURGE_ENTRIES),
        ("failed", dlq::PURGE_FAILED),
    ] {
        let p = plan(&c, &messages::batch_delete(purge), &[&5_000i64, &cut]).await;
        assert_no_scan(what, &p);
        assert!(p.contains("Tid Scan"), "{what}:\n{p}");
    }
    // Dedup keys are few and checked again on the row deleted: an index
    // walk or a TID scan, never a whole-table scan of a filled table.
    let p = plan(&c, &messages::dedup_batch_delete(), &[&5_000i64, &cut]).await;
    assert_no_scan("dedup", &p);
    // Once to select the batch, once more on the rows deleted.
    assert!(p.matches("expires_at <=").count() >= 2, "{p}");
}

#[tokio::test]
async fn every_dlq_query_walks_an_index() {
    let Some(c) = filled().await else { return };
    let cursor = DlqCursor::parse("300000-30000");
    let queries = [
        DlqQuery {
            count: 100,
            ..Default::default()
        },
        DlqQuery {
            count: 100,
            cursor: cursor.clone(),
            order: DlqOrder::LatestFirst,
            ..Default::default()
        },
        DlqQuery {
            count: 100,
            cursor,
            filter: DlqFilter {
                url: vec!["http://h3.example/p1".into()],
                response_status: vec![500],
                from_date: Some(10),
                ..Default::default()
            },
            ..Default::default()
        },
        DlqQuery {
            count: 100,
            filter: DlqFilter {
                dlq_ids: vec!["50-5".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    ];
    for q in queries {
        let (sql, w) = dlq::page_sql("u1", &q);
        let p = plan(&c, &sql, &w.params()).await;
        assert_no_scan(&format!("{q:?}"), &p);
        if q.filter.dlq_ids.is_empty() {
            assert_no_sort(&format!("{q:?}"), &p);
        }
    }
}

#[tokio::test]
async fn the_live_listing_walks_the_live_index() {
    let Some(c) = filled().await else { return };
    let one = |s: &str| vec![s.to_string()];
    let filters = [
        MessageFilter::default(),
        MessageFilter {
            queue_name: one("queue2"),
            label: one("label4"),
            ..Default::default()
        },
        MessageFilter {
            host: one("h3.example"),
            from_date: Some(10),
            to_date: Some(400_000),
            ..Default::default()
        },
    ];
    for f in filters {
        for cursor in [None, Some(LiveCursor(30_000))] {
            let (sql, w) = live::page_sql("u1", &f, cursor, 26);
            let p = plan(&c, &sql, &w.params()).await;
            // Only live rows are read: pending ones along
            // messages_pending_user (or, for a queue filter, the queue's
            // own line), in-flight ones along messages_claims. A
            // selective filter the planner may read whole (the user's
            // pending rows) and sort, as the logs' weak spot.
            assert_no_scan(&format!("{f:?}"), &p);
            assert!(p.contains("messages_claims"), "{f:?}:\n{p}");
            let index = if f.queue_name.is_empty() {
                "messages_pending_user"
            } else {
                "messages_queue_line"
            };
            assert!(p.contains(index), "{f:?}:\n{p}");
            // The plain page reads the pending index in order (what is
            // sorted is the in-flight part: at most --max-in-flight rows in
            // a real server, though this fill has 12,000).
            if f == MessageFilter::default() {
                let ordered = "Index Scan Backward using messages_pending_user";
                assert!(p.contains(ordered), "{f:?}:\n{p}");
            }
        }
    }
}
