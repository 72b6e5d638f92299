"""WIRE.md 7: every delivery carries an Upstash-Signature JWT that the PY Receiver accepts."""

import base64
import hashlib

import pytest
from qstash import Receiver
from qstash.errors import SignatureError

from compat import DEFAULT_CURRENT, DEFAULT_NEXT, decode_jwt, uid


def _deliver(client, sink, body="signed body", query="?a=b"):
    path = f"/sig/{uid()}/x"
    url = sink.url(path) + query
    client.message.publish(url=url, body=body, content_type="text/plain")
    (rec,) = sink.wait_for(path, 1)
    return url, rec


def test_delivery_signature_verifies_with_python_receiver_and_exact_url(client, sink):
    url, rec = _deliver(client, sink)
    sig = rec.header("Upstash-Signature")
    assert sig, "delivery has no Upstash-Signature header"
    Receiver(current_signing_key=DEFAULT_CURRENT, next_signing_key=DEFAULT_NEXT).verify(
        signature=sig, body=rec.body.decode(), url=url
    )


def test_signature_is_made_with_the_current_key(client, sink):
    url, rec = _deliver(client, sink)
    sig = rec.header("Upstash-Signature")
    # Only the current key is real: must still verify.
    Receiver(current_signing_key=DEFAULT_CURRENT, next_signing_key="sig_notTheRightKeyAtAll1234567").verify(
        signature=sig, body=rec.body.decode(), url=url
    )
    # Only the next key: must fail (the server signs with current).
    with pytest.raises(SignatureError):
        Receiver(current_signing_key=DEFAULT_NEXT, next_signing_key=DEFAULT_NEXT).verify(
            signature=sig, body=rec.body.decode(), url=url
        )


def test_signature_rejects_other_url_or_body(client, sink):
    url, rec = _deliver(client, sink)
    sig = rec.header("Upstash-Signature")
    r = Receiver(current_signing_key=DEFAULT_CURRENT, next_signing_key=DEFAULT_NEXT)
    with pytest.raises(SignatureError):
        r.verify(signature=sig, body=rec.body.decode(), url=url.split("?")[0])  # query is part of sub
    with pytest.raises(SignatureError):
        r.verify(signature=sig, body=rec.body.decode() + "tampered", url=url)


def test_empty_body_delivery_signature_verifies(client, sink):
    path = f"/sig-empty/{uid()}"
    url = sink.url(path)
    client.message.publish(url=url)
    (rec,) = sink.wait_for(path, 1)
    assert rec.body == b""
    Receiver(current_signing_key=DEFAULT_CURRENT, next_signing_key=DEFAULT_NEXT).verify(
        signature=rec.header("Upstash-Signature"), body="", url=url
    )


def test_signature_claims_match_wire_spec(client, sink):
    body = "claims body \u00e9\u4e2d"  # non-ASCII: hash is over the UTF-8 bytes
    url, rec = _deliver(client, sink, body=body)
    header, claims = decode_jwt(rec.header("Upstash-Signature"))
    assert header.get("alg") == "HS256"
    assert header.get("typ") == "JWT"
    assert claims["iss"] == "Upstash"
    assert claims["sub"] == url
    assert isinstance(claims["jti"], str) and claims["jti"].startswith("jwt_")
    assert "aud" not in claims
    assert "nbf" in claims and claims["nbf"] <= rec.t
    assert claims["iat"] <= rec.t, "iat must never be in the future"
    assert abs(claims["exp"] - (rec.t + 300)) <= 5, "exp must be now + 300 s"
    digest = base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).decode()
    assert claims["body"].rstrip("=") == digest.rstrip("="), "body claim = base64url(sha256(body))"
    Receiver(current_signing_key=DEFAULT_CURRENT, next_signing_key=DEFAULT_NEXT).verify(
        signature=rec.header("Upstash-Signature"), body=body, url=url
    )


def test_each_retry_attempt_is_signed(client, sink):
    from compat import Reply

    path = f"/sig-retry/{uid()}"
    url = sink.url(path)
    sink.script(path, [Reply(status=500), Reply(status=200)])
    client.message.publish(url=url, body="retry me", retries=1, retry_delay="100")
    recs = sink.wait_for(path, 2)
    r = Receiver(current_signing_key=DEFAULT_CURRENT, next_signing_key=DEFAULT_NEXT)
    for rec in recs:
        r.verify(signature=rec.header("Upstash-Signature"), body="retry me", url=url)
