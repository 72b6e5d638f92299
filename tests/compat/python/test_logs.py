"""WIRE.md 3.9 and 4.6: logs through the Python SDK (client.log.list -> GET /v2/events)."""

import base64
import threading

from qstash.log import LogState

from compat import Reply, now_ms, uid, wait_until


def _states(client, mid):
    return [l.state for l in client.log.list(filter={"message_id": mid}).logs]


def test_log_lifecycle_and_fields(client, sink):
    path = f"/logs/{uid()}"
    sink.script(path, [Reply(status=500, body=b"nope"), Reply(status=200)])
    res = client.message.publish(
        url=sink.url(path), body="log body", retries=2, retry_delay="50", label="log-py",
        headers={"X-H": "v"}, timeout="4s",
    )
    want = [LogState.DELIVERED, LogState.ACTIVE, LogState.RETRY, LogState.ERROR, LogState.ACTIVE, LogState.CREATED]
    wait_until(lambda: _states(client, res.message_id) == want, 10, what="full lifecycle in the log")
    logs = client.log.list(filter={"message_id": res.message_id}).logs
    for l in logs:
        assert l.message_id == res.message_id
        assert l.url == sink.url(path)
        assert base64.b64decode(l.body_base64) == b"log body"
        assert l.headers["X-H"] == ["v"]
        assert l.retry_delay_expression == "50"
        assert l.label == "log-py"
        assert l.max_retries == 2
        assert l.method == "POST"
    error = logs[3]
    assert error.response_status == 500
    assert base64.b64decode(error.response_body) == b"nope"
    assert logs[2].next_delivery_time >= logs[2].time
    assert [l for l in logs if l.state == LogState.DELIVERED].__len__() == 1


def test_log_cancel_states_parse(client, sink):
    res = client.message.publish(url=sink.url(f"/logs-c/{uid()}"), body="x", delay="1h")
    client.message.cancel(res.message_id)
    assert _states(client, res.message_id) == [LogState.CANCELED, LogState.CANCEL_REQUESTED, LogState.CREATED]


def test_log_filters(client, sink):
    tag = uid()
    start = now_ms()
    a = client.message.publish(url=sink.url(f"/lf/{tag}/a"), body="a", label=f"a-{tag}")
    b = client.message.publish(url=sink.url(f"/lf/{tag}/b"), body="b", label=f"b-{tag}")
    for mid in (a.message_id, b.message_id):
        wait_until(lambda: LogState.DELIVERED in _states(client, mid), 10)
    end = now_ms()
    only_a = client.log.list(filter={"label": f"a-{tag}"}).logs
    assert {l.message_id for l in only_a} == {a.message_id} and all(l.label == f"a-{tag}" for l in only_a)
    by_url = client.log.list(filter={"url": sink.url(f"/lf/{tag}/b")}).logs
    assert {l.message_id for l in by_url} == {b.message_id}
    both = client.log.list(filter={"message_ids": [a.message_id, b.message_id], "state": LogState.DELIVERED}).logs
    assert sorted(l.message_id for l in both) == sorted([a.message_id, b.message_id])
    window = client.log.list(filter={"label": f"a-{tag}", "from_time": start, "to_time": end}).logs
    assert len(window) == 3
    assert client.log.list(filter={"label": f"a-{tag}", "to_time": start - 1}).logs == []
    for f in ({"url_group": "none"}, {"queue": "none"}, {"schedule_id": "none"}):
        assert client.log.list(filter={"label": f"a-{tag}", **f}).logs == []


def test_log_pagination_under_concurrent_writes(client, sink):
    tag = uid()
    url = sink.url(f"/lp/{tag}")
    first = {client.message.publish(url=url, body=str(i), delay="1h").message_id for i in range(20)}
    stop = threading.Event()

    def writer():
        for i in range(30):
            if stop.is_set():
                break
            client.message.publish(url=url, body=f"late {i}", delay="1h")

    t = threading.Thread(target=writer)
    t.start()
    seen, cursor = [], None
    while True:
        page = client.log.list(cursor=cursor, count=3, filter={"url": url, "state": LogState.CREATED})
        seen += [l.message_id for l in page.logs]
        cursor = page.cursor
        if cursor is None:
            break
    stop.set()
    t.join()
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    assert first <= set(seen), "entries were skipped"
