"""C2SP signed notes and tlog checkpoints, signed with Ed25519. No I/O.

Signed note (https://c2sp.org/signed-note)::

    <text: one or more non-empty lines, each ending in "\\n">
    "\\n"                                       (the blank line)
    "— " <key name> " " base64(key id || signature) "\\n"   (one or more)

- the signature is Ed25519 over the UTF-8 bytes of the text, final newline
  included, blank line and signature lines excluded;
- key id = the first 4 bytes (big-endian) of
  SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key);
- a key name is non-empty and contains neither whitespace nor "+";
- the whole note is valid UTF-8 without ASCII control characters other than
  newline; a note has at most 100 signature lines.

Opening a note verifies every signature by a known key (name and key id):
if one fails, the whole note is rejected; signatures by unknown keys are
kept aside, unverified and ignored; a note no known key signed is rejected.

Key strings are those of golang.org/x/mod/sumdb/note::

    verifier key: <name>+<8 hex key id>+base64(0x01 || 32-byte public key)
    signer key:   PRIVATE+KEY+<name>+<8 hex key id>+base64(0x01 || 32-byte seed)

Checkpoint (https://c2sp.org/tlog-checkpoint): the note text is the origin
line, the tree size in decimal, the base64 root hash, then optional
extension lines, each ending in a newline.

Ed25519 signatures are deterministic, so signing a text twice with the same
key gives the same note byte for byte. This module must not import from
``ledger/``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "Verifier",
    "key_id",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
SIG_PREFIX = "\u2014 "  # EM DASH, space
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_MAX_SIZE = 2**64 - 1


class NoteError(Exception):
    """A note, key string or signature is malformed or does not verify."""


class CheckpointError(NoteError):
    """A checkpoint's text is malformed or is not for the expected origin."""


# -- syntax helpers ---------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise NoteError("key name is empty: expected at least 1 character, got 0")
    bad = [c for c in name if c.isspace() or c == "+" or ord(c) < 0x20]
    if bad:
        raise NoteError(f"key name {name!r}: expected no spaces or '+', got {bad[0]!r}")


def _check_chars(what: str, value: str) -> None:
    """Valid UTF-8 and no ASCII control character other than newline."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8: got {exc.reason}") from None
    for c in value:
        if ord(c) < 0x20 and c != "\n":
            raise NoteError(f"{what} has a control character: expected none, got {c!r}")


def _check_text(text: str) -> None:
    """A note text: non-empty lines, each ending in a newline."""
    if not isinstance(text, str) or not text:
        raise NoteError("note text is empty: expected at least one line")
    _check_chars("note text", text)
    if not text.endswith("\n"):
        raise NoteError(f"note text must end with a newline: expected '\\n', got {text[-1]!r}")
    if text.startswith("\n") or "\n\n" in text:
        raise NoteError("note text has an empty line: expected non-empty lines only")


def _b64decode(what: str, value: str, *, secret: bool = False) -> bytes:
    """Strict standard base64: right alphabet, padding and canonical encoding.

    Error messages quote the value unless it is ``secret``.
    """
    shown = "a secret value" if secret else repr(value)
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what}: expected standard padded base64, got {shown}") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(f"{what}: expected canonical base64, got {shown} (not canonical)")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse_key_id(value: str) -> int:
    if len(value) != 8 or any(c not in string.hexdigits for c in value):
        raise NoteError(f"key id: expected 8 hex digits, got {value!r}")
    return int(value, 16)


def _utf8(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def key_id(name: str, public_key: bytes) -> int:
    """The key id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4], big-endian."""
    _check_name(name)
    if len(public_key) != _ED25519_KEY_SIZE:
        raise NoteError(f"public key: expected 32 bytes, got {len(public_key)}")
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def _decode_key_data(what: str, value: str, *, secret: bool = False) -> bytes:
    raw = _b64decode(what, value, secret=secret)
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise NoteError(f"{what}: expected {1 + _ED25519_KEY_SIZE} bytes, got {len(raw)}")
    if raw[0] != ALG_ED25519:
        raise NoteError(f"{what}: expected algorithm 0x01 (Ed25519), got 0x{raw[0]:02x}")
    return raw[1:]


# -- keys -----------------------------------------------------------------------------


class Verifier:
    """An Ed25519 public key under a name: checks signature lines of that (name, key id)."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        self.key_id = key_id(name, public_key)
        self.name = name
        self.public_key = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def from_key(cls, vkey: str) -> Verifier:
        """Parses ``name+hexkeyid+base64(0x01 || public key)``."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key: expected 3 '+'-separated fields, got {len(parts)}")
        name, hex_id, data = parts
        _check_name(name)
        declared = _parse_key_id(hex_id)
        verifier = cls(name, _decode_key_data("verifier key data", data))
        if verifier.key_id != declared:
            raise NoteError(f"verifier key id: expected {verifier.key_id:08x}, got {declared:08x}")
        return verifier

    def key(self) -> str:
        """The verifier key string."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, text: str | bytes, sig: bytes) -> bool:
        """Whether ``sig`` (64 raw bytes) is this key's Ed25519 signature of ``text``."""
        if len(sig) != _ED25519_SIG_SIZE:
            return False
        try:
            self._key.verify(sig, _utf8(text))
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.key()!r})"


