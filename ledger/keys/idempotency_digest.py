"""Idempotency keys as keyed digests (issue 13, item 8).

A channel chooses its idempotency keys; nothing stops a till from sending
a phone number or a card number as one. ``idempotency_keys`` is
append-only and kept forever, so whatever is stored there can never be
erased. The ledger does not need the raw key back, only to recognise it:
it stores ``"#" || hex(HMAC-SHA256(secret, "key" || 0 || channel || 0 ||
key)[:16])`` instead (the '#' is outside the keys' alphabet, so a stored
digest never equals a raw key), and the request fingerprint keyed the same
way (an unkeyed SHA-256 over a request that holds the key would let a
guess of the key be checked). The secret is the keyring's named secret
``idempotency-key`` (docs/field-encryption.md, section 4), shared by every
server process of a deployment like the blind-index secret.

Rows written before this (raw key, unkeyed fingerprint) are still found:
the appender looks up both forms and keys the old fingerprint on read.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from typing import TypeVar

from ledger.commands import RequestMeta
from ledger.keys.keyring import Keyring

IDEMPOTENCY_SECRET = "idempotency-key"
PREFIX = "#"
_DIGEST_BYTES = 16

C = TypeVar("C")


class IdempotencyDigest:
    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("idempotency digest: the secret must be 32 bytes")
        self._secret = secret

    @classmethod
    def for_keyring(cls, keyring: Keyring) -> IdempotencyDigest:
        return cls(keyring.secret(IDEMPOTENCY_SECRET))

    def key(self, channel_id: str, key: str) -> str:
        message = b"key\x00" + channel_id.encode() + b"\x00" + key.encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:_DIGEST_BYTES]
        return PREFIX + digest.hex()

    def fingerprint(self, fingerprint: bytes) -> bytes:
        return hmac.new(self._secret, b"fingerprint\x00" + fingerprint, hashlib.sha256).digest()

    def meta(self, meta: RequestMeta) -> RequestMeta:
        return RequestMeta(
            meta.channel_id,
            self.key(meta.channel_id, meta.idempotency_key),
            self.fingerprint(meta.fingerprint),
        )

    def command(self, command: C) -> C:
        """The command as the planner and the storage see it: its meta
        digested (commands without one, a Settle, unchanged)."""
        meta = getattr(command, "meta", None)
        if not isinstance(meta, RequestMeta) or meta.idempotency_key.startswith(PREFIX):
            return command
        return replace(command, meta=self.meta(meta))  # type: ignore[type-var]


def is_digest(stored_key: str) -> bool:
    return stored_key.startswith(PREFIX)


def request_digest(meta: RequestMeta) -> bytes:
    """The request's digest as journal entries carry it (entry format v2):
    the 16 bytes of a digested idempotency key; b"" for a raw key (an
    appender without a keyring)."""
    key = meta.idempotency_key
    if is_digest(key) and len(key) == len(PREFIX) + 2 * _DIGEST_BYTES:
        return bytes.fromhex(key[len(PREFIX) :])
    return b""
