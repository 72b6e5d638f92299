"""WIRE.md 2 (Upstash-Deduplication-Id / Upstash-Content-Based-Deduplication), 3.1."""

import time

from compat import uid


def test_deduplication_id_returns_same_id_and_delivers_once(client, sink):
    path = f"/dedup/{uid()}"
    dedup = f"dedup-{uid()}"
    first = client.message.publish(url=sink.url(path), body="x", deduplication_id=dedup)
    second = client.message.publish(url=sink.url(path), body="x", deduplication_id=dedup)
    assert first.deduplicated is False
    assert second.deduplicated is True
    assert second.message_id == first.message_id
    sink.wait_for(path, 1)
    time.sleep(1.0)
    assert len(sink.requests(path)) == 1


def test_deduplication_id_applies_even_with_different_body(client, sink):
    path = f"/dedup-body/{uid()}"
    dedup = f"dedup-{uid()}"
    first = client.message.publish(url=sink.url(path), body="one", deduplication_id=dedup)
    second = client.message.publish(url=sink.url(path), body="two", deduplication_id=dedup)
    assert second.deduplicated is True
    assert second.message_id == first.message_id
    (rec,) = sink.wait_for(path, 1)
    time.sleep(1.0)
    assert [r.body for r in sink.requests(path)] == [b"one"]


def test_content_based_deduplication_same_body_is_deduplicated(client, sink):
    # PY sends "Upstash-Content-Based-Deduplication: True" (Python str(bool)).
    path = f"/cbd/{uid()}"
    body = f"same body {uid()}"
    first = client.message.publish(url=sink.url(path), body=body, content_based_deduplication=True)
    second = client.message.publish(url=sink.url(path), body=body, content_based_deduplication=True)
    assert first.deduplicated is False
    assert second.deduplicated is True
    assert second.message_id == first.message_id
    sink.wait_for(path, 1)
    time.sleep(1.0)
    assert len(sink.requests(path)) == 1


def test_content_based_deduplication_different_body_is_not_deduplicated(client, sink):
    path = f"/cbd-diff/{uid()}"
    a = client.message.publish(url=sink.url(path), body=f"a {uid()}", content_based_deduplication=True)
    b = client.message.publish(url=sink.url(path), body=f"b {uid()}", content_based_deduplication=True)
    assert b.deduplicated is False
    assert a.message_id != b.message_id
    sink.wait_for(path, 2)


def test_content_based_deduplication_json_publish(client, sink):
    path = f"/cbd-json/{uid()}"
    body = {"k": uid()}
    first = client.message.publish_json(url=sink.url(path), body=body, content_based_deduplication=True)
    second = client.message.publish_json(url=sink.url(path), body=body, content_based_deduplication=True)
    assert second.deduplicated is True
    assert second.message_id == first.message_id
    sink.wait_for(path, 1)
    time.sleep(1.0)
    assert len(sink.requests(path)) == 1
