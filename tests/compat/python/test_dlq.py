"""WIRE.md 3.8 and 4.2: the DLQ through the Python SDK (list, get, delete, delete_many), retry by raw HTTP."""

import base64

import pytest
from qstash.errors import QStashError

from compat import Reply, error_status, now_ms, uid, wait_until


def _dead(client, sink, path, **kw):
    """Publish a message that fails at once; return (message_id, DlqMessage)."""
    sink.script(path, [Reply(status=404, body=b"404 Not Found")] * 3)
    res = client.message.publish(url=sink.url(path), body=kw.pop("body", "dead body"), retries=0, **kw)

    def found():
        page = client.dlq.list(filter={"message_id": res.message_id})
        return page.messages[0] if page.messages else None

    return res.message_id, wait_until(found, 10, what="the message in the DLQ")


def test_dlq_message_fields_and_get(client, sink):
    path = f"/dlq/{uid()}"
    mid, m = _dead(
        client, sink, path, label="dlq-py", retry_delay="1000", headers={"X-Keep": "k"},
        failure_callback=sink.url(f"/dlq-fcb/{uid()}"),
    )
    assert m.message_id == mid
    assert m.url == sink.url(path)
    assert m.method == "POST"
    assert m.response_status == 404
    assert m.response_body == "404 Not Found"
    assert m.body == "dead body"
    assert m.max_retries == 0
    assert m.label == "dlq-py"
    assert m.retry_delay_expression == "1000"
    assert m.headers["X-Keep"] == ["k"]
    assert m.caller_ip == "127.0.0.1"
    got = client.dlq.get(m.dlq_id)
    assert got.dlq_id == m.dlq_id and got.message_id == mid and got.response_status == 404


def test_dlq_redacts_body_and_headers(client, sink):
    path = f"/dlq-redact/{uid()}"
    _, m = _dead(
        client, sink, path, headers={"Authorization": "Bearer secret", "X-Plain": "p"},
        body="secret body",
    )
    path2 = f"/dlq-redact2/{uid()}"
    _, red = _dead(
        client, sink, path2, headers={"Authorization": "Bearer secret", "X-Plain": "p"},
        body="secret body", redact={"body": True, "header": ["Authorization"]},
    )
    assert red.body.startswith("REDACTED:")
    assert red.headers["Authorization"][0].startswith("REDACTED:")
    assert red.headers["X-Plain"] == ["p"]
    assert m.body == "secret body", "not redacted unless asked"
    recs = sink.wait_for(path2, 1)
    logs = client.log.list(filter={"message_id": red.message_id}).logs
    assert logs and all(base64.b64decode(l.body_base64).startswith(b"REDACTED:") for l in logs)
    assert all(l.headers["Authorization"][0].startswith("REDACTED:") for l in logs)
    assert recs[0].header("Authorization") == "Bearer secret"
    assert recs[0].body == b"secret body"


def test_dlq_list_filters_and_pagination(client, sink):
    tag = uid()
    start = now_ms()
    ids = [_dead(client, sink, f"/dlq-page/{tag}", label=f"pg-{tag}")[0] for _ in range(5)]
    end = now_ms()
    seen, cursor = [], None
    while True:
        page = client.dlq.list(cursor=cursor, count=2, filter={"label": f"pg-{tag}"})
        assert len(page.messages) <= 2
        seen += [m.message_id for m in page.messages]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == ids
    url = sink.url(f"/dlq-page/{tag}")
    assert len(client.dlq.list(filter={"url": url}).messages) == 5
    assert len(client.dlq.list(filter={"url": url, "response_status": 404}).messages) == 5
    assert client.dlq.list(filter={"url": url, "response_status": 500}).messages == []
    assert len(client.dlq.list(filter={"url": url, "from_time": start, "to_time": end}).messages) == 5
    assert client.dlq.list(filter={"url": url, "from_time": end + 1}).messages == []
    assert len(client.dlq.list(filter={"url": url, "caller_ip": "127.0.0.1"}).messages) == 5
    for f in ({"url_group": "nope"}, {"queue": "nope"}, {"schedule_id": "nope"}, {"caller_ip": "0.0.0.0"}):
        assert client.dlq.list(filter={"url": url, **f}).messages == []


def test_dlq_delete_and_delete_many(client, sink):
    tag = uid()
    entries = [_dead(client, sink, f"/dlq-del/{tag}")[1] for _ in range(3)]
    client.dlq.delete(entries[0].dlq_id)
    with pytest.raises(QStashError) as ei:
        client.dlq.get(entries[0].dlq_id)
    assert error_status(ei.value) == 404
    with pytest.raises(QStashError) as ei:
        client.dlq.delete(entries[0].dlq_id)
    assert error_status(ei.value) == 404
    n = client.dlq.delete_many([e.dlq_id for e in entries] + ["1-unknown"])
    assert n == 2
    assert client.dlq.list(filter={"url": sink.url(f"/dlq-del/{tag}")}).messages == []


def test_dlq_retry_with_override_headers(client, server, sink):
    path = f"/dlq-retry/{uid()}"
    _, m = _dead(client, sink, path, headers={"X-Over": "old"})
    sink.script(path, [Reply(status=200)])
    r = server.raw(
        "POST", f"/v2/dlq/retry/{m.dlq_id}",
        headers={"Upstash-Forward-X-Over": "new", "Upstash-Retries": "2"},
    )
    assert r.status_code == 201, r.text
    new_id = r.json()["messageId"]
    recs = sink.wait_for(path, 2)
    assert recs[1].header("Upstash-Message-Id") == new_id
    assert recs[1].header("X-Over") == "new"
    assert recs[1].body == b"dead body"
    with pytest.raises(QStashError):
        client.dlq.get(m.dlq_id)
    bad = server.raw("POST", "/v2/dlq/retry?labeel=x")
    assert 400 <= bad.status_code < 500
    empty = server.raw("POST", "/v2/dlq/retry?responseStatus=999")
    assert empty.json() == {"responses": []}
