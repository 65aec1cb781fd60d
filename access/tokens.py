"""Signed bearer tokens: JWTs signed with Ed25519 (alg EdDSA).

Claims: ``iss`` (always ``loyalty-ledger``), ``sub`` (principal id),
``role``, ``chn`` (the channel a channel principal is bound to), ``iat``,
``exp``, ``jti`` (token id, for revocation and the access log). The header
carries ``kid``, the first 8 bytes of SHA-256 of the raw public key in hex,
so several keys can be valid at once while keys rotate.

Checks, in order, each failing with its own message (UNAUTHENTICATED):
present, well formed, signed by a known key with EdDSA (no other algorithm
is accepted, so ``none`` and HMAC-with-the-public-key are refused), issuer,
required claims, not yet valid / expired (against an injected clock), known
role, channel binding present for channel principals, not revoked.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from access.errors import AuthenticationError
from access.principal import Principal, Role

ISSUER = "loyalty-ledger"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("iss", "sub", "role", "iat", "exp", "jti")
MAX_TOKEN_BYTES = 4096  # a longer "token" is refused before parsing
CLOCK_SKEW_S = 30  # tolerated difference between issuer's and verifier's clocks
CACHE_SIZE = 10_000  # verified tokens remembered per process (least recently used dropped)

Clock = Callable[[], float]  # seconds since the Unix epoch


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The server's token signing key, created on first use with mode 0600."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path.name}: not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: int  # seconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    key: Ed25519PrivateKey
    clock: Clock = time.time

    def issue(
        self, *, subject: str, role: Role, ttl_seconds: int, channel: str | None = None
    ) -> IssuedToken:
        if ttl_seconds <= 0:
            raise ValueError("ttl: must be greater than 0 seconds")
        if role is Role.CHANNEL and not channel:
            raise ValueError("channel: a channel token must name its channel")
        if subject.startswith(UNVERIFIED_PREFIX):
            # the access log's mark for a refused credential's claimed subject
            raise ValueError(f"subject: must not start with {UNVERIFIED_PREFIX!r}")
        now = int(self.clock())
        token_id = uuid.uuid4().hex
        claims: dict[str, object] = {
            "iss": ISSUER,
            "sub": subject,
            "role": role.value,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": token_id,
        }
        if channel:
            claims["chn"] = channel
        token = jwt.encode(
            claims, self.key, algorithm=ALGORITHM, headers={"kid": key_id(self.key.public_key())}
        )
        return IssuedToken(token, token_id, now + ttl_seconds)


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: int  # the token's exp claim


UNVERIFIED_PREFIX = "unverified:"


@dataclass(slots=True)
class TokenVerifier:
    """Verifies tokens, and remembers the ones that verified.

    Decoding a JWT and checking its Ed25519 signature costs more than the
    rest of a call's admission, and a till sends the same token on every
    call for an hour. So a token that passed every check is cached, keyed
    by the SHA-256 of its bytes (bounded to ``cache_size``, least recently
    used dropped). A cached token is still checked on every call for what
    can change after it was issued: expiry against the clock, and the
    revocation list. Tokens that fail are never cached, so each failure
    gets its own message every time.
    """

    public_keys: Mapping[str, Ed25519PublicKey]  # by key id
    revoked: Container[str] = field(default_factory=set)  # token ids
    clock: Clock = time.time
    cache_size: int = CACHE_SIZE
    _cache: OrderedDict[bytes, _Verified] = field(default_factory=OrderedDict, repr=False)

    @classmethod
    def for_keys(
        cls,
        keys: Iterable[Ed25519PublicKey],
        *,
        revoked: Container[str] = frozenset(),
        clock: Clock = time.time,
    ) -> TokenVerifier:
        return cls({key_id(k): k for k in keys}, revoked, clock)

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationError(
                "credentials", "missing: send 'authorization: Bearer <token>'"
            )
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("token", "malformed: too long")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            claimed = {
                "subject": cached.principal.id,
                "token_id": cached.principal.credential_id or "",
            }
            if cached.expires_at <= self.clock() - CLOCK_SKEW_S:
                del self._cache[digest]
                raise AuthenticationError("token", "expired", **claimed)
            if cached.principal.credential_id in self.revoked:
                del self._cache[digest]
                raise AuthenticationError("token", "revoked", **claimed)
            self._cache.move_to_end(digest)
            return cached.principal
        principal, expires_at = self._verify(token)
        if self.cache_size > 0:
            self._cache[digest] = _Verified(principal, expires_at)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int]:
        """Every check, from the token's bytes."""
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_iss": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthenticationError(
                "token", "signature does not verify (forged or altered)"
            ) from None
        except jwt.InvalidAlgorithmError:
            raise AuthenticationError(
                "token", f"algorithm not accepted (only {ALGORITHM})"
            ) from None
        except jwt.PyJWTError:
            raise AuthenticationError("token", "malformed") from None
        try:
            principal = self._principal(claims)
        except AuthenticationError as err:  # signed by us, refused: say whose
            sub, jti = claims.get("sub"), claims.get("jti")
            if isinstance(sub, str) and isinstance(jti, str):
                err.subject, err.token_id = sub[:100], jti[:64]
            raise
        return principal, int(claims["exp"])

    def _key_for(self, token: str) -> Ed25519PublicKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("token", "malformed") from None
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError("token", f"algorithm not accepted (only {ALGORITHM})")
        key = self.public_keys.get(str(header.get("kid", "")))
        if key is None:
            raise AuthenticationError("token", "signed by an unknown key")
        return key

    def _principal(self, claims: Mapping[str, object]) -> Principal:
        missing = [c for c in REQUIRED_CLAIMS if c not in claims]
        if missing:
            raise AuthenticationError("token", f"malformed: missing claims {missing}")
        if claims["iss"] != ISSUER:
            raise AuthenticationError("token", "issued by someone else")
        iat, exp, sub, jti = claims["iat"], claims["exp"], claims["sub"], claims["jti"]
        if not (isinstance(iat, int) and isinstance(exp, int)):
            raise AuthenticationError("token", "malformed: iat and exp must be integers")
        if not (isinstance(sub, str) and sub and isinstance(jti, str) and jti):
            raise AuthenticationError("token", "malformed: sub and jti must be strings")
        now = self.clock()
        if iat > now + CLOCK_SKEW_S:
            raise AuthenticationError("token", "not yet valid")
        nbf = claims.get("nbf")
        if nbf is not None and (isinstance(nbf, bool) or not isinstance(nbf, int)):
            raise AuthenticationError("token", "malformed: nbf must be an integer")
        if nbf is not None and nbf > now + CLOCK_SKEW_S:
            raise AuthenticationError("token", "not yet valid (nbf)")
        if exp <= now - CLOCK_SKEW_S:
            raise AuthenticationError("token", "expired")
        role = Role.parse(claims["role"])
        if role is None:
            raise AuthenticationError("token", "unknown role")
        channel = claims.get("chn")
        if channel is not None and not isinstance(channel, str):
            raise AuthenticationError("token", "malformed: chn must be a string")
        if role is Role.CHANNEL and not channel:
            raise AuthenticationError("token", "a channel token must name its channel")
        if jti in self.revoked:
            raise AuthenticationError("token", "revoked")
        return Principal(id=sub, role=role, channel=channel or None, credential_id=jti)


def load_revocations(path: Path) -> set[str]:
    """Token ids, one per line; blank lines and '#' comments ignored."""
    if not path.exists():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


class RevocationFile:
    """The revocation list as a container that follows its file: it is read
    again when the file changes, looked at most every ``interval`` seconds,
    so ``token revoke`` takes effect on a running server within seconds."""

    def __init__(self, path: Path, *, interval: float = 1.0, clock: Clock = time.monotonic) -> None:
        self._path = path
        self._interval = interval
        self._clock = clock
        self._checked = float("-inf")
        self._mtime: float | None = None
        self._ids: set[str] = set()

    def __contains__(self, token_id: object) -> bool:
        now = self._clock()
        if now - self._checked >= self._interval:
            self._checked = now
            mtime = self._path.stat().st_mtime if self._path.exists() else None
            if mtime != self._mtime:
                self._mtime = mtime
                self._ids = load_revocations(self._path)
        return token_id in self._ids
