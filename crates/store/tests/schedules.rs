//! The schedule methods of the store (SQLite, or PostgreSQL with
//! `QSTASH_TEST_BACKEND=postgres`): the due index, the versioned fire job
//! (a tick commits once), replace, pause/resume and the start-up catch-up.

use qstash_core::schedule::Schedule;
use qstash_core::{Message, MessageSpec, MessageState};
use qstash_store::*;

mod common;
use common::open;

const MIN: i64 = 60_000;
/// 2025-01-01T12:00:00Z
const NOON: i64 = 1_735_732_800_000;

fn schedule(id: &str, cron: &str, next_fire: i64) -> Schedule {
    Schedule {
        id: id.into(),
        user_id: "u".into(),
        cron: cron.into(),
        destination: "http://127.0.0.1/x".into(),
        spec: MessageSpec {
            method: "POST".into(),
            max_retries: 3,
            schedule_id: Some(id.into()),
            ..Default::default()
        },
        body: b"tick".to_vec(),
        queue_name: None,
        delay_secs: None,
        caller_ip: None,
        created_at: NOON - MIN,
        paused: false,
        next_fire: Some(next_fire),
        last_fire: None,
        last_messages: vec![],
        last_error: None,
    }
}

fn message(id: &str, schedule: &str, due_at: i64) -> NewMessage {
    NewMessage {
        message: Message {
            id: id.into(),
            user_id: "u".into(),
            spec: MessageSpec {
                url: "http://127.0.0.1/x".into(),
                method: "POST".into(),
                schedule_id: Some(schedule.into()),
                ..Default::default()
            },
            body: b"tick".to_vec().into(),
            created_at: due_at,
            not_before: due_at,
            due_at,
            retried: 0,
            state: MessageState::Pending,
        },
        dedup_key: None,
    }
}

fn fire_of(d: &DueSchedule, msg: &str, next: i64) -> ScheduleFire {
    ScheduleFire {
        user_id: d.schedule.user_id.clone(),
        schedule_id: d.schedule.id.clone(),
        version: d.version,
        tick: d.schedule.next_fire.unwrap(),
        next_fire: Some(next),
        fired_at: NOON,
        messages: vec![message(msg, &d.schedule.id, NOON)],
        error: None,
    }
}

