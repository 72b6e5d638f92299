"""WIRE.md 3.10 and 11: per-user signing keys, rotation."""

import pytest
from qstash import Receiver
from qstash.errors import SignatureError

from compat import (
    DEFAULT_CURRENT,
    DEFAULT_NEXT,
    SIG_KEY_RE,
    USER1_CURRENT,
    USER1_NEXT,
    USER1_TOKEN,
    USER2_CURRENT,
    USER2_NEXT,
    USER2_TOKEN,
    USER3_CURRENT,
    USER3_NEXT,
    USER3_TOKEN,
    uid,
)


def test_signing_key_get_returns_dev_keys(client):
    k = client.signing_key.get()
    assert (k.current, k.next) == (DEFAULT_CURRENT, DEFAULT_NEXT)


@pytest.mark.parametrize(
    "token, current, nxt",
    [(USER1_TOKEN, USER1_CURRENT, USER1_NEXT), (USER2_TOKEN, USER2_CURRENT, USER2_NEXT)],
    ids=["testUser1", "testUser2"],
)
def test_signing_keys_are_per_user(make_client, token, current, nxt):
    k = make_client(token).signing_key.get()
    assert (k.current, k.next) == (current, nxt)


def test_keys_endpoint_raw_shape(server):
    # The JS dev-mode health check wants exactly {"current","next"} from GET /v2/keys.
    r = server.raw("GET", "/v2/keys")
    assert r.status_code == 200
    assert r.json() == {"current": DEFAULT_CURRENT, "next": DEFAULT_NEXT}


def test_rotate_promotes_next_and_new_key_signs_deliveries(make_client, client, sink):
    c3 = make_client(USER3_TOKEN)
    before = c3.signing_key.get()
    assert (before.current, before.next) == (USER3_CURRENT, USER3_NEXT)

    rotated = c3.signing_key.rotate()
    assert rotated.current == USER3_NEXT, "next must become current"
    assert SIG_KEY_RE.match(rotated.next), f"new next key has a bad format: {rotated.next!r}"
    assert rotated.next not in (USER3_CURRENT, USER3_NEXT)

    after = c3.signing_key.get()
    assert (after.current, after.next) == (rotated.current, rotated.next)

    # Other users are untouched.
    k = client.signing_key.get()
    assert (k.current, k.next) == (DEFAULT_CURRENT, DEFAULT_NEXT)

    # A delivery after rotation is signed with the new current key.
    path = f"/rotated/{uid()}"
    url = sink.url(path)
    c3.message.publish(url=url, body="after rotation")
    (rec,) = sink.wait_for(path, 1)
    sig = rec.header("Upstash-Signature")
    Receiver(current_signing_key=rotated.current, next_signing_key=rotated.next).verify(
        signature=sig, body="after rotation", url=url
    )
    Receiver(current_signing_key=rotated.current, next_signing_key="sig_notTheRightKeyAtAll1234567").verify(
        signature=sig, body="after rotation", url=url
    )
    with pytest.raises(SignatureError):
        Receiver(current_signing_key=USER3_CURRENT, next_signing_key=USER3_CURRENT).verify(
            signature=sig, body="after rotation", url=url
        )
