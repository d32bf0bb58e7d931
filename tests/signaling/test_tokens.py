from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from evidence import Keyring
from signaling.errors import TOKEN_CODES
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
    payload = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan:ws", "iat": int(time.time()),
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
    payload = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan:ws", "iat": 1, "exp": 2**31, "jti": "abcdefghij"}
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
    payload = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan:ws", "iat": int(time.time()),
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


def _signed(ring: Keyring, **claims: Any) -> str:
    """A token signed with ``ring``'s active key: a valid live-room access token, changed by ``claims``
    (a value of None drops the claim)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": "u", "iss": "tiepdan", "aud": "tiepdan:ws", "iat": now, "exp": now + 600,
                               "jti": "abcdefghij", "kind": "access", "roles": ["venue"], "venue": "a"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, ring.active_signing.private_pem(), algorithm="EdDSA",
                      headers={"kid": ring.active_signing.kid})


def test_a_live_room_token_is_refused_by_the_api_and_a_service_token_by_the_live_room(ring: Keyring) -> None:
    issuer, verifier = TokenIssuer(ring, OPTS), TokenVerifier(ring, OPTS)
    live = issuer.issue("user-7", roles=[Role.VENUE], room="s1", venue="a")
    service = issuer.issue("svc", roles=[Role.FOLLOW_UP], audience="api")
    assert verifier.verify(live).aud == "tiepdan:ws"
    assert verifier.verify(service, audience="api").aud == "tiepdan:api"
    assert _code(verifier, live, audience="api") == "token_audience"
    assert _code(verifier, service) == "token_audience"
    # a token for both audiences at once is not a token for either
    both = _signed(ring, aud=["tiepdan:ws", "tiepdan:api"])
    assert _code(verifier, both) == "token_malformed"
    assert _code(verifier, both, audience="api") == "token_malformed"


def test_the_login_session_claim_travels_in_access_and_resume_tokens(ring: Keyring) -> None:
    issuer, verifier = TokenIssuer(ring, OPTS), TokenVerifier(ring, OPTS)
    sid = "0123456789abcdef0123456789abcdef"
    assert verifier.verify(issuer.issue("u", roles=[Role.CHAIR], room="s1", sid=sid)).sid == sid
    resume = issuer.issue("u", kind="resume", participant="p1", sid=sid)
    assert verifier.verify(resume, kind="resume").sid == sid
    assert verifier.verify(issuer.issue("u", roles=[Role.CHAIR])).sid is None


def test_a_token_issued_a_year_ahead_is_refused_even_with_a_short_lifetime(ring: Keyring) -> None:
    now = time.time()
    verifier = TokenVerifier(ring, OPTS)
    ahead = TokenIssuer(ring, OPTS).issue("u", roles=[Role.CHAIR], ttl_s=600, now=now + 365 * 86400)
    assert _code(verifier, ahead, now=now) == "token_future"
    beyond_skew = TokenIssuer(ring, OPTS).issue("u", roles=[Role.CHAIR], ttl_s=600, now=now + OPTS.leeway_s + 2)
    assert _code(verifier, beyond_skew, now=now) == "token_future"
    within_skew = TokenIssuer(ring, OPTS).issue("u", roles=[Role.CHAIR], ttl_s=600, now=now + OPTS.leeway_s - 1)
    assert verifier.verify(within_skew, now=now).sub == "u"


def test_a_token_expiring_further_from_now_than_the_longest_lifetime_is_refused(ring: Keyring) -> None:
    now = int(time.time())
    verifier = TokenVerifier(ring, OPTS)
    longest = OPTS.max_ttl_s
    assert _code(verifier, _signed(ring, iat=now, exp=now + longest + 60), now=now) == "token_lifetime"
    assert _code(verifier, _signed(ring, iat=now - 3600, exp=now + longest - 60), now=now) == "token_lifetime"
    assert verifier.verify(_signed(ring, iat=now, exp=now + longest), now=now).exp == now + longest
    # an ordinary token, and one from a clock slightly ahead, are accepted
    assert verifier.verify(TokenIssuer(ring, OPTS).issue("u", roles=[Role.CHAIR]), now=now).sub == "u"
    assert verifier.verify(_signed(ring, iat=now + 3, exp=now + 603), now=now).sub == "u"


def _refusals(ring: Keyring) -> dict[str, Callable[[], str]]:
    """One way to get every code the verifier gives (``token_revoked`` is the revocation checks')."""
    other = Keyring.generate(dev=True)
    now = int(time.time())

    def retired() -> str:
        old = Keyring.generate(dev=True)
        token = _signed(old)
        old.rotate()
        verifier = TokenVerifier(old, TokenOptions(retired_grace_s=0))
        return _code(verifier, token, now=time.time() + 5)

    verifier = TokenVerifier(ring, OPTS)
    return {
        "token_malformed": lambda: _code(verifier, "a.b.c"),
        "token_algorithm": lambda: _code(verifier, jwt.encode({"sub": "u"}, "k" * 32, algorithm="HS256",
                                                              headers={"kid": ring.active_signing.kid})),
        "token_unknown_key": lambda: _code(verifier, _signed(other)),
        "token_key_retired": retired,
        "token_signature": lambda: _code(verifier, ".".join([*_signed(ring).split(".")[:2],
                                                             _signed(other).split(".")[2]])),
        "token_audience": lambda: _code(verifier, _signed(ring, aud="tiepdan:api")),
        "token_issuer": lambda: _code(verifier, _signed(ring, iss="someone")),
        "token_invalid": lambda: _code(verifier, jwt.PyJWS().encode(b"not json", ring.active_signing.private_pem(),
                                                                  algorithm="EdDSA",
                                                                  headers={"kid": ring.active_signing.kid})),
        "token_expired": lambda: _code(verifier, _signed(ring, iat=now - 700, exp=now - 100)),
        "token_future": lambda: _code(verifier, _signed(ring, iat=now + 3600, exp=now + 4200)),
        "token_lifetime": lambda: _code(verifier, _signed(ring, exp=now + OPTS.max_ttl_s + 60)),
        "token_kind": lambda: _code(verifier, _signed(ring, kind="resume", participant="p1")),
    }


def test_every_refusal_has_its_stable_code_and_docs_list_every_code(ring: Keyring) -> None:
    refusals = _refusals(ring)
    assert sorted(set(refusals) | {"token_revoked"}) == sorted(TOKEN_CODES)
    for code, refuse in refusals.items():
        assert refuse() == code
    protocol_md = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
    documented = set(re.findall(r"`(token_[a-z_]+)`", protocol_md[:protocol_md.index("## 2.")]))
    assert TOKEN_CODES <= documented
    assert documented - TOKEN_CODES == {"token_missing", "token_connect"}  # refusals of /ws before any JWT
