"""C2SP tlog-cosignature/v1 with Ed25519 (https://c2sp.org/tlog-cosignature).

A witness's cosignature is one more signature line on a checkpoint note::

    "— " <witness name> " " base64(key id || timestamp:u64 || ed25519 sig) "\\n"

- key id = SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4];
- the signed message is ``"cosignature/v1\\n" "time " <timestamp> "\\n"``
  followed by the whole note body (the checkpoint text, final newline
  included, no signature lines); the timestamp is POSIX seconds, decimal,
  no leading zeroes;
- a cosigner's verifier key is ``<name>+<8 hex key id>+base64(0x04 || key)``.

It states: as of that time, this is the largest consistent tree the witness
has seen for the log. Pure: imports nothing from ``ledger/``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from audit.note import SIG_PREFIX, NoteError, Signature

ALG_COSIGNATURE_V1 = 0x04
_MAX_TIMESTAMP = 2**63 - 1


def cosigner_key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def signed_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"cosigner name: must be non-empty, without spaces or '+', got {name!r}")


@dataclass(frozen=True, slots=True)
class CosignerKey:
    """A witness's public key under its name."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> int:
        return cosigner_key_id(self.name, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignerKey:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"witness key: expected 3 '+'-separated fields, got {len(parts)}")
        name, hex_id, data = parts
        _check_name(name)
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("witness key: data is not base64") from None
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise NoteError("witness key: expected 0x04 (Ed25519 cosignature/v1) and 32 bytes")
        key = cls(name, raw[1:])
        if f"{key.key_id:08x}" != hex_id.lower():
            raise NoteError(f"witness key id: expected {key.key_id:08x}, got {hex_id}")
        return key

    def vkey(self) -> str:
        data = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{data}"

    def verify(self, body: str, signature: Signature) -> int | None:
        """The cosignature's timestamp if ``signature`` is this key's valid
        cosignature of ``body``, else None."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            return None
        if len(signature.signature) != 8 + 64:
            return None
        timestamp = int.from_bytes(signature.signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature.signature[8:], signed_message(body, timestamp)
            )
        except InvalidSignature:
            return None
        return timestamp


class Cosigner:
    """A witness's signing key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = CosignerKey(name, public)

    def cosign(self, body: str, timestamp: int) -> str:
        """The signature line (with its newline) cosigning ``body``."""
        sig = self._key.sign(signed_message(body, timestamp))
        blob = self.public.key_id.to_bytes(4, "big") + struct.pack(">Q", timestamp) + sig
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"
