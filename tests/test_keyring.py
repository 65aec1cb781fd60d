"""Envelope encryption of DEKs (ledger.keys.keyring) and the keyring file.

- the DEK-wrap vectors, with the code and with an independent decoder that
  uses AESGCM and the documented AAD alone, through a keyring file written by
  hand from docs/field-encryption.md;
- the file: created 0600 in a 0700 directory, refused when group or others
  have access, atomic replacement, corrupt files refused without leaking keys;
- KEK rotation and retirement, named secrets, reload across instances and
  processes, and the attacks (every failure the same DecryptionError).
"""

from __future__ import annotations

import base64
import json
import stat
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.keys import (
    DecryptionError,
    FileKeyring,
    Keyring,
    KeyringError,
    WrappedKey,
    dek_context,
    new_data_key,
)
from ledger.keys.keyring import _seal_dek

ROOT = Path(__file__).resolve().parent.parent
VECTORS: list[dict] = json.loads(
    (ROOT / "tests" / "vectors" / "field-cipher-v1.json").read_text(encoding="utf-8")
)["dek_wrap"]

MEMBER_A = "mbr_" + "a" * 26
MEMBER_B = "mbr_" + "b" * 26
MESSAGE = "decryption failed"
PERMISSION_RULE = "must not be readable by group or others (chmod 600)"


def assert_opaque(fail: Callable[[], object]) -> None:
    with pytest.raises(DecryptionError) as info:
        fail()
    exc = info.value
    assert str(exc) == MESSAGE
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keyring.json"


@pytest.fixture
def keyring(keyring_path: Path) -> FileKeyring:
    return FileKeyring.open(keyring_path)


def write_keyring_file(path: Path, doc: dict, mode: int = 0o600) -> None:
    path.write_text(json.dumps(doc), encoding="utf-8")
    path.chmod(mode)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


# -- (a) vectors ----------------------------------------------------------------


def spec_dek_aad(context: bytes, kek_version: int) -> bytes:
    return b"loyalty-ledger/dek/v1\x00" + context + struct.pack(">I", kek_version)


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_dek_wrap_vector(v: dict, tmp_path: Path) -> None:
    kek, dek = bytes.fromhex(v["kek"]), bytes.fromhex(v["dek"])
    context = bytes.fromhex(v["context"])
    blob = bytes.fromhex(v["blob"])
    # the context convention
    assert dek_context(v["member_id"], v["dek_version"]) == context
    assert context == v["member_id"].encode() + b"\x00" + struct.pack(">I", v["dek_version"])
    # the code, through the nonce seam
    seal = _seal_dek(kek, v["kek_version"], dek, context, bytes.fromhex(v["nonce"]))
    assert seal.hex() == v["blob"]
    # an independent decoder: blob = nonce (12) | ciphertext || tag
    assert spec_dek_aad(context, v["kek_version"]).hex() == v["aad"]
    assert len(blob) == 12 + 32 + 16
    opened = AESGCM(kek).decrypt(blob[:12], blob[12:], spec_dek_aad(context, v["kek_version"]))
    assert opened == dek
    # a keyring file written by hand from the documented format
    path = tmp_path / "keyring.json"
    write_keyring_file(
        path,
        {
            "format": "loyalty-ledger/keyring/v1",
            "current": v["kek_version"],
            "keks": {str(v["kek_version"]): b64(kek)},
            "retired": [],
            "secrets": {},
        },
    )
    ring = FileKeyring(path)
    assert ring.unwrap(WrappedKey(v["kek_version"], blob), context=context) == dek


# -- (b) the file -----------------------------------------------------------------


def test_open_creates_a_0600_file_in_a_0700_directory(keyring_path: Path) -> None:
    ring = FileKeyring.open(keyring_path)
    assert mode_of(keyring_path) == 0o600
    assert mode_of(keyring_path.parent) == 0o700
    assert ring.versions() == [1]
    assert ring.current_version() == 1
    doc = json.loads(keyring_path.read_text(encoding="utf-8"))
    assert doc["format"] == "loyalty-ledger/keyring/v1"
    assert doc["current"] == 1
    assert len(base64.b64decode(doc["keks"]["1"])) == 32
    assert doc["retired"] == [] and doc["secrets"] == {}


