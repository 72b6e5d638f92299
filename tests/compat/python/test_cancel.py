"""WIRE.md 3.4: cancel, cancel_many (legacy JSON body form), cancel_all."""

import time

import pytest
from qstash.errors import QStashError

from compat import USER2_TOKEN, error_status, uid


def _assert_404(fn):
    with pytest.raises(QStashError) as ei:
        fn()
    assert error_status(ei.value) == 404


def test_cancel_delayed_message_then_get_404_and_never_delivered(client, sink):
    path = f"/cancel/{uid()}"
    t0 = time.time()
    res = client.message.publish(url=sink.url(path), body="x", delay="2s")
    client.message.cancel(res.message_id)
    _assert_404(lambda: client.message.get(res.message_id))
    time.sleep(max(0.0, t0 + 3.5 - time.time()))
    assert sink.requests(path) == [], "a cancelled message was delivered"


def test_cancel_unknown_message_is_404(client):
    _assert_404(lambda: client.message.cancel("msg_unknown" + uid()))


def test_cancel_twice_second_is_404(client, sink):
    res = client.message.publish(url=sink.url(f"/cancel2/{uid()}"), body="x", delay="30s")
    client.message.cancel(res.message_id)
    _assert_404(lambda: client.message.cancel(res.message_id))


def test_cancel_many_json_body_counts_exactly(client, sink):
    path = f"/cancel-many/{uid()}"
    t0 = time.time()
    a = client.message.publish(url=sink.url(path), body="a", delay="2s")
    b = client.message.publish(url=sink.url(path), body="b", delay="2s")
    keep = client.message.publish(url=sink.url(path + "/keep"), body="keep", delay="2s")
    n = client.message.cancel_many([a.message_id, b.message_id, "msg_unknown" + uid()])
    assert n == 2, "unknown ids must not be counted (and must not fail the request)"
    _assert_404(lambda: client.message.get(a.message_id))
    _assert_404(lambda: client.message.get(b.message_id))
    assert client.message.get(keep.message_id).message_id == keep.message_id
    time.sleep(max(0.0, t0 + 3.5 - time.time()))
    assert sink.requests(path) == []
    assert len(sink.requests(path + "/keep")) == 1


def test_cancel_all_counts_exactly_and_is_per_user(client, make_client, sink):
    # testUser2 is used by no other test, so its pending-message count is exactly what we publish.
    c2 = make_client(USER2_TOKEN)
    path = f"/cancel-all/{uid()}"
    ids = [c2.message.publish(url=sink.url(path), body=str(i), delay="30s").message_id for i in range(3)]
    mine = client.message.publish(url=sink.url(path + "/default"), body="x", delay="30s")
    try:
        assert c2.message.cancel_all() == 3
        for i in ids:
            _assert_404(lambda: c2.message.get(i))
        assert c2.message.cancel_all() == 0
        # defaultUser's message is untouched by testUser2's cancel_all.
        assert client.message.get(mine.message_id).message_id == mine.message_id
    finally:
        client.message.cancel(mine.message_id)


def test_cancel_in_flight_message_succeeds_and_stops_retries(client, sink):
    from compat import Reply

    path = f"/cancel-inflight/{uid()}"
    # The first attempt is held for 1.5 s and then fails; without the cancel it would be retried.
    sink.script(path, [Reply(status=500, sleep=1.5)] + [Reply(status=200)] * 3)
    res = client.message.publish(url=sink.url(path), body="x", retries=3, retry_delay="100")
    sink.wait_for(path, 1)
    client.message.cancel(res.message_id)  # in flight: must not raise
    _assert_404(lambda: client.message.get(res.message_id))
    time.sleep(2.5)
    assert len(sink.requests(path)) == 1, "a cancelled message was retried"
