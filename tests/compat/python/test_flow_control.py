"""WIRE.md 3.11 and 4.7: flow-control keys and global parallelism."""

import time

import pytest
from qstash.errors import QStashError

from compat import USER1_TOKEN, Reply, error_status, uid, wait_until


def overlap(recs, hold):
    ts = sorted(r.t for r in recs)
    return max(sum(1 for t in ts[: i + 1] if ts[i] < t + hold) for i in range(len(ts)))


def test_get_unknown_key_is_404(client):
    with pytest.raises(QStashError) as e:
        client.flow_control.get(f"nope-{uid()}")
    assert error_status(e.value) == 404


def test_parallelism_and_info_while_messages_wait(client, sink):
    key, path = f"par-{uid()}", f"/fc-par/{uid()}"
    sink.script(path, [Reply(sleep=0.5)] * 6)
    for i in range(6):
        client.message.publish(url=sink.url(path), body=str(i), flow_control={"key": key, "parallelism": 2})
    sink.wait_for(path, 2)
    info = client.flow_control.get(key)
    assert info.key == key
    assert (info.parallelism_max, info.parallelism_count, info.wait_list_size) == (2, 2, 4)
    assert info.is_paused is False and info.is_pinned_parallelism is False
    recs = sink.wait_for(path, 6, timeout=15)
    assert overlap(recs, 0.5) == 2


def test_rate_per_period(client, sink):
    key, path = f"rate-{uid()}", f"/fc-rate/{uid()}"
    for i in range(5):
        client.message.publish(url=sink.url(path), body=str(i), flow_control={"key": key, "rate": 2, "period": 2})
    recs = sink.wait_for(path, 5, timeout=20)
    ts = sorted(r.t for r in recs)
    assert ts[-1] - ts[0] >= 3.6
    # Starts are limited; arrivals lag them by a commit and a request, which a
    # busy machine stretches, so the window allows 300 ms of that lag.
    assert max(sum(1 for t in ts[i:] if t < ts[i] + 1.7) for i in range(len(ts))) == 2
    info = client.flow_control.get(key)
    assert (info.rate_max, info.rate_period) == (2, 2)


def test_pause_resume(client, sink):
    key, path = f"pause-{uid()}", f"/fc-pause/{uid()}"
    client.flow_control.pause(key)
    assert client.flow_control.get(key).is_paused is True
    client.message.publish(url=sink.url(path), body="x", flow_control={"key": key, "parallelism": 1})
    time.sleep(0.6)
    assert sink.requests(path) == []
    assert client.flow_control.get(key).wait_list_size == 1
    client.flow_control.resume(key)
    assert client.flow_control.get(key).is_paused is False
    sink.wait_for(path, 1)


def test_pin_unpin_and_reset_rate(client, sink):
    key, path = f"pin-{uid()}", f"/fc-pin/{uid()}"
    client.message.publish(url=sink.url(path), body="a", flow_control={"key": key, "parallelism": 5})
    # "a" starts before the pin, so it is not counted against the pinned
    # rate: on a busy machine the pin could otherwise land before its start.
    sink.wait_for(path, 1)
    client.flow_control.pin(key, {"parallelism": 3, "rate": 20, "period": 120})
    info = client.flow_control.get(key)
    assert (info.parallelism_max, info.rate_max, info.rate_period) == (3, 20, 120)
    assert info.is_pinned_parallelism is True and info.is_pinned_rate is True
    client.message.publish(url=sink.url(path), body="b", flow_control={"key": key, "parallelism": 9, "rate": 99})
    info = client.flow_control.get(key)
    assert (info.parallelism_max, info.rate_max) == (3, 20), "pinned values ignore incoming configuration"
    sink.wait_for(path, 2)
    wait_until(lambda: client.flow_control.get(key).rate_count == 1, 5, what="rate count 1")
    client.flow_control.reset_rate(key)
    info = client.flow_control.get(key)
    assert info.rate_count == 0 and abs(info.rate_period_start - time.time()) < 3
    client.flow_control.unpin(key, {"parallelism": True, "rate": True})
    info = client.flow_control.get(key)
    assert info.is_pinned_parallelism is False and info.is_pinned_rate is False
    client.message.publish(url=sink.url(path), body="c", flow_control={"key": key, "parallelism": 9})
    assert client.flow_control.get(key).parallelism_max == 9


def test_keys_are_per_user(client, make_client, sink):
    key = f"own-{uid()}"
    client.message.publish(url=sink.url(f"/own/{uid()}"), body="x", flow_control={"key": key, "rate": 5})
    with pytest.raises(QStashError) as e:
        make_client(USER1_TOKEN).flow_control.get(key)
    assert error_status(e.value) == 404


def test_global_parallelism(client):
    info = client.flow_control.get_global_parallelism()
    assert info.parallelism_max > 0 and info.parallelism_count >= 0