def test_open_keeps_an_existing_file(keyring_path: Path) -> None:
    ring = FileKeyring.open(keyring_path)
    wrapped = ring.wrap(bytes(32), context=b"ctx")
    again = FileKeyring.open(keyring_path)
    assert again.unwrap(wrapped, context=b"ctx") == bytes(32)


def test_constructor_requires_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="does not exist"):
        FileKeyring(tmp_path / "missing.json")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610, 0o601])
def test_permissions_refused_when_group_or_others_have_access(
    keyring_path: Path, mode: int
) -> None:
    FileKeyring.open(keyring_path)
    keyring_path.chmod(mode)
    with pytest.raises(KeyringError) as info:
        FileKeyring(keyring_path)
    assert PERMISSION_RULE in str(info.value)
    with pytest.raises(KeyringError, match=r"chmod 600"):
        FileKeyring.open(keyring_path)


def test_permissions_changed_under_a_running_instance_are_refused_on_reload(
    keyring_path: Path,
) -> None:
    first = FileKeyring.open(keyring_path)
    second = FileKeyring(keyring_path)
    second.rotate()
    keyring_path.chmod(0o644)
    with pytest.raises(KeyringError, match=r"chmod 600"):
        first.current_version()


def test_updates_keep_mode_0600_and_leave_no_temporary_files(keyring: FileKeyring) -> None:
    keyring.rotate()
    keyring.secret("blind-index")
    keyring.retire(1)
    assert mode_of(keyring.path) == 0o600
    names = sorted(p.name for p in keyring.path.parent.iterdir())
    assert names == ["keyring.json", "keyring.json.lock"]


@pytest.mark.parametrize(
    ("mangle", "rule"),
    [
        (lambda d: "not json {", "not valid JSON"),
        (lambda d: [], "top level"),
        (lambda d: {**d, "extra": 1}, "fields must be exactly"),
        (lambda d: {**d, "format": "other/v9"}, "format"),
        (lambda d: {**d, "current": 2}, "current must be an active kek version"),
        (lambda d: {**d, "keks": {}}, "keks must be a non-empty object"),
        (lambda d: {**d, "keks": {"1": "!!notbase64!!"}}, "valid base64"),
        (lambda d: {**d, "keks": {"1": b64(b"short")}}, "32 bytes"),
        (lambda d: {**d, "keks": {"x": d["keks"]["1"]}}, "versions must be integers"),
        (lambda d: {**d, "keks": {"01": d["keks"]["1"]}}, "versions must be integers"),
        (lambda d: {**d, "current": "1"}, "versions must be integers"),
        (lambda d: {**d, "current": True}, "versions must be integers"),
        (lambda d: {**d, "retired": [0]}, "versions must be integers"),
        (lambda d: {**d, "retired": [1]}, "both active and retired"),
        (lambda d: {**d, "secrets": {"Bad Name": d["keks"]["1"]}}, "secret names"),
    ],
)
def test_corrupt_file_is_refused_without_leaking_key_material(
    keyring_path: Path, mangle: Callable[[dict], object], rule: str
) -> None:
    FileKeyring.open(keyring_path)
    doc = json.loads(keyring_path.read_text(encoding="utf-8"))
    kek_b64 = doc["keks"]["1"]
    mangled = mangle(doc)
    text = mangled if isinstance(mangled, str) else json.dumps(mangled)
    keyring_path.write_text(text, encoding="utf-8")
    with pytest.raises(KeyringError) as info:
        FileKeyring(keyring_path)
    message = str(info.value)
    assert rule in message
    assert "corrupt" in message
    assert kek_b64 not in message
    assert info.value.__cause__ is None


# -- (c) wrap, rotate, retire -----------------------------------------------------


