//! The store against its contract: SQLite on a real database file, or
//! PostgreSQL with `QSTASH_TEST_BACKEND=postgres`.

use qstash_core::signing::SigningKeys;
use qstash_core::{Message, MessageSpec, MessageState};
use qstash_store::*;

mod common;
use common::{open, reopen};

fn message(id: &str, user: &str, due_at: i64) -> Message {
    Message {
        id: id.into(),
        user_id: user.into(),
        spec: MessageSpec {
            url: "http://127.0.0.1/x".into(),
            method: "POST".into(),
            max_retries: 3,
            ..Default::default()
        },
        body: b"hi".to_vec().into(),
        created_at: 0,
        not_before: due_at,
        due_at,
        retried: 0,
        state: MessageState::Pending,
    }
}

fn new(id: &str, due_at: i64) -> NewMessage {
    NewMessage {
        message: message(id, "u", due_at),
        dedup_key: None,
    }
}

#[tokio::test]
async fn claims_only_due_messages_earliest_first() {
    let (_dir, store) = open().await;
    store
        .insert_messages(vec![new("b", 20), new("a", 10), new("c", 1000)], 0)
        .await
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), Some(10));
    let claimed = store.claim_due(100, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert!(
        store.claim_due(100, 10).await.unwrap().is_empty(),
        "a claimed message is not claimed twice"
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(1000));
}

#[tokio::test]
async fn outcomes_move_messages_through_their_states() {
    let (_dir, store) = open().await;
    store
        .insert_messages(vec![new("a", 0), new("b", 0)], 0)
        .await
        .unwrap();
    store.claim_due(0, 10).await.unwrap();
    let resp = AttemptResponse {
        status: 500,
        ..Default::default()
    };
    store
        .record_outcomes(vec![
            Outcome {
                message_id: "a".into(),
                at: 5,
                kind: OutcomeKind::Delivered,
                response: AttemptResponse {
                    status: 200,
                    ..Default::default()
                },
                dlq_id: None,
                callbacks: vec![],
                fails_run: None,
            },
            Outcome {
                message_id: "b".into(),
                at: 5,
                kind: OutcomeKind::Retry {
                    next_due: 50,
                    error: "500".into(),
                },
                response: resp,
                dlq_id: None,
                callbacks: vec![],
                fails_run: None,
            },
        ])
        .await
        .unwrap();
    assert!(
        store.get_message("u", "a").await.unwrap().is_none(),
        "a delivered message is gone"
    );
    let b = store.get_message("u", "b").await.unwrap().unwrap();
    assert_eq!(
        (b.state, b.retried, b.due_at),
        (MessageState::Pending, 1, 50)
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(50));
}

#[tokio::test]
async fn dedup_key_answers_the_first_id_within_the_window() {
    let (_dir, store) = open().await;
    let with_key = |id: &str| NewMessage {
        message: message(id, "u", 0),
        dedup_key: Some("k".into()),
    };
    let first = store.insert_messages(vec![with_key("a")], 0).await.unwrap();
    let second = store
        .insert_messages(vec![with_key("b")], 1000)
        .await
        .unwrap();
    assert_eq!(first, vec![Inserted::New("a".into())]);
    assert_eq!(second, vec![Inserted::Duplicate("a".into())]);
    let later = store
        .insert_messages(vec![with_key("c")], 11 * 60 * 1000)
        .await
        .unwrap();
    assert_eq!(later, vec![Inserted::New("c".into())]);
}

