"""Invalid publish parameters are rejected with a 4xx (WIRE.md 2) and nothing is delivered."""

import time

import pytest
from qstash.errors import QStashError

from compat import error_status, uid

CASES = {
    "invalid_delay_string": dict(delay="abc"),
    "invalid_delay_unit": dict(delay="10x"),
    "invalid_method": dict(method="FOO"),
    "invalid_retry_delay_expression": dict(retry_delay="pow(2,"),
    "retry_delay_unknown_function": dict(retry_delay="launch(retried)"),
    "negative_retries": dict(retries=-1),
    "non_numeric_retries": dict(retries="many"),  # type: ignore[dict-item]
    "invalid_timeout": dict(timeout="soon"),
    "invalid_not_before": dict(not_before="tomorrow"),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("kwargs", list(CASES.values()), ids=list(CASES.keys()))
def test_bad_publish_parameter_is_4xx_and_not_delivered(client, sink, kwargs):
    path = f"/bad/{uid()}"
    with pytest.raises(QStashError) as ei:
        client.message.publish(url=sink.url(path), body="x", **kwargs)
    status = error_status(ei.value)
    assert 400 <= status < 500, f"expected 4xx, got {status}: {ei.value}"
    time.sleep(0.3)
    assert sink.requests(path) == []


@pytest.mark.parametrize("destination", ["ftp://x", "ftp://127.0.0.1/x", "no-such-url-group-never-created"])
def test_bad_destination_is_4xx(client, destination):
    with pytest.raises(QStashError) as ei:
        client.message.publish(url=destination, body="x")
    status = error_status(ei.value)
    assert 400 <= status < 500, f"expected 4xx, got {status}: {ei.value}"


def test_bad_item_in_batch_is_4xx(client, sink):
    path = f"/bad-batch/{uid()}"
    with pytest.raises(QStashError) as ei:
        client.message.batch(
            [
                {"url": sink.url(path), "body": "ok"},
                {"url": sink.url(path), "body": "bad", "delay": "abc"},
            ]
        )
    status = error_status(ei.value)
    assert 400 <= status < 500, f"expected 4xx, got {status}: {ei.value}"


def test_batch_body_not_an_array_is_4xx(server):
    r = server.raw("POST", "/v2/batch", headers={"Content-Type": "application/json"}, content=b'{"destination": 1}')
    assert 400 <= r.status_code < 500
    r = server.raw("POST", "/v2/batch", headers={"Content-Type": "application/json"}, content=b"not json")
    assert 400 <= r.status_code < 500


def test_error_body_is_json_with_error_field(server):
    r = server.raw("POST", "/v2/publish/http://127.0.0.1:9/x", headers={"Upstash-Delay": "abc"}, content=b"x")
    assert 400 <= r.status_code < 500
    j = r.json()
    assert isinstance(j.get("error"), str) and j["error"]
