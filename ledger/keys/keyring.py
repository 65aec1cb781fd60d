"""Envelope encryption of data keys (DEKs) under key-encryption keys (KEKs).

``Keyring`` is the interface (a KMS or HSM could implement it later);
``FileKeyring`` implements it over one JSON file outside the database.

Wrapped DEK (``docs/field-encryption.md`` is the normative spec)::

    WrappedKey.kek_version = the KEK version used
    WrappedKey.blob        = nonce (12 bytes) | AES-256-GCM(dek) || tag (16 bytes)
    associated data        = b"loyalty-ledger/dek/v1\\x00" + context + kek_version u32 BE

Invariants:

- ``unwrap`` raises ``DecryptionError`` (one fixed message) for anything
  wrong with the wrapped key: unknown or retired KEK version, another
  ``context`` (e.g. another member), an altered or truncated blob.
- Exactly one KEK version is current; ``rotate`` adds a new one and makes it
  current; ``retire`` destroys a non-current one. Version numbers are never
  reused (retired numbers are remembered).
- Named secrets (``secret(name)``) are independent random 32-byte keys, never
  KEKs, created once and kept for the life of the file.
- The keyring file is mode 0600 and is refused when group or others have any
  permission bit; it is replaced atomically (temporary file in the same
  directory, fsync, ``os.replace``, fsync of the directory). Changes by other
  processes are serialized by ``flock`` on ``<file>.lock`` and picked up by
  running instances when the file's identity, size or mtime changes.
- Messages name the rule broken, never key material or file contents.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import secrets as _random
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.keys.errors import DecryptionError, KeyringError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
WRAPPED_SIZE = NONCE_SIZE + KEY_SIZE + TAG_SIZE
MAX_VERSION = 0xFFFF_FFFF
AAD_PREFIX = b"loyalty-ledger/dek/v1\x00"
FILE_FORMAT = "loyalty-ledger/keyring/v1"
MAX_FILE_SIZE = 1 << 20
SECRET_NAME = re.compile(r"[a-z0-9-]{1,32}")

RULE_PERMISSIONS = "keyring file: must not be readable by group or others (chmod 600)"


@dataclass(frozen=True)
class WrappedKey:
    """A DEK sealed under KEK ``kek_version``; ``blob`` is nonce | ciphertext || tag."""

    kek_version: int
    blob: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(kek_version={self.kek_version}, blob=<{len(self.blob)} bytes>)"


def dek_context(member_id: str, dek_version: int) -> bytes:
    """The conventional ``context`` for a member's DEK: member id UTF-8 | 0x00 | u32 BE."""
    if not member_id or "\x00" in member_id:
        raise ValueError("member id: must be non-empty and must not contain NUL")
    if not 0 <= dek_version <= MAX_VERSION:
        raise ValueError("dek version: must fit in an unsigned 32-bit integer")
    return member_id.encode("utf-8") + b"\x00" + dek_version.to_bytes(4, "big")


def _aad(context: bytes, kek_version: int) -> bytes:
    return AAD_PREFIX + bytes(context) + kek_version.to_bytes(4, "big")


def _seal_dek(kek: bytes, kek_version: int, dek: bytes, context: bytes, nonce: bytes) -> bytes:
    """Wrap ``dek`` with a caller-chosen nonce (the seam used for test vectors)."""
    if len(dek) != KEY_SIZE:
        raise ValueError("dek: must be 32 bytes")
    if len(nonce) != NONCE_SIZE:
        raise ValueError("nonce: must be 12 bytes")
    return bytes(nonce) + AESGCM(kek).encrypt(nonce, bytes(dek), _aad(context, kek_version))


def _open_dek(kek: bytes, kek_version: int, blob: bytes, context: bytes) -> bytes:
    if len(blob) != WRAPPED_SIZE:
        raise DecryptionError()
    try:
        dek = AESGCM(kek).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], _aad(context, kek_version))
    except InvalidTag:
        raise DecryptionError() from None
    if len(dek) != KEY_SIZE:
        raise DecryptionError()
    return dek


