"""Bearer tokens: every way a credential can be wrong fails with its own
message, and a good one yields exactly the principal it was issued for."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from access.errors import AuthenticationError
from access.principal import Principal, Role
from access.tokens import (
    TokenIssuer,
    TokenVerifier,
    key_id,
    load_or_create_signing_key,
    load_revocations,
)

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


def _issuer(key: Ed25519PrivateKey = KEY, now: float = NOW) -> TokenIssuer:
    return TokenIssuer(key, clock=lambda: now)


def _verifier(now: float = NOW, revoked: tuple[str, ...] = ()) -> TokenVerifier:
    return TokenVerifier.for_keys([KEY.public_key()], revoked=revoked, clock=lambda: now)


def _channel_token() -> str:
    return (
        _issuer()
        .issue(subject="pos-0042", role=Role.CHANNEL, ttl_seconds=3600, channel="pos-test")
        .token
    )


def _segments(token: str) -> list[dict[str, object]]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return [json.loads(base64.urlsafe_b64decode(pad(p))) for p in (head, body)]


def _resign(claims: dict[str, object], key: Ed25519PrivateKey = KEY, **headers: object) -> str:
    return jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": key_id(KEY.public_key()), **headers}
    )


def test_round_trip_gives_the_issued_principal() -> None:
    issued = _issuer().issue(
        subject="pos-0042", role=Role.CHANNEL, ttl_seconds=600, channel="pos-test"
    )
    principal = _verifier().verify(issued.token)
    assert principal == Principal("pos-0042", Role.CHANNEL, "pos-test", issued.token_id)
    assert issued.expires_at == int(NOW) + 600
    header, claims = _segments(issued.token)
    assert header["alg"] == "EdDSA" and header["kid"] == key_id(KEY.public_key())
    assert {"iss", "sub", "role", "chn", "iat", "exp", "jti"} == set(claims)


def test_staff_token_without_channel() -> None:
    issued = _issuer().issue(subject="staff-007", role=Role.COMPLIANCE, ttl_seconds=60)
    assert _verifier().verify(issued.token).role is Role.COMPLIANCE


def _claims() -> dict[str, object]:
    return _segments(_channel_token())[1]


def _case_expired() -> str:
    return (
        _issuer(now=NOW - 7200)
        .issue(subject="pos-1", role=Role.CHANNEL, ttl_seconds=3600, channel="pos-test")
        .token
    )


def _case_not_yet_valid() -> str:
    return (
        _issuer(now=NOW + 3600)
        .issue(subject="pos-1", role=Role.CHANNEL, ttl_seconds=60, channel="pos-test")
        .token
    )


def _case_forged() -> str:  # signed with another key, claiming ours
    return _resign(_claims(), key=OTHER_KEY)


def _case_altered() -> str:  # payload changed after signing
    head, _, sig = _channel_token().split(".")
    claims = _claims() | {"role": "admin"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{body}.{sig}"


def _case_alg_none() -> str:
    return jwt.encode(_claims(), None, algorithm="none")  # type: ignore[arg-type]


def _case_hmac_with_public_key() -> str:  # the classic algorithm-confusion attack
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return jwt.encode(
        _claims(), public_pem, algorithm="HS256", headers={"kid": key_id(KEY.public_key())}
    )


CASES = {
    "missing": (lambda: "", "credentials: missing"),
    "garbage": (lambda: "not-a-token", "token: malformed"),
    "too_long": (lambda: "a" * 5000, "token: malformed: too long"),
    "expired": (_case_expired, "token: expired"),
    "not_yet_valid": (_case_not_yet_valid, "token: not yet valid"),
    "forged": (_case_forged, "token: signature does not verify"),
    "altered": (_case_altered, "token: signature does not verify"),
    "alg_none": (_case_alg_none, "token: algorithm not accepted"),
    "hmac_confusion": (_case_hmac_with_public_key, "token: algorithm not accepted"),
    "unknown_key": (
        lambda: _resign(_claims(), key=OTHER_KEY, kid="0000000000000000"),
        "token: signed by an unknown key",
    ),
    "unknown_role": (lambda: _resign(_claims() | {"role": "superuser"}), "token: unknown role"),
    "missing_claim": (
        lambda: _resign({k: v for k, v in _claims().items() if k != "jti"}),
        "token: malformed: missing claims",
    ),
    "other_issuer": (
        lambda: _resign(_claims() | {"iss": "someone-else"}),
        "token: issued by someone else",
    ),
    "channel_unbound": (
        lambda: _resign({k: v for k, v in _claims().items() if k != "chn"}),
        "token: a channel token must name its channel",
    ),
    "string_expiry": (lambda: _resign(_claims() | {"exp": "never"}), "token: malformed"),
    # a token minted now to start working in an hour (issue #13 item 10)
    "nbf_ahead": (
        lambda: _resign(_claims() | {"nbf": int(NOW) + 3600}),
        "token: not yet valid (nbf)",
    ),
    "string_nbf": (lambda: _resign(_claims() | {"nbf": "soon"}), "token: malformed: nbf"),
}


def test_nbf_within_the_clock_skew_is_accepted() -> None:
    token = _resign(_claims() | {"nbf": int(NOW) + 30})
    assert _verifier().verify(token).id == "pos-0042"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_credentials_fail_with_the_check_that_failed(case: str) -> None:
    make, message = CASES[case]
    token = make()
    with pytest.raises(AuthenticationError) as err:
        _verifier().verify(token)
    assert str(err.value).startswith(message)
    if len(token) > 20:
        assert token not in str(err.value)


def test_revoked_token_is_refused() -> None:
    issued = _issuer().issue(
        subject="pos-0042", role=Role.CHANNEL, ttl_seconds=60, channel="pos-test"
    )
    with pytest.raises(AuthenticationError, match="token: revoked"):
        _verifier(revoked=(issued.token_id,)).verify(issued.token)


def test_key_rotation_accepts_every_listed_key() -> None:
    old = _issuer(OTHER_KEY).issue(
        subject="pos-1", role=Role.CHANNEL, ttl_seconds=60, channel="pos-test"
    )
    new = _issuer().issue(subject="pos-1", role=Role.CHANNEL, ttl_seconds=60, channel="pos-test")
    both = TokenVerifier.for_keys([KEY.public_key(), OTHER_KEY.public_key()], clock=lambda: NOW)
    assert both.verify(old.token).id == both.verify(new.token).id == "pos-1"


def test_issue_refuses_unbound_channel_tokens_and_bad_ttl() -> None:
    with pytest.raises(ValueError, match="channel"):
        _issuer().issue(subject="pos-1", role=Role.CHANNEL, ttl_seconds=60)
    with pytest.raises(ValueError, match="ttl"):
        _issuer().issue(subject="staff-1", role=Role.ADMIN, ttl_seconds=0)


def test_signing_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token-signing.pem"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert key_id(first.public_key()) == key_id(again.public_key())


def test_revocation_file(tmp_path: Path) -> None:
    path = tmp_path / "revoked.txt"
    assert load_revocations(path) == set()
    path.write_text("# revoked after a lost POS terminal\nabc123\n\n def456  # stolen\n")
    assert load_revocations(path) == {"abc123", "def456"}


def test_revocation_file_is_followed_while_running(tmp_path: Path) -> None:
    from access.tokens import RevocationFile

    path = tmp_path / "revoked.txt"
    ticks = [0.0]
    revoked = RevocationFile(path, interval=1.0, clock=lambda: ticks[0])
    verifier = TokenVerifier.for_keys([KEY.public_key()], revoked=revoked, clock=lambda: NOW)
    issued = _issuer().issue(subject="pos-1", role=Role.CHANNEL, ttl_seconds=60, channel="pos-test")
    assert verifier.verify(issued.token).id == "pos-1"
    path.write_text(issued.token_id + "\n")
    ticks[0] = 0.5  # not looked at again yet
    assert verifier.verify(issued.token).id == "pos-1"
    ticks[0] = 1.5
    with pytest.raises(AuthenticationError, match="token: revoked"):
        verifier.verify(issued.token)


# --- the cache of verified tokens -------------------------------------------


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_cached_token_is_verified_once_but_expires_and_revokes_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock(NOW)
    revoked: set[str] = set()
    verifier = TokenVerifier.for_keys([KEY.public_key()], revoked=revoked, clock=clock)
    issued = _issuer().issue(subject="pos-0042", role=Role.CHANNEL, ttl_seconds=60, channel="p")
    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    first = verifier.verify(issued.token)
    for _ in range(5):
        assert verifier.verify(issued.token) == first
    assert len(decodes) == 1  # the signature was checked once
    # expiry still counts on every call
    clock.now = NOW + 60 + 31
    with pytest.raises(AuthenticationError, match="expired"):
        verifier.verify(issued.token)
    # and so does revocation, for a token already in the cache
    clock.now = NOW
    verifier.verify(issued.token)
    revoked.add(issued.token_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        verifier.verify(issued.token)
    with pytest.raises(AuthenticationError, match="revoked"):
        verifier.verify(issued.token)


def test_an_altered_token_is_no_cache_hit_and_failures_are_not_cached() -> None:
    verifier = _verifier()
    token = _channel_token()
    verifier.verify(token)
    head, _body, sig = token.split(".")
    claims = _segments(token)[1]
    claims["role"] = "admin"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="signature does not verify"):
            verifier.verify(f"{head}.{forged_body}.{sig}")
    assert verifier.verify(token).role is Role.CHANNEL


def test_the_cache_is_bounded() -> None:
    verifier = TokenVerifier.for_keys([KEY.public_key()], clock=lambda: NOW)
    verifier.cache_size = 3
    tokens = [
        _issuer().issue(subject=f"pos-{i}", role=Role.CHANNEL, ttl_seconds=60, channel="p").token
        for i in range(10)
    ]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._cache) == 3
    assert verifier.verify(tokens[0]).id == "pos-0"  # dropped, verified afresh
