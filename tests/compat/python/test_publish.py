"""WIRE.md 3.1 / 2 / 8: publish and publish_json deliver exactly what was published."""

import json

import pytest
from qstash.errors import QStashError

from compat import error_status, now_ms, uid, wait_until


def test_publish_delivers_method_body_content_type_forwarded_headers_and_query(client, sink):
    path = f"/pub/{uid()}/x"
    url = sink.url(path) + "?a=b"
    res = client.message.publish(
        url=url,
        body="hello body",
        content_type="text/plain",
        method="PUT",
        headers={"Test-Header": "v"},
    )
    (rec,) = sink.wait_for(path, 1)

    assert rec.method == "PUT"
    assert rec.target == path + "?a=b", "query string of the destination must be kept"
    assert rec.body == b"hello body"
    assert rec.header("Content-Type") == "text/plain"
    assert rec.header("Test-Header") == "v", "Upstash-Forward-Test-Header must arrive as Test-Header"
    assert rec.header("Upstash-Message-Id") == res.message_id
    assert rec.header("Upstash-Retried") == "0"


def test_publish_does_not_forward_api_token_or_prefixed_names(client, sink):
    path = f"/pub/{uid()}"
    client.message.publish(url=sink.url(path), body="x", headers={"Test-Header": "v"})
    (rec,) = sink.wait_for(path, 1)

    names = rec.header_names_lower()
    assert "authorization" not in names, "the QStash API token must never be forwarded"
    assert not any(n.startswith("upstash-forward-") for n in names), names
    for n in ("upstash-method", "upstash-retries", "upstash-delay"):
        assert n not in names, f"config header {n} leaked to the destination"
    assert all("eyJVc2VySUQi" not in v for _, v in rec.header_list), "token value leaked"


def test_publish_returns_msg_id_and_not_deduplicated(client, sink):
    path = f"/pub/{uid()}"
    res = client.message.publish(url=sink.url(path), body="x")
    assert res.message_id.startswith("msg_")
    assert res.deduplicated is False
    sink.wait_for(path, 1)


def test_publish_default_method_is_post_and_user_agent(client, sink):
    path = f"/pub/{uid()}"
    client.message.publish(url=sink.url(path), body="x")
    (rec,) = sink.wait_for(path, 1)
    assert rec.method == "POST"
    assert rec.header("User-Agent") == "Upstash-QStash"


def test_publish_json_delivers_json_body_with_application_json(client, sink):
    path = f"/pubjson/{uid()}"
    payload = {"hello": "world", "n": 1, "nested": {"list": [1, 2, 3]}}
    res = client.message.publish_json(
        url=sink.url(path) + "?a=b&c=d",
        body=payload,
        headers={"Test-Header": "v"},
    )
    (rec,) = sink.wait_for(path, 1)
    assert rec.method == "POST"
    assert rec.query == "a=b&c=d"
    assert rec.body == json.dumps(payload).encode()
    assert rec.header("Content-Type") == "application/json"
    assert rec.header("Test-Header") == "v"
    assert rec.header("Upstash-Message-Id") == res.message_id
    assert rec.header("Upstash-Retried") == "0"


def test_publish_binary_body_is_delivered_byte_for_byte(client, sink):
    path = f"/bin/{uid()}"
    body = bytes(range(256)) + b"\xff\xfe\x00tail"
    client.message.publish(url=sink.url(path), body=body, content_type="application/octet-stream")
    (rec,) = sink.wait_for(path, 1)
    assert rec.body == body
    assert rec.header("Content-Type") == "application/octet-stream"


def test_publish_without_body_delivers_empty_body(client, sink):
    path = f"/empty/{uid()}"
    client.message.publish(url=sink.url(path))
    (rec,) = sink.wait_for(path, 1)
    assert rec.body == b""


def test_forwarded_authorization_header_reaches_destination(client, sink):
    path = f"/auth-fwd/{uid()}"
    client.message.publish(url=sink.url(path), body="x", headers={"Authorization": "Bearer dest-secret"})
    (rec,) = sink.wait_for(path, 1)
    assert rec.headers_all("Authorization") == ["Bearer dest-secret"]