@runtime_checkable
class Keyring(Protocol):
    """Holds KEKs and named secrets; wraps and unwraps DEKs."""

    def current_version(self) -> int:
        """The KEK version ``wrap`` uses."""
        ...

    def wrap(self, dek: bytes, *, context: bytes) -> WrappedKey:
        """Seal a 32-byte DEK under the current KEK, bound to ``context``."""
        ...

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """Open a wrapped DEK; ``DecryptionError`` on any failure."""
        ...

    def rotate(self) -> int:
        """Add a new KEK version, make it current and return it."""
        ...

    def retire(self, version: int) -> None:
        """Destroy a non-current KEK version (``KeyringError`` if current or unknown)."""
        ...

    def versions(self) -> list[int]:
        """The active (non-retired) KEK versions, ascending."""
        ...

    def secret(self, name: str) -> bytes:
        """A named 32-byte secret that is not a KEK, created on first use."""
        ...

    def secret_names(self) -> list[str]:
        """The names of the secrets that exist, sorted."""
        ...


# -- the file format ----------------------------------------------------------


@dataclass
class _State:
    current: int
    keks: dict[int, bytes]
    retired: set[int] = field(default_factory=set)
    secrets: dict[str, bytes] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(self.current, dict(self.keks), set(self.retired), dict(self.secrets))

    def to_json(self) -> bytes:
        doc = {
            "format": FILE_FORMAT,
            "current": self.current,
            "keks": {str(v): _b64(k) for v, k in sorted(self.keks.items())},
            "retired": sorted(self.retired),
            "secrets": {n: _b64(s) for n, s in sorted(self.secrets.items())},
        }
        return (json.dumps(doc, indent=2) + "\n").encode("ascii")


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _corrupt(rule: str) -> KeyringError:
    return KeyringError(f"keyring file: corrupt ({rule})")


