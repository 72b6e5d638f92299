"""WIRE.md 2 and 4.1: labels, flow control and redaction as stored on the message."""

import hashlib
import time

import pytest

from compat import uid


def _pending(client, sink, **kwargs):
    """Publish a 30 s delayed message and return (message_id, message) from message.get."""
    res = client.message.publish(url=sink.url(f"/opts/{uid()}"), body="x", delay="30s", **kwargs)
    return res.message_id, client.message.get(res.message_id)


def test_label_is_stored(client, sink):
    mid, msg = _pending(client, sink, label="my-label")
    try:
        assert msg.label == "my-label"
    finally:
        client.message.cancel(mid)


def test_no_flow_control_means_no_flow_control_fields(client, sink, server):
    mid, msg = _pending(client, sink)
    try:
        assert msg.flow_control is None
        raw = server.raw("GET", f"/v2/messages/{mid}").json()
        for k in ("flowControlKey", "parallelism", "rate", "period"):
            assert k not in raw, f"{k} must be omitted without flow control"
    finally:
        client.message.cancel(mid)


@pytest.mark.parametrize(
    "fc, expected",
    [
        ({"parallelism": 2}, (2, None, 1)),  # period defaults to 1 s
        ({"rate": 5, "period": "1m"}, (None, 5, 60)),
        ({"rate": 5, "period": "1d"}, (None, 5, 86400)),
        ({"rate": 5, "period": "1h30m3s"}, (None, 5, 5403)),
        ({"parallelism": 3, "rate": 10, "period": 2}, (3, 10, 2)),  # int period -> "2s"
    ],
    ids=["parallelism-only", "period-1m", "period-1d", "period-1h30m3s", "int-period"],
)
def test_flow_control_is_stored(client, sink, fc, expected):
    key = f"fc-{uid()}"
    mid, msg = _pending(client, sink, flow_control={"key": key, **fc})
    try:
        assert msg.flow_control is not None, "flowControlKey missing from message"
        got = (msg.flow_control.parallelism, msg.flow_control.rate, msg.flow_control.period)
        assert msg.flow_control.key == key
        assert got == expected
    finally:
        client.message.cancel(mid)


def test_flow_controlled_message_is_delivered(client, sink):
    path = f"/fc-deliver/{uid()}"
    client.message.publish(
        url=sink.url(path), body="fc", flow_control={"key": f"fc-{uid()}", "parallelism": 1, "rate": 10}
    )
    (rec,) = sink.wait_for(path, 1)
    assert rec.body == b"fc"


def test_redacted_fields_hidden_in_get_but_delivered_in_full(client, sink):
    path = f"/redact/{uid()}"
    t0 = time.time()
    res = client.message.publish(
        url=sink.url(path),
        body="secret body",
        headers={"Authorization": "Bearer secret-token", "X-Keep": "visible"},
        redact={"body": True, "header": ["Authorization"]},
        delay="1s",
    )
    msg = client.message.get(res.message_id)
    shown_body = msg.body if msg.body is not None else msg.body_base64
    assert shown_body != "secret body" and "secret body" not in (shown_body or "")
    assert (shown_body or "").startswith("REDACTED:"), f"body shown as {shown_body!r}"
    auth = msg.headers.get("Authorization")
    assert auth and auth[0].startswith("REDACTED:") and "secret-token" not in auth[0], auth
    assert msg.headers.get("X-Keep") == ["visible"]

    (rec,) = sink.wait_for(path, 1, timeout=6)
    assert rec.t >= t0 + 0.9
    assert rec.body == b"secret body", "the original body must be delivered"
    assert rec.header("Authorization") == "Bearer secret-token"
    assert rec.header("X-Keep") == "visible"


def test_redact_all_headers(client, sink):
    mid, msg = _pending(client, sink, headers={"X-A": "a", "X-B": "b"}, redact={"header": True})
    try:
        for name in ("X-A", "X-B"):
            v = msg.headers.get(name)
            assert v and v[0].startswith("REDACTED:"), f"{name}: {v}"
        assert msg.body == "x"
    finally:
        client.message.cancel(mid)