#[tokio::test]
async fn cancel_by_ids_counts_only_live_messages_of_the_user() {
    let (_dir, store) = open().await;
    store
        .insert_messages(vec![new("a", 0), new("b", 0), new("c", 0)], 0)
        .await
        .unwrap();
    let other = NewMessage {
        message: message("x", "other", 0),
        dedup_key: None,
    };
    store.insert_messages(vec![other], 0).await.unwrap();
    let req = CancelRequest {
        message_ids: vec!["a".into(), "x".into(), "nope".into()],
        ..Default::default()
    };
    assert_eq!(store.cancel("u", req, 1).await.unwrap().cancelled, 1);
    let all = store
        .cancel(
            "u",
            CancelRequest {
                count: Some(1),
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(all.cancelled, 1);
    assert!(
        all.more_after.is_some(),
        "count stopped it before the last match"
    );
    assert_eq!(
        store
            .cancel("u", CancelRequest::default(), 1)
            .await
            .unwrap()
            .cancelled,
        1
    );
    assert!(store.get_message("other", "x").await.unwrap().is_some());
}

#[tokio::test]
async fn cancel_by_filter_takes_live_messages_oldest_first() {
    let (_dir, store) = open().await;
    let at = |id: &str, url: &str, due_at: i64| {
        let mut m = message(id, "u", due_at);
        m.spec.url = url.into();
        NewMessage {
            message: m,
            dedup_key: None,
        }
    };
    // Stored in this order; "a" is in flight when the cancel comes, "d"
    // is cancelled already.
    let messages = vec![
        at("a", "http://h1.example/p", 0),
        at("b", "http://h2.example/p", 5000),
        at("c", "http://h1.example/q", 5000),
        at("d", "http://h1.example/p", 5000),
        at("e", "http://h1.example/p", 5000),
    ];
    store.insert_messages(messages, 0).await.unwrap();
    assert_eq!(store.claim_due(0, 10).await.unwrap().len(), 1);
    let by_ids = CancelRequest {
        message_ids: vec!["d".into()],
        ..Default::default()
    };
    assert_eq!(store.cancel("u", by_ids, 1).await.unwrap().cancelled, 1);
    let host = |count| CancelRequest {
        filter: MessageFilter {
            host: vec!["h1.example".into()],
            path: vec!["/p".into()],
            ..Default::default()
        },
        count,
        ..Default::default()
    };
    let first = store.cancel("u", host(Some(1)), 2).await.unwrap();
    assert_eq!(first.cancelled, 1);
    assert_eq!(
        first.more_after.as_deref(),
        Some("a"),
        "oldest first, in flight included"
    );
    let rest = store.cancel("u", host(None), 3).await.unwrap();
    assert_eq!(rest.cancelled, 1, "only e is left on h1/p");
    assert_eq!(store.cancel("u", host(None), 4).await.unwrap().cancelled, 0);
    for live in ["b", "c"] {
        let m = store.get_message("u", live).await.unwrap().unwrap();
        assert_eq!(m.state, MessageState::Pending, "{live} does not match");
    }
}

#[tokio::test]
async fn in_flight_messages_return_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path()).await;
        store.insert_messages(vec![new("a", 0)], 0).await.unwrap();
        assert_eq!(store.claim_due(0, 10).await.unwrap().len(), 1);
    }
    let store = reopen(dir.path()).await;
    assert_eq!(store.release_in_flight(7).await.unwrap(), 1);
    assert_eq!(store.claim_due(7, 10).await.unwrap()[0].id, "a");
}

#[tokio::test]
async fn signing_keys_rotate_and_persist() {
    let (_dir, store) = open().await;
    let initial = SigningKeys {
        current: "sig_a".into(),
        next: "sig_b".into(),
    };
    assert_eq!(store.signing_keys("u", &initial).await.unwrap(), initial);
    let rotated = store
        .rotate_signing_keys("u", &initial, "sig_c")
        .await
        .unwrap();
    assert_eq!(
        rotated,
        SigningKeys {
            current: "sig_b".into(),
            next: "sig_c".into()
        }
    );
    assert_eq!(store.signing_keys("u", &initial).await.unwrap(), rotated);
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_all_land() {
    let (_dir, store) = open().await;
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_messages(vec![new(&format!("m{i}"), 0)], 0)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.claim_due(0, 1000).await.unwrap().len(), 500);
}

#[tokio::test]
async fn per_user_claims_stay_within_each_users_room() {
    let (_dir, store) = open().await;
    let of = |id: &str, user: &str, due: i64| NewMessage {
        message: message(id, user, due),
        dedup_key: None,
    };
    store
        .insert_messages(
            vec![
                of("a1", "a", 1),
                of("a2", "a", 2),
                of("a3", "a", 3),
                of("b1", "b", 5),
                of("b2", "b", 6),
                of("c1", "c", 0),
                of("a9", "a", 1000),
            ],
            0,
        )
        .await
        .unwrap();
    // a may start 2, b 1, c none (at its cap, not listed); 10 slots free.
    let rooms = vec![("a".to_string(), 2), ("b".to_string(), 1)];
    let claimed = store.claim_due_of_users(100, rooms, 10).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["a1", "a2", "b1"]);
    // The limit picks the earliest across users.
    let rooms = vec![("a".to_string(), 5), ("b".to_string(), 5)];
    let claimed = store.claim_due_of_users(100, rooms, 2).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["a3", "b2"]);
    let next = store
        .next_due_of_users(vec!["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(next, Some(1000));
    assert_eq!(
        store.next_due_of_users(vec!["c".into()]).await.unwrap(),
        Some(0)
    );
    assert_eq!(store.next_due_of_users(vec![]).await.unwrap(), None);
}

#[tokio::test]
async fn url_group_default_headers_live_and_die_with_the_group() {
    let (_dir, store) = open().await;
    let headers = vec![("Upstash-Retries".to_string(), "0".to_string())];
    assert!(!store
        .set_url_group_headers("u", "g", headers.clone())
        .await
        .unwrap());
    let endpoint = qstash_core::url_group::Endpoint {
        name: None,
        url: "http://127.0.0.1/x".into(),
    };
    store
        .upsert_endpoints("u", "g", vec![endpoint.clone()], 0)
        .await
        .unwrap();
    assert!(store
        .set_url_group_headers("u", "g", headers.clone())
        .await
        .unwrap());
    assert_eq!(store.url_group_headers("u", "g").await.unwrap(), headers);
    assert!(store
        .url_group_headers("other", "g")
        .await
        .unwrap()
        .is_empty());
    store.delete_url_group("u", "g").await.unwrap();
    store
        .upsert_endpoints("u", "g", vec![endpoint], 0)
        .await
        .unwrap();
    assert!(store.url_group_headers("u", "g").await.unwrap().is_empty());
}
