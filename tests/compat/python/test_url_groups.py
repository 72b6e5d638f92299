"""WIRE.md 3.7 (URL groups) and 3.1-3.3 (publish, enqueue and batch to a group)."""

import pytest
from qstash.errors import QStashError

from compat import USER1_TOKEN, error_status, uid


def test_upsert_get_list_remove_and_delete(client):
    name = f"ug-{uid()}"
    client.url_group.delete(name)  # missing: still fine
    client.url_group.upsert_endpoints(
        url_group=name,
        endpoints=[{"name": "e1", "url": "http://127.0.0.1:1/e1"}, {"url": "http://127.0.0.1:1/e2"}],
    )
    g = client.url_group.get(name)
    assert g.name == name and g.created_at > 0 and g.updated_at >= g.created_at
    assert [(e.name, e.url) for e in g.endpoints] == [("e1", "http://127.0.0.1:1/e1"), (None, "http://127.0.0.1:1/e2")]
    assert name in [x.name for x in client.url_group.list()]

    client.url_group.remove_endpoints(url_group=name, endpoints=[{"name": "e1"}])
    assert [e.url for e in client.url_group.get(name).endpoints] == ["http://127.0.0.1:1/e2"]
    client.url_group.remove_endpoints(url_group=name, endpoints=[{"url": "http://127.0.0.1:1/e2"}])
    with pytest.raises(QStashError) as e:
        client.url_group.get(name)
    assert error_status(e.value) == 404

    client.url_group.upsert_endpoints(url_group=name, endpoints=[{"url": "http://127.0.0.1:1/x"}])
    client.url_group.delete(name)
    assert name not in [x.name for x in client.url_group.list()]


def test_groups_are_per_user(client, make_client):
    name = f"ug-own-{uid()}"
    client.url_group.upsert_endpoints(url_group=name, endpoints=[{"url": "http://127.0.0.1:1/x"}])
    other = make_client(USER1_TOKEN)
    with pytest.raises(QStashError) as e:
        other.url_group.get(name)
    assert error_status(e.value) == 404
    assert name not in [g.name for g in other.url_group.list()]


def test_bad_group_name_is_rejected(client):
    with pytest.raises(QStashError) as e:
        client.url_group.upsert_endpoints(url_group="bad name!", endpoints=[{"url": "http://127.0.0.1:1/x"}])
    assert error_status(e.value) == 400


def test_publish_enqueue_and_batch_fan_out(client, sink):
    name = f"fan-{uid()}"
    a, b = f"/fan/{uid()}/a", f"/fan/{uid()}/b"
    client.url_group.upsert_endpoints(
        url_group=name, endpoints=[{"name": "first", "url": sink.url(a)}, {"url": sink.url(b)}]
    )
    res = client.message.publish_json(url_group=name, body={"n": 1})
    assert isinstance(res, list) and [r.url for r in res] == [sink.url(a), sink.url(b)]
    (ra,) = sink.wait_for(a, 1)
    (rb,) = sink.wait_for(b, 1)
    assert ra.header("Upstash-Topic-Name") == name and rb.header("Upstash-Topic-Name") == name
    assert ra.header("Upstash-Endpoint-Name") == "first"
    assert ra.header("Upstash-Message-Id") == res[0].message_id

    res = client.message.enqueue(queue=f"fanq-{uid()}", url_group=name, body="e")
    assert isinstance(res, list) and len(res) == 2
    sink.wait_for(a, 2)
    sink.wait_for(b, 2)

    res = client.message.batch([{"url_group": name, "body": "b"}, {"url": sink.url(a), "body": "c"}])
    assert len(res) == 2 and isinstance(res[0], list) and len(res[0]) == 2
    sink.wait_for(a, 4)
    sink.wait_for(b, 3)


def test_publish_to_unknown_group_is_404(client):
    with pytest.raises(QStashError) as e:
        client.message.publish(url_group=f"nope-{uid()}", body="x")
    assert error_status(e.value) == 404


def test_message_shows_topic_and_endpoint(client, sink, server):
    name = f"show-{uid()}"
    client.url_group.upsert_endpoints(url_group=name, endpoints=[{"name": "ep", "url": sink.url(f"/show/{uid()}")}])
    (res,) = client.message.publish(url_group=name, body="x", delay="10s")
    m = client.message.get(res.message_id)
    assert m.url_group == name
    # The SDK's Message has no endpoint name; the raw object carries it.
    raw = server.raw("GET", f"/v2/messages/{res.message_id}").json()
    assert raw["endpointName"] == "ep"
    client.message.cancel(res.message_id)
