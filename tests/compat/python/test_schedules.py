"""WIRE.md 2 (Upstash-Cron, -Schedule-Id, -Queue-Name), 3.6, 4.3: schedules through the qstash SDK."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from qstash.errors import QStashError
from qstash.schedule import ScheduleState

from compat import error_status, now_ms, uid, wait_until


def mine(client, ids):
    return {s.schedule_id: s for s in client.schedule.list() if s.schedule_id in ids}


def test_create_get_list_delete(client, sink):
    url = sink.url(f"/sched/{uid()}") + "?a=b"
    before = now_ms()
    sid = client.schedule.create_json(
        destination=url,
        cron="*/10 * * * *",
        body={"hello": "world"},
        method="GET",
        headers={"Test-Header": "test-value", "Upstash-Forward-Bypass-Tunnel-Reminder": "client-test"},
        retries=5,
        retry_delay="1000 * retried",
        delay=10,
        timeout="30s",
        callback="http://127.0.0.1:1/cb",
        failure_callback="http://127.0.0.1:1/fcb",
        flow_control={"key": "fk", "parallelism": 2},
        label="nightly",
    )
    assert sid.startswith("scd_")

    s = client.schedule.get(sid)
    assert s.schedule_id == sid
    assert s.destination == url
    assert s.cron == "*/10 * * * *"
    assert s.method == "GET"
    assert s.body == '{"hello": "world"}'
    assert s.headers == {
        "Bypass-Tunnel-Reminder": ["client-test"],
        "Content-Type": ["application/json"],
        "Test-Header": ["test-value"],
    }
    assert s.retries == 5
    assert s.retry_delay_expression == "1000 * retried"
    assert s.delay == 10
    assert s.timeout == 30
    assert s.callback == "http://127.0.0.1:1/cb"
    assert s.failure_callback == "http://127.0.0.1:1/fcb"
    assert s.flow_control.key == "fk"
    assert s.flow_control.parallelism == 2
    assert s.flow_control.rate is None
    assert s.flow_control.period == 1
    assert s.label == "nightly"
    assert s.caller_ip == "127.0.0.1"
    assert s.paused is False
    assert before - 1000 <= s.created_at <= now_ms()
    assert s.last_schedule_time is None
    assert s.next_schedule_time % 600_000 == 0
    assert before - 1000 < s.next_schedule_time <= before + 600_000

    assert sid in mine(client, {sid})

    client.schedule.delete(sid)
    with pytest.raises(QStashError) as e:
        client.schedule.get(sid)
    assert error_status(e.value) == 404
    assert sid not in mine(client, {sid})


def test_custom_id_creates_and_then_replaces(client, sink):
    sid = f"custom-{uid()}"
    got = client.schedule.create(
        destination=sink.url("/sched/first"),
        cron="0 * * * *",
        body="first body",
        schedule_id=sid,
        retries=7,
        headers={"A": "1"},
    )
    assert got == sid
    created_at = client.schedule.get(sid).created_at

    again = client.schedule.create(destination=sink.url("/sched/second"), cron="*/5 * * * *", schedule_id=sid)
    assert again == sid
    listed = mine(client, {sid})
    assert list(listed) == [sid], "an existing id is replaced, not duplicated"
    s = client.schedule.get(sid)
    assert s.destination == sink.url("/sched/second")
    assert s.cron == "*/5 * * * *"
    assert s.body is None and s.body_base64 is None, "a body that is not resent is gone"
    assert s.retries == 3
    assert not s.headers
    assert s.created_at == created_at
    client.schedule.delete(sid)


def test_pause_and_resume(client, sink):
    sid = client.schedule.create(destination=sink.url(f"/sched/{uid()}"), cron="* * * * *")
    client.schedule.pause(sid)
    s = client.schedule.get(sid)
    assert s.paused is True
    assert s.next_schedule_time is None
    client.schedule.resume(sid)
    s = client.schedule.get(sid)
    assert s.paused is False
    assert s.next_schedule_time % 60_000 == 0
    assert now_ms() - 2000 < s.next_schedule_time <= now_ms() + 60_000
    client.schedule.delete(sid)


@pytest.mark.parametrize("zone, offset_hours", [("Asia/Kolkata", 5.5), ("Asia/Tokyo", 9), ("UTC", 0)])
def test_time_zone_sets_the_next_time(client, sink, zone, offset_hours):
    sid = client.schedule.create(destination=sink.url("/sched/tz"), cron=f"CRON_TZ={zone} 0 9 * * *")
    s = client.schedule.get(sid)
    assert s.cron == f"CRON_TZ={zone} 0 9 * * *"
    # These zones have no DST: 09:00 local is a fixed UTC time of day.
    at = datetime.fromtimestamp(s.next_schedule_time / 1000, tz=timezone.utc) + timedelta(hours=offset_hours)
    assert (at.hour, at.minute, at.second) == (9, 0, 0), at
    assert 0 < s.next_schedule_time - now_ms() <= 86_400_000
    client.schedule.delete(sid)


@pytest.mark.parametrize(
    "cron",
    ["* * * *", "0 * * * * *", "61 * * * *", "* 25 * * *", "* * * * 9", "CRON_TZ=Not/AZone * * * * *", "hello"],
)
def test_bad_cron_is_400_and_nothing_is_stored(client, sink, cron):
    sid = f"bad-{uid()}"
    with pytest.raises(QStashError) as e:
        client.schedule.create(destination=sink.url("/sched/bad"), cron=cron, schedule_id=sid)
    assert error_status(e.value) == 400
    assert "Upstash-Cron" in str(e.value)
    assert sid not in mine(client, {sid})


def test_schedule_fires_and_paused_one_does_not(client, sink):
    # Not within 3 s of a minute boundary, so both are created before the tick.
    if now_ms() % 60_000 > 57_000:
        time.sleep(4)
    path, paused_path = f"/sched/fire/{uid()}", f"/sched/paused/{uid()}"
    sid = client.schedule.create(
        destination=sink.url(path), cron="* * * * *", body="tick", headers={"X-Token": "abc"}
    )
    paused = client.schedule.create(destination=sink.url(paused_path), cron="* * * * *")
    client.schedule.pause(paused)
    tick = client.schedule.get(sid).next_schedule_time

    (rec,) = sink.wait_for(path, 1, timeout=75)
    assert rec.t * 1000 - tick < 3000, "fires within a second of the minute (3 s on a loaded machine)"
    assert rec.header("Upstash-Schedule-Id") == sid
    assert rec.header("X-Token") == "abc"
    assert rec.body == b"tick"
    msg_id = rec.header("Upstash-Message-Id")

    def fired():
        s = client.schedule.get(sid)
        return s if s.last_schedule_states == {msg_id: ScheduleState.SUCCESS} else None

    s = wait_until(fired, timeout=10, what="lastScheduleStates to show the delivered message")
    assert tick <= s.last_schedule_time < tick + 3000
    assert s.next_schedule_time == tick + 60_000
    time.sleep(1)
    assert sink.requests(paused_path) == [], "a paused schedule fired"
    client.schedule.delete(sid)
    client.schedule.delete(paused)


def test_schedules_to_a_group_a_queue_and_a_key_fire_once_across_a_crash(sink):
    """A private server is killed -9 just before a tick and restarted after it:
    the missed tick fires once (catch-up) to a URL group, into a running queue
    and under a flow-control key; nothing fires twice."""
    from qstash import QStash

    from compat import DEFAULT_TOKEN, QStashServer

    srv = QStashServer().start()
    try:
        client = QStash(DEFAULT_TOKEN, base_url=srv.base_url, retry=False)
        # Leave time to create everything before the kill at :58.5.
        if now_ms() % 60_000 > 50_000:
            time.sleep((61_000 - now_ms() % 60_000) / 1000)
        tag = uid()
        group = f"sched-grp-{tag}"
        client.url_group.upsert_endpoints(
            url_group=group,
            endpoints=[{"name": "a", "url": sink.url(f"/crash/{tag}/a")}, {"url": sink.url(f"/crash/{tag}/b")}],
        )
        to_group = client.schedule.create(destination=group, cron="* * * * *", body="g")
        to_queue = client.schedule.create(
            destination=sink.url(f"/crash/{tag}/q"), cron="* * * * *", queue=f"sched-q-{tag}", body="q"
        )
        keyed = client.schedule.create(
            destination=sink.url(f"/crash/{tag}/k"),
            cron="* * * * *",
            flow_control={"key": f"sched-k-{tag}", "parallelism": 1, "rate": 5},
            body="k",
        )
        tick = client.schedule.get(to_group).next_schedule_time
        time.sleep(max(0, tick - 1_500 - now_ms()) / 1000)
        srv.kill9()
        time.sleep(max(0, tick + 1_500 - now_ms()) / 1000)
        srv.start()

        expected = {"a": to_group, "b": to_group, "q": to_queue, "k": keyed}
        for leaf, sid in expected.items():
            (rec,) = sink.wait_for(f"/crash/{tag}/{leaf}", 1, timeout=15)
            assert rec.header("Upstash-Schedule-Id") == sid
        assert sink.requests(f"/crash/{tag}/a")[0].header("Upstash-Topic-Name") == group
        time.sleep(3)
        for leaf in expected:
            assert len(sink.requests(f"/crash/{tag}/{leaf}")) == 1, f"{leaf} fired twice"
        for sid in (to_group, to_queue, keyed):
            s = client.schedule.get(sid)
            assert s.last_schedule_time >= tick
            assert s.next_schedule_time == tick + 60_000
        assert client.queue.get(f"sched-q-{tag}").lag == 0
    finally:
        srv.stop()