class Signer:
    """An Ed25519 private key under a name."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)
        self.name = name
        self._key = private_key

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_key(cls, skey: str) -> Signer:
        """Parses ``PRIVATE+KEY+name+hexkeyid+base64(0x01 || 32-byte seed)``."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise NoteError("signer key: expected prefix 'PRIVATE+KEY+', got something else")
        parts = skey[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"signer key: expected 5 '+'-separated fields, got {len(parts) + 2}")
        name, hex_id, data = parts
        _check_name(name)
        declared = _parse_key_id(hex_id)
        seed = _decode_key_data("signer key data", data, secret=True)
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_id != declared:
            raise NoteError(f"signer key id: expected {signer.key_id:08x}, got {declared:08x}")
        return signer

    def signer_key(self) -> str:
        """The secret signer key string (handle as a secret)."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        data = _b64(bytes([ALG_ED25519]) + seed)
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{data}"

    def verifier_key(self) -> str:
        return self.verifier().key()

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    def sign(self, text: str | bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``text``."""
        return self._key.sign(_utf8(text))

    def signature_line(self, text: str) -> str:
        """``— name base64(key id || signature)\\n`` for a note text."""
        _check_text(text)
        return Signature(self.name, self.key_id, self.sign(text)).line()

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


# -- notes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key id and the signature bytes after the key id."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {_b64(blob)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the verified signatures by key name, the ignored ones."""

    text: str
    signatures: Mapping[str, Signature] = field(default_factory=dict)
    unverified: tuple[Signature, ...] = ()


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: text, blank line, one signature line per signer, in order."""
    _check_text(text)
    if not signers:
        raise ValueError("sign_note needs at least one signer, got 0")
    if len(signers) > MAX_SIGNATURES:
        raise ValueError(f"too many signers: expected at most {MAX_SIGNATURES}, got {len(signers)}")
    ids = [(s.name, s.key_id) for s in signers]
    if len(set(ids)) != len(ids):
        raise ValueError("the same signer key is given twice")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(SIG_PREFIX):
        raise NoteError(f"signature line: expected to start with '\u2014 ', got {line[:2]!r}")
    name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
    if not sep or not b64:
        raise NoteError("signature line: expected '\u2014 <name> <base64>', got no signature")
    _check_name(name)
    blob = _b64decode(f"signature by {name}", b64)
    if len(blob) < 5:
        raise NoteError(f"signature by {name}: expected at least 5 bytes, got {len(blob)}")
    return Signature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def _split_note(note: str) -> tuple[str, list[Signature]]:
    _check_chars("note", note)
    if not note.endswith("\n"):
        raise NoteError("note must end with a newline: expected '\\n', got another character")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures: expected one, got none")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    lines = block[:-1].split("\n") if block else []
    if not lines:
        raise NoteError("note has no signature lines: expected at least 1, got 0")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"too many signatures: expected at most {MAX_SIGNATURES}, got {len(lines)}")
    return text, [_parse_signature_line(line) for line in lines]


def split_note(note: str) -> tuple[str, list[Signature]]:
    """The note's text and its signature lines, parsed but not verified
    (a cosignature is checked by its own rules, audit/cosignature.py)."""
    return _split_note(note)


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], Verifier]:
    known: dict[tuple[str, int], Verifier] = {}
    names: dict[str, int] = {}
    for v in verifiers:
        if names.setdefault(v.name, v.key_id) != v.key_id:
            raise ValueError(f"two verifier keys named {v.name!r}: give one key per name")
        known[(v.name, v.key_id)] = v
    return known


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parses a signed note and verifies it; raises NoteError unless a known key signed it."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    known = _index_verifiers(verifiers)
    text, sigs = _split_note(note)
    verified: dict[str, Signature] = {}
    unverified: dict[Signature, None] = {}
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified[sig] = None
        elif not verifier.verify(text, sig.signature):
            raise NoteError(
                f"signature by {sig.name} ({sig.key_id:08x}): expected valid, got invalid"
            )
        else:
            verified[sig.name] = sig
    if not verified:
        expected = sorted(f"{n}+{i:08x}" for n, i in known)
        got = [f"{s.name}+{s.key_id:08x}" for s in unverified]
        raise NoteError(f"note not signed by a known key: expected one of {expected}, got {got}")
    return Note(text, MappingProxyType(verified), tuple(unverified))


# -- checkpoints ------------------------------------------------------------------------


def _check_line(what: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise CheckpointError(f"checkpoint {what} is empty: expected a non-empty line")
    try:
        _check_chars(f"checkpoint {what}", value)
    except NoteError as exc:
        raise CheckpointError(str(exc)) from None
    if "\n" in value:
        raise CheckpointError(f"checkpoint {what}: expected one line, got a newline in it")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"checkpoint size: expected an int, got {self.size!r}")
        if not 0 <= self.size <= _MAX_SIZE:
            raise CheckpointError(f"checkpoint size: expected 0..2**64-1, got {self.size}")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            got = len(self.root) if isinstance(self.root, bytes) else type(self.root).__name__
            raise CheckpointError(f"checkpoint root: expected 32 bytes, got {got}")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            _check_line("extension line", line)

    def text(self) -> str:
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Strictly parses a checkpoint text (the note text, ending in a newline)."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline: expected '\\n'")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint text: expected at least 3 lines, got {len(lines)}")
        origin, size, root, *extensions = lines
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise CheckpointError(f"checkpoint size: expected a decimal number, got {size!r}")
        try:
            raw_root = _b64decode("checkpoint root", root)
        except NoteError as exc:
            raise CheckpointError(str(exc)) from None
        return cls(origin, int(size), raw_root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, *signers: Signer) -> str:
    return sign_note(cp.text(), *signers)


def open_checkpoint(
    note: str | bytes, verifiers: Iterable[Verifier], origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Opens a signed checkpoint; with ``origin``, also checks it is that log's."""
    opened = open_note(note, verifiers)
    cp = Checkpoint.parse(opened.text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin: expected {origin!r}, got {cp.origin!r}")
    return cp, opened


def open_with_any(
    note: str | bytes, verifiers: Verifier | Iterable[Verifier], origin: str
) -> Checkpoint:
    """The checkpoint if any one of ``verifiers`` signed it for ``origin``.

    For a log whose key was rotated: its versions share the log's name, and
    ``open_note`` takes one key per name, so each is tried on its own.
    NoteError (the first one) if none does."""
    keys = [verifiers] if isinstance(verifiers, Verifier) else list(verifiers)
    error: NoteError | None = None
    for verifier in keys:
        try:
            checkpoint, _ = open_checkpoint(note, [verifier], origin=origin)
        except CheckpointError:
            raise
        except NoteError as err:
            error = error or err
            continue
        return checkpoint
    raise error or NoteError("no verifier key given")