def _parse_key(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _corrupt(f"{what} must be a base64 string")
    try:
        key = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _corrupt(f"{what} must be valid base64") from None
    if len(key) != KEY_SIZE:
        raise _corrupt(f"{what} must be 32 bytes")
    return key


def _parse_version(value: Any, *, key: bool = False) -> int:
    if key:  # JSON object keys are strings: canonical decimal
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise _corrupt("versions must be integers from 1 to 2^32-1")
        if value != str(int(value)):
            raise _corrupt("versions must be integers from 1 to 2^32-1")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise _corrupt("versions must be integers from 1 to 2^32-1")
    return value


def _parse(data: bytes) -> _State:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _corrupt("not valid JSON") from None
    if not isinstance(doc, dict):
        raise _corrupt("top level must be an object")
    if set(doc) != {"format", "current", "keks", "retired", "secrets"}:
        raise _corrupt("fields must be exactly format, current, keks, retired, secrets")
    if doc["format"] != FILE_FORMAT:
        raise _corrupt(f"format must be {FILE_FORMAT!r}")
    keks_doc, retired_doc, secrets_doc = doc["keks"], doc["retired"], doc["secrets"]
    if not isinstance(keks_doc, dict) or not keks_doc:
        raise _corrupt("keks must be a non-empty object")
    keks = {_parse_version(v, key=True): _parse_key(k, "kek") for v, k in keks_doc.items()}
    if not isinstance(retired_doc, list):
        raise _corrupt("retired must be a list")
    retired = {_parse_version(v) for v in retired_doc}
    if retired & keks.keys():
        raise _corrupt("a version must not be both active and retired")
    current = _parse_version(doc["current"])
    if current not in keks:
        raise _corrupt("current must be an active kek version")
    if not isinstance(secrets_doc, dict):
        raise _corrupt("secrets must be an object")
    named: dict[str, bytes] = {}
    for name, value in secrets_doc.items():
        if not SECRET_NAME.fullmatch(name):
            raise _corrupt("secret names must match [a-z0-9-]{1,32}")
        named[name] = _parse_key(value, "secret")
    return _State(current, keks, retired, named)


def _new_state() -> _State:
    return _State(current=1, keks={1: os.urandom(KEY_SIZE)})


# -- file I/O -------------------------------------------------------------------

_Signature = tuple[int, int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read(path: Path) -> tuple[_State, _Signature]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyringError("keyring file: does not exist") from None
    except OSError:
        raise KeyringError("keyring file: cannot be opened for reading") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyringError("keyring file: must be a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(RULE_PERMISSIONS)
        if st.st_size > MAX_FILE_SIZE:
            raise _corrupt("larger than 1 MiB")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return _parse(b"".join(chunks)), _signature(st)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> _Signature:
    """Atomically replace ``path`` with ``data`` (mode 0600); returns the new signature."""
    tmp = path.with_name(f".{path.name}.{_random.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            sig = _signature(os.fstat(fd))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return sig


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``<path>.lock``: serializes writers across processes."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        raise KeyringError("keyring lock file: cannot be opened for writing") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- the file keyring -----------------------------------------------------------


class FileKeyring:
    """A ``Keyring`` over one JSON file (see the module docstring for the rules).

    ``FileKeyring(path)`` opens an existing file; ``FileKeyring.open(path)``
    creates it first (with KEK version 1) when it is missing. Safe to share
    between threads; several processes may use the same file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.RLock()
        self._state, self._sig = _read(self._path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FileKeyring:
        """Open the keyring at ``path``, creating it (and its directory, 0700) if missing."""
        p = Path(path)
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not p.exists():
            with _file_lock(p):
                if not p.exists():
                    _write(p, _new_state().to_json())
        return cls(p)

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"FileKeyring({str(self._path)!r})"

    # -- freshness --------------------------------------------------------------

    def _refresh_if_changed(self) -> None:
        try:
            sig = _signature(os.stat(self._path))
        except FileNotFoundError:
            raise KeyringError("keyring file: does not exist") from None
        if sig != self._sig:
            self._state, self._sig = _read(self._path)

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[_State]:
        """Under both locks, yield a fresh copy of the state and write it back."""
        with self._lock, _file_lock(self._path):
            state, sig = _read(self._path)
            draft = state.copy()
            yield draft
            if draft != state:
                sig = _write(self._path, draft.to_json())
            self._state, self._sig = draft, sig

    # -- Keyring ----------------------------------------------------------------

    def current_version(self) -> int:
        with self._lock:
            self._refresh_if_changed()
            return self._state.current

    def versions(self) -> list[int]:
        with self._lock:
            self._refresh_if_changed()
            return sorted(self._state.keks)

    def wrap(self, dek: bytes, *, context: bytes) -> WrappedKey:
        if not isinstance(dek, bytes | bytearray) or len(dek) != KEY_SIZE:
            raise ValueError("dek: must be 32 bytes")
        with self._lock:
            self._refresh_if_changed()
            version = self._state.current
            kek = self._state.keks[version]
        blob = _seal_dek(kek, version, bytes(dek), context, os.urandom(NONCE_SIZE))
        return WrappedKey(kek_version=version, blob=blob)

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        version = wrapped.kek_version
        with self._lock:
            # a rotation or retirement by another process (e.g. the CLI) takes
            # effect here at once: a retired version stops opening anything
            self._refresh_if_changed()
            kek = self._state.keks.get(version)
        if kek is None:
            raise DecryptionError()
        return _open_dek(kek, version, bytes(wrapped.blob), context)

    def rotate(self) -> int:
        with self._mutate() as state:
            version = max(state.keks.keys() | state.retired) + 1
            if version > MAX_VERSION:
                raise KeyringError("kek version: no version numbers left")
            state.keks[version] = os.urandom(KEY_SIZE)
            state.current = version
        return version

    def retire(self, version: int) -> None:
        with self._mutate() as state:
            if version == state.current:
                raise KeyringError("kek version: the current version cannot be retired")
            if version not in state.keks:
                raise KeyringError("kek version: not an active version")
            del state.keks[version]
            state.retired.add(version)

    def secret_names(self) -> list[str]:
        with self._lock:
            self._refresh_if_changed()
            return sorted(self._state.secrets)

    def secret(self, name: str) -> bytes:
        if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
            raise ValueError("secret name: must match [a-z0-9-]{1,32}")
        with self._lock:
            self._refresh_if_changed()
            value = self._state.secrets.get(name)
            if value is not None:
                return value
            with self._mutate() as state:
                value = state.secrets.setdefault(name, os.urandom(KEY_SIZE))
            return value