#[tokio::test]
async fn due_schedules_come_from_the_index_earliest_first() {
    let (_d, store) = open().await;
    for (id, next) in [("b", NOON + 2), ("a", NOON + 1), ("later", NOON + MIN)] {
        store
            .put_schedule(schedule(id, "* * * * *", next), NOON - MIN)
            .await
            .unwrap();
    }
    assert_eq!(store.next_schedule_at().await.unwrap(), Some(NOON + 1));
    let due = store.due_schedules(NOON + 10, None, 10).await.unwrap();
    let ids: Vec<_> = due.iter().map(|d| d.schedule.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b"]);
    // Paging: after "a", only "b" (same read, no duplicates, no gaps).
    let first = store.due_schedules(NOON + 10, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let rest = store
        .due_schedules(NOON + 10, DueCursor::of(&first[0]), 10)
        .await
        .unwrap();
    let ids: Vec<_> = rest.iter().map(|d| d.schedule.id.as_str()).collect();
    assert_eq!(ids, vec!["b"]);
}

#[tokio::test]
async fn a_tick_commits_once_with_its_messages() {
    let (_d, store) = open().await;
    store
        .put_schedule(schedule("s", "* * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    let due = store.due_schedules(NOON, None, 10).await.unwrap().remove(0);
    assert!(store
        .fire_schedule(fire_of(&due, "m1", NOON + MIN))
        .await
        .unwrap());
    // The same read fired again (a second timer, a retry after a crash
    // that did commit): refused, and its messages are not stored.
    assert!(!store
        .fire_schedule(fire_of(&due, "m2", NOON + MIN))
        .await
        .unwrap());
    assert!(store.get_message("u", "m1").await.unwrap().is_some());
    assert!(store.get_message("u", "m2").await.unwrap().is_none());
    let info = store.get_schedule("u", "s").await.unwrap().unwrap();
    assert_eq!(info.schedule.next_fire, Some(NOON + MIN));
    assert_eq!(info.schedule.last_fire, Some(NOON));
    assert_eq!(info.last_states, vec![("m1".into(), MessageState::Pending)]);
    assert!(store
        .due_schedules(NOON + 1, None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_fire_read_before_a_pause_or_replace_does_not_commit() {
    let (_d, store) = open().await;
    store
        .put_schedule(schedule("s", "* * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    let due = store.due_schedules(NOON, None, 10).await.unwrap().remove(0);
    store
        .set_schedule_paused("u", "s", true, NOON)
        .await
        .unwrap()
        .unwrap();
    assert!(!store
        .fire_schedule(fire_of(&due, "m1", NOON + MIN))
        .await
        .unwrap());
    assert!(store
        .due_schedules(NOON + 10 * MIN, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.next_schedule_at().await.unwrap(), None);

    // Resume: the next tick after now, not the ones passed while paused.
    let resumed = store
        .set_schedule_paused("u", "s", false, NOON + 5 * MIN + 1)
        .await
        .unwrap()
        .unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_fire, Some(NOON + 6 * MIN));

    // A replace while a tick is due keeps the tick due, at a new version.
    let due = store
        .due_schedules(NOON + 6 * MIN, None, 10)
        .await
        .unwrap()
        .remove(0);
    let mut replaced = schedule("s", "0 * * * *", NOON + 60 * MIN);
    replaced.body = Vec::new();
    store.put_schedule(replaced, NOON + 6 * MIN).await.unwrap();
    assert!(!store
        .fire_schedule(fire_of(&due, "m3", NOON + 7 * MIN))
        .await
        .unwrap());
    let again = store
        .due_schedules(NOON + 6 * MIN, None, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.schedule.cron, "0 * * * *");
    assert!(again.schedule.body.is_empty());
    assert_eq!(
        again.schedule.created_at,
        NOON - MIN,
        "createdAt survives a replace"
    );
}

#[tokio::test]
async fn replace_keeps_a_paused_schedule_paused() {
    let (_d, store) = open().await;
    store
        .put_schedule(schedule("s", "* * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    store
        .set_schedule_paused("u", "s", true, NOON - MIN)
        .await
        .unwrap();
    let stored = store
        .put_schedule(schedule("s", "*/5 * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    assert!(stored.paused);
    assert_eq!(stored.next_fire, None);
    assert_eq!(stored.cron, "*/5 * * * *");
}

#[tokio::test]
async fn start_up_fires_recent_missed_ticks_once_and_skips_old_ones() {
    let (_d, store) = open().await;
    // Both last planned to fire at 12:00; the server comes back at 12:03:30.
    store
        .put_schedule(schedule("recent", "* * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    store
        .put_schedule(schedule("hourly", "0 * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    store
        .put_schedule(schedule("future", "* * * * *", NOON + 10 * MIN), NOON - MIN)
        .await
        .unwrap();
    let now = NOON + 3 * MIN + 30_000;
    let c = store.catch_up_schedules(now, MIN).await.unwrap();
    assert_eq!(
        c,
        CatchUp {
            firing: 1,
            skipped: 1
        }
    );
    let next = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .get_schedule("u", id)
                .await
                .unwrap()
                .unwrap()
                .schedule
                .next_fire
        }
    };
    // Every minute: 12:03 is 30 s old, within the 1 min window: it fires
    // (once, for 12:00-12:03 together).
    assert_eq!(next("recent").await, Some(NOON + 3 * MIN));
    // Hourly: 12:00 is 3.5 min old: skipped, next is 13:00.
    assert_eq!(next("hourly").await, Some(NOON + 60 * MIN));
    assert_eq!(next("future").await, Some(NOON + 10 * MIN));
}

#[tokio::test]
async fn schedules_belong_to_their_user() {
    let (_d, store) = open().await;
    store
        .put_schedule(schedule("s", "* * * * *", NOON), NOON - MIN)
        .await
        .unwrap();
    assert!(store.get_schedule("other", "s").await.unwrap().is_none());
    assert!(store.list_schedules("other").await.unwrap().is_empty());
    assert!(!store.delete_schedule("other", "s").await.unwrap());
    assert!(store.delete_schedule("u", "s").await.unwrap());
    assert!(store.list_schedules("u").await.unwrap().is_empty());
}
