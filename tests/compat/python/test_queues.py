"""WIRE.md 3.2 (enqueue), 3.3 (batch with queue) and 3.5 (queues): FIFO, parallelism, pause."""

import time

import pytest
from qstash.errors import QStashError

from compat import USER1_TOKEN, Reply, error_status, uid, wait_until


def overlap(recs, hold):
    ts = sorted(r.t for r in recs)
    return max(sum(1 for t in ts[: i + 1] if ts[i] < t + hold) for i in range(len(ts)))


def test_upsert_get_list_pause_resume_delete(client):
    name = f"q-{uid()}"
    client.queue.upsert(name, parallelism=2)
    q = client.queue.get(name)
    assert (q.name, q.parallelism, q.paused, q.lag) == (name, 2, False, 0)
    assert q.created_at > 0 and q.updated_at >= q.created_at
    client.queue.pause(name)
    assert client.queue.get(name).paused is True
    client.queue.resume(name)
    assert client.queue.get(name).paused is False
    client.queue.upsert(name, paused=True)
    q = client.queue.get(name)
    assert (q.parallelism, q.paused) == (1, True)
    assert name in [x.name for x in client.queue.list()]
    client.queue.delete(name)
    assert name not in [x.name for x in client.queue.list()]
    with pytest.raises(QStashError) as e:
        client.queue.get(name)
    assert error_status(e.value) == 404


def test_queues_are_per_user(client, make_client):
    name = f"q-own-{uid()}"
    client.queue.upsert(name)
    other = make_client(USER1_TOKEN)
    with pytest.raises(QStashError) as e:
        other.queue.get(name)
    assert error_status(e.value) == 404
    assert name not in [q.name for q in other.queue.list()]


def test_bad_queue_name_is_400_with_the_documented_message(client):
    with pytest.raises(QStashError) as e:
        client.queue.upsert("bad name")
    assert error_status(e.value) == 400 and "Queue name is invalid" in str(e.value)


def test_enqueue_creates_the_queue_and_delivers_in_order_across_a_retry(client, sink):
    name, path = f"fifo-{uid()}", f"/fifo/{uid()}"
    sink.script(path, [Reply(status=500)] + [Reply(sleep=0.1)] * 5)
    ids = [
        client.message.enqueue(queue=name, url=sink.url(path), body=str(i), retry_delay="200").message_id
        for i in range(5)
    ]
    m = client.message.get(ids[-1])
    assert m.queue == name
    recs = sink.wait_for(path, 6, timeout=15)
    assert [r.body.decode() for r in recs] == ["0", "0", "1", "2", "3", "4"]
    assert overlap(recs[1:], 0.1) == 1
    q = client.queue.get(name)
    assert q.parallelism == 1
    wait_until(lambda: client.queue.get(name).lag == 0, 5, what="lag 0")


def test_parallelism_limits_in_flight(client, sink):
    name, path = f"par-{uid()}", f"/par/{uid()}"
    client.queue.upsert(name, parallelism=2)
    sink.script(path, [Reply(sleep=0.3)] * 8)
    for i in range(8):
        client.message.enqueue_json(queue=name, url=sink.url(path), body={"i": i})
    recs = sink.wait_for(path, 8, timeout=15)
    assert overlap(recs, 0.3) == 2


def test_paused_queue_holds_and_lag_counts_then_resume_releases(client, sink):
    name, path = f"held-{uid()}", f"/held/{uid()}"
    client.queue.upsert(name, paused=True)
    for i in range(3):
        client.message.enqueue(queue=name, url=sink.url(path), body=str(i))
    time.sleep(0.6)
    assert sink.requests(path) == []
    assert client.queue.get(name).lag == 3
    client.queue.resume(name)
    recs = sink.wait_for(path, 3)
    assert [r.body for r in recs] == [b"0", b"1", b"2"]
    wait_until(lambda: client.queue.get(name).lag == 0, 5, what="lag 0")


def test_batch_items_with_queue_are_enqueued(client, sink):
    name, path = f"bq-{uid()}", f"/bq/{uid()}"
    res = client.message.batch(
        [{"queue": name, "url": sink.url(path), "body": str(i)} for i in range(3)]
    )
    assert len(res) == 3
    recs = sink.wait_for(path, 3)
    assert [r.body for r in recs] == [b"0", b"1", b"2"]
    assert client.queue.get(name).parallelism == 1
