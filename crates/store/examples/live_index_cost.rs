//! What the `messages_pending_user` index (the console's live-message listing)
//! costs the write path: stores, claims and delivers the same messages
//! with the index and with it dropped, alternating, and prints the times.
//!
//! cargo run --release -p qstash-store --example live_index_cost [messages] [rounds]

use std::time::Instant;

use qstash_core::{Message, MessageSpec, MessageState};
use qstash_store::sqlite::{Durability, SqliteStore};
use qstash_store::*;

fn message(i: usize) -> NewMessage {
    NewMessage {
        message: Message {
            id: format!("msg_{i:08}"),
            user_id: format!("user{}", i % 4),
            spec: MessageSpec {
                url: "http://127.0.0.1:9/hook".into(),
                method: "POST".into(),
                max_retries: 3,
                ..Default::default()
            },
            body: vec![b'x'; 1024].into(),
            created_at: 0,
            not_before: 0,
            due_at: 0,
            retried: 0,
            state: MessageState::Pending,
        },
        dedup_key: None,
    }
}

async fn run(n: usize, with_index: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    if !with_index {
        let conn = rusqlite::Connection::open(dir.path().join("qstash.db")).unwrap();
        conn.execute_batch("DROP INDEX messages_pending_user")
            .unwrap();
    }
    let start = Instant::now();
    // Concurrent batches of 100, as under load the writer's group commit
    // takes several callers' jobs at once.
    let mut tasks = Vec::new();
    for b in 0..n / 100 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let batch: Vec<_> = (b * 100..b * 100 + 100).map(message).collect();
            store.insert_messages(batch, 0).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    loop {
        let claimed = store.claim_due(1, 500).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        let outcomes = claimed
            .iter()
            .map(|m| Outcome {
                message_id: m.id.clone(),
                at: 2,
                kind: OutcomeKind::Delivered,
                response: AttemptResponse::default(),
                dlq_id: None,
                callbacks: vec![],
                fails_run: None,
            })
            .collect();
        store.record_outcomes(outcomes).await.unwrap();
    }
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        with.push(run(n, true).await);
        without.push(run(n, false).await);
        println!(
            "round {round}: with index {:.3} s, without {:.3} s",
            with[round], without[round]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, wo) = (median(&mut with), median(&mut without));
    println!(
        "{n} messages stored, claimed and delivered; median of {rounds}: with index {w:.3} s ({:.0}/s), without {wo:.3} s ({:.0}/s); best: {:.3} s vs {:.3} s",
        n as f64 / w,
        n as f64 / wo,
        with[0],
        without[0]
    );
}