def test_keyring_is_a_keyring(keyring: FileKeyring) -> None:
    assert isinstance(keyring, Keyring)


def test_wrap_unwrap_round_trip(keyring: FileKeyring) -> None:
    dek = new_data_key()
    context = dek_context(MEMBER_A, 1)
    wrapped = keyring.wrap(dek, context=context)
    assert wrapped.kek_version == 1
    assert len(wrapped.blob) == 60
    assert dek not in wrapped.blob
    assert keyring.unwrap(wrapped, context=context) == dek
    assert wrapped.blob.hex() not in repr(wrapped)
    assert keyring.wrap(dek, context=context).blob != wrapped.blob  # fresh nonce


def test_wrap_rejects_keys_that_are_not_32_bytes(keyring: FileKeyring) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        keyring.wrap(bytes(16), context=b"ctx")


def test_rotate_then_unwrap_old_wraps(keyring: FileKeyring) -> None:
    dek = new_data_key()
    context = dek_context(MEMBER_A, 1)
    old = keyring.wrap(dek, context=context)
    assert keyring.rotate() == 2
    assert keyring.current_version() == 2
    assert keyring.versions() == [1, 2]
    new = keyring.wrap(dek, context=context)
    assert new.kek_version == 2
    assert keyring.unwrap(old, context=context) == dek
    assert keyring.unwrap(new, context=context) == dek
    assert FileKeyring(keyring.path).unwrap(old, context=context) == dek


def test_retire_current_refused(keyring: FileKeyring) -> None:
    with pytest.raises(KeyringError, match="current version cannot be retired"):
        keyring.retire(1)
    keyring.rotate()
    with pytest.raises(KeyringError, match="current version cannot be retired"):
        keyring.retire(2)
    assert keyring.versions() == [1, 2]


def test_retire_unknown_refused(keyring: FileKeyring) -> None:
    with pytest.raises(KeyringError, match="not an active version"):
        keyring.retire(7)


def test_retired_kek_version(keyring: FileKeyring) -> None:
    dek = new_data_key()
    context = dek_context(MEMBER_A, 1)
    old = keyring.wrap(dek, context=context)
    keyring.rotate()
    rewrapped = keyring.wrap(keyring.unwrap(old, context=context), context=context)
    keyring.retire(1)
    assert keyring.versions() == [2]
    assert_opaque(lambda: keyring.unwrap(old, context=context))
    assert_opaque(lambda: FileKeyring(keyring.path).unwrap(old, context=context))
    assert keyring.unwrap(rewrapped, context=context) == dek
    with pytest.raises(KeyringError, match="not an active version"):
        keyring.retire(1)
    # the key is gone from the file, and version numbers are never reused
    doc = json.loads(keyring.path.read_text(encoding="utf-8"))
    assert list(doc["keks"]) == ["2"] and doc["retired"] == [1]
    assert keyring.rotate() == 3


def test_wrapped_dek_moved_to_other_member(keyring: FileKeyring) -> None:
    wrapped = keyring.wrap(new_data_key(), context=dek_context(MEMBER_A, 1))
    assert_opaque(lambda: keyring.unwrap(wrapped, context=dek_context(MEMBER_B, 1)))
    assert_opaque(lambda: keyring.unwrap(wrapped, context=dek_context(MEMBER_A, 2)))


def test_wrapped_dek_kek_version_altered(keyring: FileKeyring) -> None:
    wrapped = keyring.wrap(new_data_key(), context=b"ctx")
    keyring.rotate()
    for version in (2, 3, 0, -1, 2**32):
        assert_opaque(lambda v=version: keyring.unwrap(WrappedKey(v, wrapped.blob), context=b"ctx"))


