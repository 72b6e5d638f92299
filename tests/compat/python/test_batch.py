"""WIRE.md 3.3: batch / batch_json."""

import json

from compat import uid


def test_batch_returns_results_in_order_and_delivers_each(client, sink):
    base = f"/batch/{uid()}"
    res = client.message.batch(
        [
            {"url": sink.url(f"{base}/0") + "?i=0", "body": "zero", "content_type": "text/plain"},
            {"url": sink.url(f"{base}/1"), "body": "one", "method": "PUT", "headers": {"Test-Header": "h1"}},
            {"url": sink.url(f"{base}/2"), "body": "two", "retries": 0},
        ]
    )
    assert len(res) == 3
    ids = [r.message_id for r in res]
    assert len(set(ids)) == 3 and all(i.startswith("msg_") for i in ids)
    assert all(r.deduplicated is False for r in res)

    (r0,) = sink.wait_for(f"{base}/0", 1)
    (r1,) = sink.wait_for(f"{base}/1", 1)
    (r2,) = sink.wait_for(f"{base}/2", 1)
    assert (r0.body, r1.body, r2.body) == (b"zero", b"one", b"two")
    assert r0.query == "i=0"
    assert r0.header("Content-Type") == "text/plain"
    assert r1.method == "PUT" and r1.header("Test-Header") == "h1"
    assert r2.method == "POST"
    assert [r0.header("Upstash-Message-Id"), r1.header("Upstash-Message-Id"), r2.header("Upstash-Message-Id")] == ids
    assert all(r.header("Upstash-Retried") == "0" for r in (r0, r1, r2))


def test_batch_item_without_body_sends_null_and_delivers_empty(client, sink):
    # PY sends "body": null and "queue": null for unset fields.
    path = f"/batch-null/{uid()}"
    res = client.message.batch([{"url": sink.url(path)}])
    assert len(res) == 1
    (rec,) = sink.wait_for(path, 1)
    assert rec.body == b""
    assert rec.header("Upstash-Message-Id") == res[0].message_id


def test_batch_json_sets_application_json_and_serializes_bodies(client, sink):
    base = f"/batchjson/{uid()}"
    bodies = [{"i": 0}, [1, 2, 3], "str"]
    res = client.message.batch_json(
        [{"url": sink.url(f"{base}/{i}"), "body": b, "headers": {"X-I": str(i)}} for i, b in enumerate(bodies)]
    )
    assert len(res) == 3
    for i, b in enumerate(bodies):
        (rec,) = sink.wait_for(f"{base}/{i}", 1)
        assert rec.body == json.dumps(b).encode()
        assert rec.header("Content-Type") == "application/json"
        assert rec.header("X-I") == str(i)
        assert rec.header("Upstash-Message-Id") == res[i].message_id


def test_batch_item_with_delay_is_gettable_and_cancellable(client, sink):
    path = f"/batch-delay/{uid()}"
    res = client.message.batch(
        [
            {"url": sink.url(path), "body": "later", "delay": "30s"},
            {"url": sink.url(path + "/now"), "body": "now"},
        ]
    )
    msg = client.message.get(res[0].message_id)
    assert msg.body == "later"
    sink.wait_for(path + "/now", 1)
    client.message.cancel(res[0].message_id)
    assert sink.requests(path) == []


def test_batch_item_with_queue_is_delivered(client, sink):
    path = f"/batch-queue/{uid()}"
    res = client.message.batch([{"url": sink.url(path), "body": "queued", "queue": f"q-{uid()}"}])
    assert len(res) == 1
    (rec,) = sink.wait_for(path, 1)
    assert rec.body == b"queued"
    assert rec.header("Upstash-Message-Id") == res[0].message_id
