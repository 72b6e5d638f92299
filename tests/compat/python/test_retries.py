"""WIRE.md 2 (Upstash-Retries / -Retry-Delay / -Timeout) and 8 (retry semantics, Retry-After)."""

import time

import pytest

from qstash.errors import QStashError

from compat import Reply, error_status, uid, wait_until

TOL = 0.05  # seconds of timer slack allowed below a requested delay


def _gone(client, message_id):
    try:
        client.message.get(message_id)
        return False
    except QStashError as e:
        assert error_status(e) == 404
        return True


def test_retry_until_success_with_retried_header_0_1_2(client, sink):
    path = f"/retry/{uid()}"
    sink.script(path, [Reply(status=500), Reply(status=500), Reply(status=200)])
    res = client.message.publish(
        url=sink.url(path), body="payload", retries=3, retry_delay="pow(2, retried) * 100"
    )
    recs = sink.wait_for(path, 3, timeout=8)
    assert [r.header("Upstash-Retried") for r in recs] == ["0", "1", "2"]
    assert all(r.header("Upstash-Message-Id") == res.message_id for r in recs)
    assert all(r.body == b"payload" for r in recs)
    # retry_delay is in ms with retried = 0 for the first retry: 100 ms, then 200 ms.
    assert recs[1].t - recs[0].t >= 0.1 - TOL, f"first retry after {recs[1].t - recs[0].t:.3f}s"
    assert recs[2].t - recs[1].t >= 0.2 - TOL, f"second retry after {recs[2].t - recs[1].t:.3f}s"
    time.sleep(1.0)
    assert len(sink.requests(path)) == 3, "delivered again after a 2xx"
    wait_until(lambda: _gone(client, res.message_id), 5, what="404 after successful delivery")


def test_retry_delay_constant_expression_is_milliseconds(client, sink):
    path = f"/retry-const/{uid()}"
    sink.script(path, [Reply(status=503), Reply(status=200)])
    client.message.publish(url=sink.url(path), body="x", retries=2, retry_delay="1000")
    recs = sink.wait_for(path, 2, timeout=8)
    gap = recs[1].t - recs[0].t
    assert 1.0 - TOL <= gap <= 4.0, f"retry_delay 1000 ms, got a gap of {gap:.3f}s"


def test_retries_exhausted_after_one_plus_retries_attempts(client, sink):
    path = f"/retry-exhaust/{uid()}"
    sink.script(path, [Reply(status=500)] * 10)
    res = client.message.publish(url=sink.url(path), body="x", retries=2, retry_delay="100")
    recs = sink.wait_for(path, 3, timeout=8)
    assert [r.header("Upstash-Retried") for r in recs] == ["0", "1", "2"]
    time.sleep(1.0)
    assert len(sink.requests(path)) == 3, "more attempts than 1 + retries"
    wait_until(lambda: _gone(client, res.message_id), 5, what="404 once retries are exhausted")


def test_retries_zero_means_single_attempt(client, sink):
    path = f"/retry-zero/{uid()}"
    sink.script(path, [Reply(status=500)] * 5)
    client.message.publish(url=sink.url(path), body="x", retries=0, retry_delay="100")
    sink.wait_for(path, 1)
    time.sleep(1.0)
    assert len(sink.requests(path)) == 1


def test_retry_after_header_overrides_retry_delay(client, sink):
    path = f"/retry-after/{uid()}"
    sink.script(path, [Reply(status=429, headers={"Retry-After": "1"}), Reply(status=200)])
    # A 60 s retry delay: only Retry-After can bring the second attempt within the wait below.
    client.message.publish(url=sink.url(path), body="x", retries=3, retry_delay="60000")
    recs = sink.wait_for(path, 2, timeout=10)
    gap = recs[1].t - recs[0].t
    assert 1.0 - TOL <= gap <= 8.0, f"Retry-After: 1 should give ~1 s, got {gap:.3f}s"
    assert recs[1].header("Upstash-Retried") == "1"


def test_timeout_counts_as_failed_attempt(client, sink):
    path = f"/timeout/{uid()}"
    # First attempt hangs for 4 s, longer than the 1 s timeout; the second answers at once.
    sink.script(path, [Reply(status=200, sleep=4.0), Reply(status=200)])
    res = client.message.publish(url=sink.url(path), body="x", timeout="1s", retries=1, retry_delay="100")
    recs = sink.wait_for(path, 2, timeout=6)
    gap = recs[1].t - recs[0].t
    assert gap >= 1.0 - TOL, f"retried after {gap:.3f}s: the timeout is 1 s"
    assert gap < 3.5, f"retried after {gap:.3f}s: the 1 s timeout was not applied (sink slept 4 s)"
    assert recs[1].header("Upstash-Retried") == "1"
    wait_until(lambda: _gone(client, res.message_id), 5, what="404 after delivery on the retry")


def test_timeout_int_seconds_with_no_retries_fails_message(client, sink):
    path = f"/timeout-int/{uid()}"
    sink.script(path, [Reply(status=200, sleep=4.0)])
    t0 = time.time()
    res = client.message.publish(url=sink.url(path), body="x", timeout=1, retries=0)
    sink.wait_for(path, 1)
    wait_until(lambda: _gone(client, res.message_id), 3.5, what="message to fail after its 1 s timeout")
    assert time.time() - t0 < 4.0
    assert len(sink.requests(path)) == 1


def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)


@pytest.mark.parametrize(
    "status, header, value",
    [
        (503, "Retry-After", "1"),
        (429, "Retry-After", "HTTP-DATE+2"),
        (429, "X-RateLimit-Reset", "1"),
        (429, "X-RateLimit-Reset-Requests", "1s"),
        (429, "X-RateLimit-Reset-Tokens", "1s"),
    ],
    ids=["retry-after-503", "retry-after-http-date", "x-ratelimit-reset", "reset-requests-go-duration", "reset-tokens-go-duration"],
)
def test_rate_limit_reset_headers_override_retry_delay(client, sink, status, header, value):
    path = f"/reset-hdr/{uid()}"
    if value == "HTTP-DATE+2":
        value = _http_date(time.time() + 2)
    sink.script(path, [Reply(status=status, headers={header: value}), Reply(status=200)])
    client.message.publish(url=sink.url(path), body="x", retries=3, retry_delay="60000")
    recs = sink.wait_for(path, 2, timeout=10)
    gap = recs[1].t - recs[0].t
    assert 0.5 <= gap <= 8.0, f"{header}: {value} should override the 60 s retry delay; got {gap:.3f}s"


def test_489_with_nonretryable_header_stops_retries(client, sink):
    path = f"/nonretryable/{uid()}"
    sink.script(path, [Reply(status=489, headers={"Upstash-NonRetryable-Error": "true"})] + [Reply(status=200)] * 3)
    res = client.message.publish(url=sink.url(path), body="x", retries=3, retry_delay="100")
    sink.wait_for(path, 1)
    wait_until(lambda: _gone(client, res.message_id), 5, what="message to fail at once")
    time.sleep(0.5)
    assert len(sink.requests(path)) == 1, "a 489 + Upstash-NonRetryable-Error must not be retried"
