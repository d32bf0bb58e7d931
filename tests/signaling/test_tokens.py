from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from evidence import Keyring
from signaling.grants import Grant, Role
from signaling.tokens import TokenError, TokenIssuer, TokenOptions, TokenVerifier

pytestmark = pytest.mark.unit

OPTS = TokenOptions(issuer="tiepdan", audience="tiepdan", ttl_s=600, retired_grace_s=3600)


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate(dev=True)


def _code(verifier: TokenVerifier, token: str, **kw: object) -> str:
    with pytest.raises(TokenError) as info:
        verifier.verify(token, **kw)  # type: ignore[arg-type]
    return info.value.code


def test_issued_token_verifies_with_its_claims_and_grants(ring: Keyring) -> None:
    token = TokenIssuer(ring, OPTS).issue("user-7", roles=[Role.VENUE], room="s-2026-12", venue="tien-du")
    claims = TokenVerifier(ring, OPTS).verify(token)
    assert (claims.sub, claims.room, claims.venue, claims.roles) == ("user-7", "s-2026-12", "tien-du", (Role.VENUE,))
    assert claims.has(Grant.PUBLISH) and not claims.has(Grant.MODERATE)
    assert jwt.get_unverified_header(token)["kid"] == ring.active_signing.kid


def test_expired_token_is_refused_with_its_code(ring: Keyring) -> None:
    now = time.time()
    token = TokenIssuer(ring, OPTS).issue("u", roles=[Role.CHAIR], ttl_s=60, now=now - 3600)
    assert _code(TokenVerifier(ring, OPTS), token) == "token_expired"
    assert _code(TokenVerifier(ring, OPTS), token, now=now) == "token_expired"


def test_token_signed_by_another_keyring_is_forged(ring: Keyring) -> None:
    other = Keyring.generate(dev=True)
    forged = TokenIssuer(other, OPTS).issue("u", roles=[Role.CHAIR])
    assert _code(TokenVerifier(ring, OPTS), forged) == "token_unknown_key"
    # Same kid as ours, other key: the signature check catches it.
    header = {"alg": "EdDSA", "kid": ring.active_signing.kid}
    payload = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan", "iat": int(time.time()),
               "exp": int(time.time()) + 60, "jti": "abcdefghij", "roles": ["chair"]}
    forged2 = jwt.encode(payload, other.active_signing.private_pem(), algorithm="EdDSA", headers=header)
    assert _code(TokenVerifier(ring, OPTS), forged2) == "token_signature"


def test_tampered_payload_fails_the_signature(ring: Keyring) -> None:
    token = TokenIssuer(ring, OPTS).issue("u", roles=[Role.VENUE], venue="a")
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["roles"] = ["chair"]
    body2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert _code(TokenVerifier(ring, OPTS), f"{head}.{body2}.{sig}") == "token_signature"


def test_alg_none_and_hs256_are_refused(ring: Keyring) -> None:
    payload = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan", "iat": 1, "exp": 2**31, "jti": "abcdefghij"}
    unsigned = jwt.encode(payload, None, algorithm="none", headers={"kid": ring.active_signing.kid})
    assert _code(TokenVerifier(ring, OPTS), unsigned) == "token_algorithm"
    hs = jwt.encode(payload, "secret-key-of-32-bytes-or-more!!", algorithm="HS256",
                    headers={"kid": ring.active_signing.kid})
    assert _code(TokenVerifier(ring, OPTS), hs) == "token_algorithm"


def test_wrong_audience_and_issuer_are_refused(ring: Keyring) -> None:
    other_aud = TokenIssuer(ring, TokenOptions(audience="another-app")).issue("u")
    assert _code(TokenVerifier(ring, OPTS), other_aud) == "token_audience"
    other_iss = TokenIssuer(ring, TokenOptions(issuer="someone")).issue("u")
    assert _code(TokenVerifier(ring, OPTS), other_iss) == "token_issuer"


def test_missing_required_claim_is_malformed(ring: Keyring) -> None:
    payload = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan", "iat": int(time.time()),
               "exp": int(time.time()) + 60}
    no_jti = jwt.encode(payload, ring.active_signing.private_pem(), algorithm="EdDSA",
                        headers={"kid": ring.active_signing.kid})
    assert _code(TokenVerifier(ring, OPTS), no_jti) == "token_malformed"
    no_kid = jwt.encode({**payload, "jti": "abcdefghij"}, ring.active_signing.private_pem(), algorithm="EdDSA")
    assert _code(TokenVerifier(ring, OPTS), no_kid) == "token_malformed"
    for junk in ["", "abc", "a.b.c", "x" * 10000]:
        assert _code(TokenVerifier(ring, OPTS), junk) == "token_malformed"


def test_token_from_a_rotated_out_key_works_within_grace_then_is_refused(ring: Keyring) -> None:
    token = TokenIssuer(ring, OPTS).issue("u", roles=[Role.CHAIR], ttl_s=24 * 3600)
    ring.rotate()
    verifier = TokenVerifier(ring, OPTS)
    assert verifier.verify(token).sub == "u"
    later = (datetime.now(UTC) + timedelta(seconds=OPTS.retired_grace_s + 60)).timestamp()
    assert _code(verifier, token, now=later) == "token_key_retired"
    # New tokens are signed with the new key.
    fresh = TokenIssuer(ring, OPTS).issue("u")
    assert jwt.get_unverified_header(fresh)["kid"] == ring.active_signing.kid


def test_resume_token_is_not_an_access_token(ring: Keyring) -> None:
    resume = TokenIssuer(ring, OPTS).issue("u", kind="resume", participant="p1")
    assert _code(TokenVerifier(ring, OPTS), resume) == "token_kind"
    assert TokenVerifier(ring, OPTS).verify(resume, kind="resume").participant == "p1"


def test_lifetime_over_the_maximum_is_refused_at_issue(ring: Keyring) -> None:
    with pytest.raises(ValueError):
        TokenIssuer(ring, OPTS).issue("u", ttl_s=OPTS.max_ttl_s + 1)
    with pytest.raises(ValueError):
        TokenIssuer(ring, OPTS).issue("u", ttl_s=0)


def test_importing_tokens_loads_neither_aiortc_nor_fastapi() -> None:
    code = "import sys, signaling.tokens, signaling.events, signaling.bus, signaling.grants; " \
           "bad = [m for m in ('aiortc', 'fastapi', 'starlette', 'av', 'sfu') if m in sys.modules]; " \
           "print(bad); sys.exit(1 if bad else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
