"""WIRE.md 1 (Authentication) and per-user isolation."""

import pytest
from qstash import QStash
from qstash.errors import QStashError

from compat import USER1_TOKEN, error_status, uid


def _status_of(fn):
    with pytest.raises(QStashError) as ei:
        fn()
    return error_status(ei.value)


@pytest.mark.parametrize(
    "token",
    [
        "wrong-token",
        # Well-formed dev token (base64 JSON) with a wrong password.
        "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoid3JvbmcifQ==",
    ],
)
def test_wrong_token_is_rejected_with_401(server, sink, token):
    bad = QStash(token, base_url=server.base_url, retry=False)
    path = f"/unauth/{uid()}"
    assert _status_of(lambda: bad.message.publish(url=sink.url(path), body="x")) == 401
    assert _status_of(lambda: bad.signing_key.get()) == 401
    assert _status_of(lambda: bad.message.get("msg_x")) == 401
    assert sink.requests(path) == []


def test_missing_authorization_is_401(server):
    r = server.raw("GET", "/v2/keys", token=None)
    assert r.status_code == 401
    r = server.raw("POST", "/v2/publish/http://127.0.0.1:9/x", token=None, content=b"x")
    assert r.status_code == 401


def test_message_of_user_a_is_invisible_to_user_b(client, make_client, sink):
    b = make_client(USER1_TOKEN)
    path = f"/isolation/{uid()}"
    res = client.message.publish(url=sink.url(path), body="x", delay="30s")
    try:
        assert _status_of(lambda: b.message.get(res.message_id)) == 404
        assert _status_of(lambda: b.message.cancel(res.message_id)) == 404
        assert b.message.cancel_many([res.message_id]) == 0
        # Still there for user A.
        assert client.message.get(res.message_id).message_id == res.message_id
    finally:
        client.message.cancel(res.message_id)


def test_deduplication_is_per_user(client, make_client, sink):
    b = make_client(USER1_TOKEN)
    path = f"/dedup-user/{uid()}"
    dedup = f"shared-{uid()}"
    a_res = client.message.publish(url=sink.url(path), body="a", deduplication_id=dedup)
    b_res = b.message.publish(url=sink.url(path), body="b", deduplication_id=dedup)
    assert b_res.deduplicated is False
    assert b_res.message_id != a_res.message_id
    sink.wait_for(path, 2)
