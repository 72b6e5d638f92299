"""WIRE.md 2 (Upstash-Delay / Upstash-Not-Before), 3.1, 4.1 notBefore."""

import time

from compat import now_ms, uid

# Grace for the scheduler: delivery must happen at most this long after it is due.
GRACE_S = 3.0


def test_delay_string_get_works_at_once_and_delivery_waits(client, sink):
    path = f"/delay-str/{uid()}"
    t0 = time.time()
    res = client.message.publish(url=sink.url(path), body="later", delay="3s")

    msg = client.message.get(res.message_id)  # must work immediately while delayed
    assert msg.message_id == res.message_id
    assert msg.not_before >= now_ms(), "notBefore (ms) must be in the future for a delayed message"
    assert int(t0 * 1000) + 2500 <= msg.not_before <= int(time.time() * 1000) + 3500

    time.sleep(max(0.0, t0 + 2.0 - time.time()))
    assert sink.requests(path) == [], "delivered before the delay elapsed"

    (rec,) = sink.wait_for(path, 1, timeout=3.0 + GRACE_S)
    assert rec.t >= t0 + 2.9, f"delivered {rec.t - t0:.2f}s after publish, delay was 3s"
    assert rec.body == b"later"


def test_delay_int_seconds(client, sink):
    path = f"/delay-int/{uid()}"
    t0 = time.time()
    res = client.message.publish(url=sink.url(path), body="x", delay=2)
    msg = client.message.get(res.message_id)
    assert int(t0 * 1000) + 1500 <= msg.not_before <= int(time.time() * 1000) + 2500
    (rec,) = sink.wait_for(path, 1, timeout=2.0 + GRACE_S)
    assert rec.t >= t0 + 1.9, f"delivered {rec.t - t0:.2f}s after publish, delay was 2s"


def test_not_before_absolute_unix_seconds(client, sink):
    path = f"/notbefore/{uid()}"
    nb = int(time.time()) + 3
    res = client.message.publish(url=sink.url(path), body="x", not_before=nb)
    msg = client.message.get(res.message_id)
    assert msg.not_before == nb * 1000, "Upstash-Not-Before is unix seconds; notBefore is reported in ms"
    (rec,) = sink.wait_for(path, 1, timeout=(nb - time.time()) + GRACE_S)
    assert rec.t >= nb - 0.1, f"delivered {nb - rec.t:.2f}s before not_before"


def test_not_before_wins_over_delay(client, sink):
    path = f"/nb-wins/{uid()}"
    nb = int(time.time()) + 3
    res = client.message.publish(url=sink.url(path), body="x", delay="1s", not_before=nb)
    msg = client.message.get(res.message_id)
    assert msg.not_before == nb * 1000
    (rec,) = sink.wait_for(path, 1, timeout=(nb - time.time()) + GRACE_S)
    assert rec.t >= nb - 0.1, "Upstash-Not-Before must win over Upstash-Delay"


def test_get_works_while_message_is_retrying(client, sink, server):
    """3.1 / 4.1: message.get works while a message waits for its next retry; notBefore and
    createdAt are always emitted as integer ms."""
    from compat import Reply

    path = f"/nb-created/{uid()}"
    sink.script(path, [Reply(status=500)])
    res = client.message.publish(url=sink.url(path), body="x", retries=1, retry_delay="60000")
    sink.wait_for(path, 1)
    try:
        msg = client.message.get(res.message_id)
        assert msg.message_id == res.message_id
        assert msg.max_retries == 1
        assert msg.not_before >= msg.created_at > 1_000_000_000_000
        raw = server.raw("GET", f"/v2/messages/{res.message_id}").json()
        assert isinstance(raw["notBefore"], int) and isinstance(raw["createdAt"], int)
    finally:
        client.message.cancel(res.message_id)
