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


def test_content_based_deduplication_hash_covers_destination(client, sink):
    body = f"body {uid()}"
    p1, p2 = f"/cbd-dest/{uid()}", f"/cbd-dest/{uid()}"
    a = client.message.publish(url=sink.url(p1), body=body, content_based_deduplication=True)
    b = client.message.publish(url=sink.url(p2), body=body, content_based_deduplication=True)
    assert b.deduplicated is False and a.message_id != b.message_id
    sink.wait_for(p1, 1)
    sink.wait_for(p2, 1)


def test_content_based_deduplication_hash_covers_forwarded_headers(client, sink):
    path = f"/cbd-hdr/{uid()}"
    body = f"body {uid()}"
    a = client.message.publish(url=sink.url(path), body=body, headers={"X-V": "1"}, content_based_deduplication=True)
    b = client.message.publish(url=sink.url(path), body=body, headers={"X-V": "2"}, content_based_deduplication=True)
    assert b.deduplicated is False and a.message_id != b.message_id
    recs = sink.wait_for(path, 2)
    assert sorted(r.header("X-V") for r in recs) == ["1", "2"]


def test_deduplicated_publish_answers_202_raw(server, sink):
    """WIRE 1: the real server answers 202 for a deduplicated publish (SDKs accept any 2xx)."""
    path = f"/dedup-raw/{uid()}"
    h = {"Upstash-Deduplication-Id": f"raw-{uid()}"}
    r1 = server.raw("POST", f"/v2/publish/{sink.url(path)}", headers=h, content=b"x")
    r2 = server.raw("POST", f"/v2/publish/{sink.url(path)}", headers=h, content=b"x")
    assert 200 <= r1.status_code < 300
    assert r2.status_code == 202
    assert r2.json()["messageId"] == r1.json()["messageId"]
    assert r2.json()["deduplicated"] is True
    sink.wait_for(path, 1)


def test_content_based_deduplication_false_does_not_deduplicate(client, sink):
    # PY sends the literal "False".
    path = f"/cbd-false/{uid()}"
    a = client.message.publish(url=sink.url(path), body="same", content_based_deduplication=False)
    b = client.message.publish(url=sink.url(path), body="same", content_based_deduplication=False)
    assert b.deduplicated is False and a.message_id != b.message_id
    sink.wait_for(path, 2)