def test_wrapped_dek_bit_flip_and_truncation(keyring: FileKeyring) -> None:
    wrapped = keyring.wrap(new_data_key(), context=b"ctx")
    for i in range(len(wrapped.blob)):
        flipped = bytearray(wrapped.blob)
        flipped[i] ^= 0x01
        assert_opaque(lambda f=bytes(flipped): keyring.unwrap(WrappedKey(1, f), context=b"ctx"))
    for n in range(len(wrapped.blob)):
        blob = wrapped.blob[:n]
        assert_opaque(lambda b=blob: keyring.unwrap(WrappedKey(1, b), context=b"ctx"))
    longer = WrappedKey(1, wrapped.blob + b"\x00")
    assert_opaque(lambda: keyring.unwrap(longer, context=b"ctx"))


# -- (d) named secrets ------------------------------------------------------------


def test_secret_is_stable_across_reopen(keyring: FileKeyring) -> None:
    first = keyring.secret("blind-index")
    assert len(first) == 32
    assert keyring.secret("blind-index") == first
    assert FileKeyring.open(keyring.path).secret("blind-index") == first
    keyring.rotate()
    keyring.retire(1)
    assert FileKeyring(keyring.path).secret("blind-index") == first


def test_secrets_are_distinct_and_not_keks(keyring: FileKeyring) -> None:
    a, b = keyring.secret("blind-index"), keyring.secret("other-1")
    assert a != b
    doc = json.loads(keyring.path.read_text(encoding="utf-8"))
    assert b64(a) not in doc["keks"].values()
    assert keyring.versions() == [1]


@pytest.mark.parametrize("name", ["", "Blind-Index", "blind_index", "a" * 33, "x/y", "é"])
def test_secret_names_are_restricted(keyring: FileKeyring, name: str) -> None:
    with pytest.raises(ValueError, match=r"\[a-z0-9-\]\{1,32\}"):
        keyring.secret(name)


# -- (e) several instances and processes ------------------------------------------


def test_second_instance_sees_a_rotation_by_the_first(keyring_path: Path) -> None:
    first = FileKeyring.open(keyring_path)
    second = FileKeyring(keyring_path)
    assert first.rotate() == 2
    wrapped = first.wrap(bytes(range(32)), context=b"ctx")
    assert wrapped.kek_version == 2
    assert second.unwrap(wrapped, context=b"ctx") == bytes(range(32))
    assert second.current_version() == 2
    assert second.wrap(bytes(32), context=b"ctx").kek_version == 2


def test_second_instance_sees_a_secret_created_by_the_first(keyring_path: Path) -> None:
    first = FileKeyring.open(keyring_path)
    second = FileKeyring(keyring_path)
    assert second.secret("blind-index") == first.secret("blind-index")


def test_rotation_by_another_process_is_picked_up(keyring: FileKeyring) -> None:
    script = (
        "import sys; from ledger.keys import FileKeyring; print(FileKeyring(sys.argv[1]).rotate())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(keyring.path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.stdout.strip() == "2"
    other = FileKeyring(keyring.path)
    wrapped = other.wrap(bytes(32), context=b"ctx")
    assert keyring.unwrap(wrapped, context=b"ctx") == bytes(32)
    assert keyring.versions() == [1, 2]


def test_concurrent_rotations_and_secrets_lose_no_update(keyring_path: Path) -> None:
    rings = [FileKeyring.open(keyring_path) for _ in range(4)]
    results: list[int] = []
    secrets: list[bytes] = []
    errors: list[BaseException] = []

    def work(ring: FileKeyring) -> None:
        try:
            for _ in range(5):
                results.append(ring.rotate())
                secrets.append(ring.secret("blind-index"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in rings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == list(range(2, 22))
    assert len(set(secrets)) == 1
    assert FileKeyring(keyring_path).versions() == list(range(1, 22))


def test_unwrap_while_rotating_in_another_thread(keyring: FileKeyring) -> None:
    dek = new_data_key()
    wrapped = keyring.wrap(dek, context=b"ctx")
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                assert keyring.unwrap(wrapped, context=b"ctx") == dek
                fresh = keyring.wrap(dek, context=b"ctx")
                assert keyring.unwrap(fresh, context=b"ctx") == dek
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(10):
        keyring.rotate()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert keyring.current_version() == 11
