//! Cron schedules through the HTTP API of the real binary: CRUD, replace by
//! custom id, bad input, time zones, pause/resume, real fires at a minute
//! boundary, and restarts that neither fire a tick twice nor miss one.
//!
//! The tests that wait for a minute boundary run concurrently, so the file
//! costs about one minute of wall time.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{Datelike, TimeZone, Utc};
use common::*;
use serde_json::Value;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Wall-clock ms of an `Instant` the sink recorded.
fn wall_of(at: Instant) -> i64 {
    let ago = Instant::now().saturating_duration_since(at);
    now_ms() - ago.as_millis() as i64
}

async fn create(
    s: &Server,
    destination: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = s
        .post(&format!("/v2/schedules/{destination}"))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("create schedule");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create_ok(s: &Server, destination: &str, headers: &[(&str, &str)], body: &str) -> String {
    let (status, json) = create(s, destination, headers, body).await;
    assert_eq!(status, 200, "create answered {status}: {json}");
    json["scheduleId"].as_str().expect("scheduleId").to_string()
}

async fn get_schedule(s: &Server, id: &str) -> (u16, Value) {
    let resp = s.get(&format!("/v2/schedules/{id}")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn list(s: &Server) -> Vec<Value> {
    let resp = s.get("/v2/schedules").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<Vec<Value>>().await.unwrap()
}

async fn pause(s: &Server, id: &str, action: &str, method: reqwest::Method) -> u16 {
    s.request(
        method,
        &format!("/v2/schedules/{id}/{action}"),
        &dev_user(0),
    )
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// Sleeps until at least `margin` before the next minute boundary is left,
/// so a schedule created now has its first tick at the boundary after.
async fn clear_of_boundary(margin: Duration) {
    let into = now_ms().rem_euclid(60_000);
    if 60_000 - into < margin.as_millis() as i64 {
        tokio::time::sleep(Duration::from_millis((60_000 - into + 200) as u64)).await;
    }
}

/// Sleeps until `at` (wall-clock ms).
async fn sleep_until(at: i64) {
    let wait = at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

#[tokio::test]
async fn create_get_list_delete_with_every_field() {
    let s = server();
    let sink = Sink::start().await;
    let url = sink.at("/crud?x=1");
    let id = create_ok(
        &s,
        &url,
        &[
            ("Upstash-Cron", "*/10 * * * * "),
            ("Content-Type", "application/json"),
            ("Upstash-Method", "GET"),
            ("Upstash-Forward-Test-Header", "test-value"),
            ("Upstash-Forward-bypass-tunnel-reminder", "client-test"),
            ("Upstash-Retries", "5"),
            ("Upstash-Retry-Delay", "1000 * retried"),
            ("Upstash-Delay", "10s"),
            ("Upstash-Timeout", "30s"),
            ("Upstash-Callback", "http://127.0.0.1:1/cb"),
            ("Upstash-Failure-Callback", "http://127.0.0.1:1/fcb"),
            ("Upstash-Callback-Retries", "1"),
            ("Upstash-Flow-Control-Key", "fk"),
            ("Upstash-Flow-Control-Value", "parallelism=2"),
            ("Upstash-Label", "nightly"),
            ("Upstash-Telemetry-Sdk", "x"),
        ],
        r#"{"hello":"world"}"#,
    )
    .await;
    assert!(id.starts_with("scd_"), "{id}");
    let before = now_ms();
    let (status, got) = get_schedule(&s, &id).await;
    assert_eq!(status, 200, "{got}");
    let header: Value = serde_json::json!({
        "Bypass-Tunnel-Reminder": ["client-test"],
        "Content-Type": ["application/json"],
        "Test-Header": ["test-value"],
    });
    assert_eq!(got["scheduleId"], id.as_str());
    assert_eq!(got["cron"], "*/10 * * * *");
    assert_eq!(got["destination"], url.as_str());
    assert_eq!(got["method"], "GET");
    assert_eq!(got["header"], header);
    assert_eq!(got["body"], r#"{"hello":"world"}"#);
    assert_eq!(got["retries"], 5);
    assert_eq!(got["retryDelayExpression"], "1000 * retried");
    assert_eq!(got["delay"], 10);
    assert_eq!(got["timeout"], 30);
    assert_eq!(got["callback"], "http://127.0.0.1:1/cb");
    assert_eq!(got["failureCallback"], "http://127.0.0.1:1/fcb");
    assert_eq!(got["callbackHeader"]["Upstash-Callback-Retries"][0], "1");
    assert_eq!(got["flowControlKey"], "fk");
    assert_eq!(got["parallelism"], 2);
    assert_eq!(got["period"], 1);
    assert_eq!(got["label"], "nightly");
    assert_eq!(got["isPaused"], false);
    assert_eq!(got["callerIP"], "127.0.0.1");
    assert!(got["createdAt"].as_i64().unwrap() <= before);
    assert!(got.get("lastScheduleTime").is_none());
    let next = got["nextScheduleTime"].as_i64().expect("nextScheduleTime");
    assert_eq!(next % (10 * 60_000), 0, "*/10 fires on a ten-minute mark");
    assert!(next > before - 1000 && next <= before + 10 * 60_000);

    let all = list(&s).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["scheduleId"], id.as_str());

    let del = s
        .delete(&format!("/v2/schedules/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 200);
    assert_eq!(get_schedule(&s, &id).await.0, 404);
    assert!(list(&s).await.is_empty());
    let again = s
        .delete(&format!("/v2/schedules/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);
    // Another user never sees them.
    let other = s
        .request(reqwest::Method::GET, "/v2/schedules", &dev_user(1))
        .send()
        .await
        .unwrap();
    assert_eq!(other.json::<Vec<Value>>().await.unwrap().len(), 0);
}

#[tokio::test]
async fn custom_id_creates_then_replaces() {
    let s = server();
    let sink = Sink::start().await;
    let id = create_ok(
        &s,
        &sink.at("/first"),
        &[
            ("Upstash-Cron", "0 * * * *"),
            ("Upstash-Schedule-Id", "my-schedule.v1_x"),
            ("Upstash-Forward-A", "1"),
            ("Upstash-Retries", "7"),
        ],
        "first body",
    )
    .await;
    assert_eq!(id, "my-schedule.v1_x");
    let (_, first) = get_schedule(&s, &id).await;
    let again = create_ok(
        &s,
        &sink.at("/second"),
        &[
            ("Upstash-Cron", "*/5 * * * *"),
            ("Upstash-Schedule-Id", "my-schedule.v1_x"),
        ],
        "",
    )
    .await;
    assert_eq!(again, id);
    let all = list(&s).await;
    assert_eq!(all.len(), 1, "replaced, not added: {all:?}");
    let got = &all[0];
    assert_eq!(got["cron"], "*/5 * * * *");
    assert_eq!(got["destination"], sink.at("/second").as_str());
    assert!(
        got.get("body").is_none(),
        "body not resent, so absent: {got}"
    );
    assert_eq!(got["retries"], 3, "settings not resent return to defaults");
    assert_eq!(got["header"], serde_json::json!({}));
    assert_eq!(got["createdAt"], first["createdAt"]);
    assert_eq!(got["nextScheduleTime"].as_i64().unwrap() % 300_000, 0);
}

#[tokio::test]
async fn bad_input_is_400_naming_the_problem_and_stores_nothing() {
    let s = server();
    let sink = Sink::start().await;
    let url = sink.at("/bad");
    let long_queue = "q".repeat(300);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "Upstash-Cron"),
        (&[("Upstash-Cron", "not a cron at all")], "Upstash-Cron"),
        (&[("Upstash-Cron", "* * * *")], "5 fields"),
        (&[("Upstash-Cron", "0 * * * * *")], "seconds"),
        (&[("Upstash-Cron", "60 * * * *")], "minute field"),
        (&[("Upstash-Cron", "0 24 * * *")], "hour field"),
        (&[("Upstash-Cron", "0 0 32 * *")], "day-of-month field"),
        (&[("Upstash-Cron", "0 0 * 13 *")], "month field"),
        (&[("Upstash-Cron", "0 0 * * 9")], "day-of-week field"),
        (&[("Upstash-Cron", "0 0 30 2 *")], "never fires"),
        (
            &[("Upstash-Cron", "CRON_TZ=Mars/Olympus_Mons 0 9 * * *")],
            "Mars/Olympus_Mons",
        ),
        (
            &[
                ("Upstash-Cron", "* * * * *"),
                ("Upstash-Schedule-Id", "has/slash"),
            ],
            "Upstash-Schedule-Id",
        ),
        (
            &[
                ("Upstash-Cron", "* * * * *"),
                ("Upstash-Schedule-Id", "has space"),
            ],
            "Upstash-Schedule-Id",
        ),
        (
            &[("Upstash-Cron", "* * * * *"), ("Upstash-Retries", "many")],
            "Upstash-Retries",
        ),
        (
            &[("Upstash-Cron", "* * * * *"), ("Upstash-Delay", "soon")],
            "Upstash-Delay",
        ),
        (
            &[("Upstash-Cron", "* * * * *"), ("Upstash-Method", "FETCH")],
            "Upstash-Method",
        ),
        // The same queue-name rule as enqueue: too long, or a bad character.
        (
            &[
                ("Upstash-Cron", "* * * * *"),
                ("Upstash-Queue-Name", &long_queue),
            ],
            "Queue name is invalid",
        ),
        (
            &[("Upstash-Cron", "* * * * *"), ("Upstash-Queue-Name", "a b")],
            "Queue name is invalid",
        ),
    ];
    for (headers, needle) in cases {
        let (status, json) = create(&s, &url, headers, "x").await;
        let error = json["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{headers:?}: {json}");
        assert!(error.contains(needle), "{headers:?}: {error}");
    }
    let (status, _) = create(&s, "ftp://nope", &[("Upstash-Cron", "* * * * *")], "").await;
    assert_eq!(status, 400);
    assert!(
        list(&s).await.is_empty(),
        "a rejected create stores nothing"
    );
}

/// The first 09:00 in `zone` after `now`, as unix ms, computed with chrono
/// alone, independently of the server's cron library.
fn next_nine_am(zone: chrono_tz::Tz, now: i64) -> i64 {
    let local = Utc.timestamp_millis_opt(now).unwrap().with_timezone(&zone);
    let mut day = local.date_naive();
    loop {
        let at = zone
            .with_ymd_and_hms(day.year(), day.month(), day.day(), 9, 0, 0)
            .earliest()
            .unwrap()
            .timestamp_millis();
        if at > now {
            return at;
        }
        day = day.succ_opt().unwrap();
    }
}

#[tokio::test]
async fn time_zones_decide_the_next_time() {
    let s = server();
    let sink = Sink::start().await;
    for zone in [
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::UTC,
    ] {
        let before = now_ms();
        let cron = format!("CRON_TZ={} 0 9 * * *", zone.name());
        let id = create_ok(&s, &sink.at("/tz"), &[("Upstash-Cron", &cron)], "").await;
        let after = now_ms();
        let (_, got) = get_schedule(&s, &id).await;
        assert_eq!(got["cron"], cron.as_str());
        let next = got["nextScheduleTime"].as_i64().unwrap();
        assert!(
            next == next_nine_am(zone, before) || next == next_nine_am(zone, after),
            "{cron}: next {next}, want {}",
            next_nine_am(zone, before)
        );
    }
}

#[tokio::test]
async fn pause_and_resume_by_patch_and_post() {
    let s = server();
    let sink = Sink::start().await;
    let id = create_ok(&s, &sink.at("/p"), &[("Upstash-Cron", "* * * * *")], "").await;
    assert_eq!(pause(&s, &id, "pause", reqwest::Method::PATCH).await, 200);
    let (_, got) = get_schedule(&s, &id).await;
    assert_eq!(got["isPaused"], true);
    assert!(got.get("nextScheduleTime").is_none(), "{got}");
    assert_eq!(pause(&s, &id, "resume", reqwest::Method::POST).await, 200);
    let (_, got) = get_schedule(&s, &id).await;
    assert_eq!(got["isPaused"], false);
    let next = got["nextScheduleTime"].as_i64().unwrap();
    assert_eq!(next % 60_000, 0);
    assert!(next > now_ms() - 2000 && next <= now_ms() + 60_000);
    assert_eq!(pause(&s, &id, "pause", reqwest::Method::POST).await, 200);
    assert_eq!(get_schedule(&s, &id).await.1["isPaused"], true);
    assert_eq!(pause(&s, &id, "resume", reqwest::Method::PATCH).await, 200);
    assert_eq!(get_schedule(&s, &id).await.1["isPaused"], false);
    assert_eq!(
        pause(&s, "nope", "pause", reqwest::Method::PATCH).await,
        404
    );
}

/// One boundary: an active schedule fires within a second of the minute
/// as an ordinary signed message with Upstash-Schedule-Id, a paused one
/// does not, and a kill -9 plus restart right after does not fire again.
#[tokio::test]
async fn fires_at_the_minute_and_a_restart_does_not_fire_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(bin(), dir.path(), &[]);
    let sink = Sink::start().await;
    clear_of_boundary(Duration::from_secs(3)).await;
    let url = sink.at("/fire");
    let id = create_ok(
        &s,
        &url,
        &[
            ("Upstash-Cron", "* * * * *"),
            ("Content-Type", "text/plain"),
            ("Upstash-Forward-X-Token", "abc"),
        ],
        "tick",
    )
    .await;
    let paused = create_ok(
        &s,
        &sink.at("/paused"),
        &[("Upstash-Cron", "* * * * *")],
        "",
    )
    .await;
    assert_eq!(
        pause(&s, &paused, "pause", reqwest::Method::PATCH).await,
        200
    );
    let tick = get_schedule(&s, &id).await.1["nextScheduleTime"]
        .as_i64()
        .unwrap();

    let got = sink.wait_for("/fire", 1, Duration::from_secs(75)).await;
    let r = &got[0];
    let late = wall_of(r.at) - tick;
    assert!(
        (0..3000).contains(&late),
        "delivered {late} ms after the minute (want within a second; 3 s on a loaded machine)"
    );
    assert_eq!(r.header("upstash-schedule-id"), Some(id.as_str()));
    assert_eq!(r.header("x-token"), Some("abc"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(&r.body[..], b"tick");
    verify(r, dev_user(0).current_key, &url).expect("signed like any message");
    let message_id = r.header("upstash-message-id").unwrap().to_string();

    // The schedule shows the fire; its message's state follows delivery.
    let deadline = Instant::now() + WAIT;
    let shown = loop {
        let (_, got) = get_schedule(&s, &id).await;
        if got["lastScheduleStates"][&message_id] == "SUCCESS" || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        shown["lastScheduleStates"],
        serde_json::json!({ &message_id: "SUCCESS" }),
        "{shown}"
    );
    let last = shown["lastScheduleTime"].as_i64().unwrap();
    assert!(
        (tick..tick + 3000).contains(&last),
        "lastScheduleTime {last}, tick {tick}"
    );
    assert_eq!(shown["nextScheduleTime"], tick + 60_000);

    // Crash and restart right after the fire: the tick is not fired again.
    s.kill9();
    let s = Server::start_in(bin(), dir.path(), &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink.received_at("/fire").len(),
        1,
        "a restart fired the tick again"
    );
    assert!(
        sink.received_at("/paused").is_empty(),
        "a paused schedule fired"
    );
    let (_, after) = get_schedule(&s, &id).await;
    assert_eq!(after["nextScheduleTime"], tick + 60_000);
    assert_eq!(after["lastScheduleTime"], last);
    assert_eq!(get_schedule(&s, &paused).await.1["isPaused"], true);
}

/// One boundary, two servers: both are killed before the tick and started
/// again 3 s after it. With the default catch-up window the missed tick
/// fires exactly once; with a 1 s window it is skipped.
#[tokio::test]
async fn a_tick_missed_while_down_fires_once_within_the_catch_up_window() {
    let sink = Sink::start().await;
    clear_of_boundary(Duration::from_secs(4)).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let windows: [&[&str]; 2] = [&[], &["--schedule-catch-up", "1s"]];
    let mut ids = Vec::new();
    let mut tick = 0;
    for (i, dir) in dirs.iter().enumerate() {
        let s = Server::start_in(bin(), dir.path(), windows[i]);
        let id = create_ok(
            &s,
            &sink.at(&format!("/missed/{i}")),
            &[("Upstash-Cron", "* * * * *")],
            "",
        )
        .await;
        tick = get_schedule(&s, &id).await.1["nextScheduleTime"]
            .as_i64()
            .unwrap();
        s.kill9();
        ids.push(id);
    }
    assert!(now_ms() < tick, "killed before the tick");
    sleep_until(tick + 3000).await;
    // Taken before the starts: the second server may take a while to come
    // up on a busy machine, and the first fires as soon as it is up.
    let restarted = now_ms();
    let servers: Vec<Server> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| Server::start_in(bin(), d.path(), windows[i]))
        .collect();

    // Default window: the missed tick fires once, right after the start.
    let got = sink.wait_for("/missed/0", 1, WAIT).await;
    assert!(wall_of(got[0].at) >= restarted - 50);
    assert_eq!(got[0].header("upstash-schedule-id"), Some(ids[0].as_str()));
    let (_, shown) = get_schedule(&servers[0], &ids[0]).await;
    assert_eq!(shown["nextScheduleTime"], tick + 60_000);
    assert!(shown["lastScheduleTime"].as_i64().unwrap() >= restarted - 50);

    // 1 s window: the tick is 3 s old, skipped.
    let (_, shown) = get_schedule(&servers[1], &ids[1]).await;
    assert_eq!(shown["nextScheduleTime"], tick + 60_000);
    assert!(shown.get("lastScheduleTime").is_none(), "{shown}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink.received_at("/missed/0").len(),
        1,
        "fired more than once"
    );
    assert!(
        sink.received_at("/missed/1").is_empty(),
        "fired a tick older than the window"
    );
}