def test_forwarded_header_value_with_comma_is_not_split(client, sink):
    path = f"/comma/{uid()}"
    client.message.publish(url=sink.url(path), body="x", headers={"X-Multi": "value-uppercase, value-lowercase"})
    (rec,) = sink.wait_for(path, 1)
    assert rec.headers_all("X-Multi") == ["value-uppercase, value-lowercase"]


def test_each_http_method_is_used_for_delivery(client, sink):
    base = f"/methods/{uid()}"
    for m in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        client.message.publish(url=sink.url(f"{base}/{m}"), body="" if m == "GET" else "b", method=m)
    for m in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        (rec,) = sink.wait_for(f"{base}/{m}", 1)
        assert rec.method == m


def test_get_pending_message_shows_stored_fields(client, sink):
    """WIRE 3.4 / 4.0 / 4.1: message.get works before delivery and shows canonical header map."""
    path = f"/get/{uid()}/x"
    url = sink.url(path) + "?a=b"
    t0 = now_ms()
    res = client.message.publish(
        url=url,
        body="stored body",
        content_type="text/plain",
        method="PATCH",
        headers={"test-header": "v", "x-api-key": "k", "X-Multi": "a, b"},
        retries=2,
        retry_delay="pow(2, retried) * 100",
        delay="30s",
    )
    t1 = now_ms()
    try:
        msg = client.message.get(res.message_id)
        assert msg.message_id == res.message_id
        assert msg.url == url
        assert msg.method == "PATCH"
        assert msg.body == "stored body"
        assert msg.body_base64 is None
        assert msg.max_retries == 2
        assert msg.retry_delay_expression == "pow(2, retried) * 100"
        assert t0 - 1000 <= msg.created_at <= t1 + 1000, "createdAt must be unix ms"
        assert t0 + 29_000 <= msg.not_before <= t1 + 31_000, "notBefore must be unix ms = now + delay"
        assert msg.headers == {
            "Test-Header": ["v"],
            "X-Api-Key": ["k"],
            "X-Multi": ["a, b"],
            "Content-Type": ["text/plain"],
        }
    finally:
        client.message.cancel(res.message_id)
    assert sink.requests(path) == []


def test_get_pending_message_default_max_retries_is_3(client, sink):
    path = f"/get-default/{uid()}"
    res = client.message.publish(url=sink.url(path), body="x", delay="30s")
    try:
        msg = client.message.get(res.message_id)
        assert msg.max_retries == 3
        assert msg.method == "POST"
    finally:
        client.message.cancel(res.message_id)


def test_get_pending_message_with_binary_body_uses_body_base64(client, sink, server):
    import base64

    path = f"/get-bin/{uid()}"
    body = b"\xff\xfe\x00\x01binary"
    res = client.message.publish(url=sink.url(path), body=body, delay="30s")
    try:
        raw = server.raw("GET", f"/v2/messages/{res.message_id}")
        assert raw.status_code == 200
        j = raw.json()
        assert "body" not in j
        assert base64.b64decode(j["bodyBase64"]) == body
        msg = client.message.get(res.message_id)
        assert base64.b64decode(msg.body_base64) == body
    finally:
        client.message.cancel(res.message_id)


def test_get_unknown_message_is_404(client):
    with pytest.raises(QStashError) as ei:
        client.message.get("msg_doesnotexist" + uid())
    assert error_status(ei.value) == 404


def test_delivered_message_eventually_404_on_get(client, sink):
    path = f"/gone/{uid()}"
    res = client.message.publish(url=sink.url(path), body="x")
    sink.wait_for(path, 1)

    def gone():
        try:
            client.message.get(res.message_id)
            return False
        except QStashError as e:
            assert error_status(e) == 404
            return True

    wait_until(gone, 5, what="message.get to answer 404 after delivery")
