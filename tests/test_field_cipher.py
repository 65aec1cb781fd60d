"""Field encryption v1 (ledger.keys.field_cipher) against its frozen vectors and its spec.

- the code reproduces the vectors' blobs (fixed-nonce seam) and opens them;
- an independent decoder, written from docs/field-encryption.md with AESGCM
  alone, opens every vector blob and re-seals it to the same bytes;
- round trips, DEK rotation, and the named attacks: every failure is a
  DecryptionError with exactly the same message and no chained cause.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.keys import DecryptionError, FieldCipher, KeysError, new_data_key

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "vectors" / "field-cipher-v1.json"
GENERATOR_PATH = ROOT / "tests" / "vectors" / "make_field_cipher_vectors.py"
SPEC_PATH = ROOT / "docs" / "field-encryption.md"

DOC: dict = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
VECTORS: list[dict] = DOC["field_cipher"]

MEMBER_A = "mbr_" + "a" * 26
MEMBER_B = "mbr_" + "b" * 26
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
MESSAGE = "decryption failed"


def by_name(vectors: list[dict]) -> dict:
    return {"argvalues": vectors, "ids": [v["name"] for v in vectors]}


def cipher_of(v: dict) -> FieldCipher:
    version = v["dek_version"]
    return FieldCipher(
        member_id=v["member_id"], keys={version: bytes.fromhex(v["dek"])}, current=version
    )


def assert_opaque(fail: Callable[[], object]) -> DecryptionError:
    """``fail`` raises DecryptionError with the one message and nothing chained."""
    with pytest.raises(DecryptionError) as info:
        fail()
    exc = info.value
    assert str(exc) == MESSAGE
    assert exc.args == (MESSAGE,)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    assert isinstance(exc, KeysError)
    return exc


# -- (a) the code produces and opens the vectors -------------------------------


def test_vector_file_has_the_required_cases() -> None:
    names = {v["name"] for v in VECTORS}
    assert {"name", "empty-value", "non-ascii", "big-endian-key-version"} <= names
    assert "journal-details-bytes" in names
    assert len({v["member_id"] for v in VECTORS}) >= 2


def test_generator_reproduces_the_frozen_file_byte_for_byte() -> None:
    spec = importlib.util.spec_from_file_location("make_field_cipher_vectors", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == VECTORS_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("v", **by_name(VECTORS))
def test_vector_seals_to_expected_blob(v: dict) -> None:
    blob = cipher_of(v)._encrypt_with_nonce(
        v["field"], bytes.fromhex(v["plaintext_hex"]), bytes.fromhex(v["nonce"])
    )
    assert blob.hex() == v["blob"]


@pytest.mark.parametrize("v", **by_name(VECTORS))
def test_vector_opens(v: dict) -> None:
    cipher = cipher_of(v)
    blob = bytes.fromhex(v["blob"])
    assert cipher.decrypt_bytes(v["field"], blob).hex() == v["plaintext_hex"]
    if v["plaintext"] is not None:
        assert cipher.decrypt(v["field"], blob) == v["plaintext"]
    assert FieldCipher.key_version(blob) == v["dek_version"]
    assert cipher.key_version(blob) == v["dek_version"]


# -- (b) an independent implementation, from docs/field-encryption.md alone ----


def spec_aad(member_id: str, field: str, dek_version: int) -> bytes:
    return b"".join(
        [
            b"loyalty-ledger/field/v1\x00",
            member_id.encode("utf-8"),
            b"\x00",
            field.encode("utf-8"),
            b"\x00",
            struct.pack(">I", dek_version),
        ]
    )


def spec_open(blob: bytes, member_id: str, field: str, deks: dict[int, bytes]) -> bytes:
    if len(blob) < 1 + 4 + 12 + 16 or blob[0] != 0x01:
        raise ValueError("malformed")
    (dek_version,) = struct.unpack(">I", blob[1:5])
    nonce, sealed = blob[5:17], blob[17:]
    return AESGCM(deks[dek_version]).decrypt(nonce, sealed, spec_aad(member_id, field, dek_version))


def spec_seal(
    data: bytes, member_id: str, field: str, version: int, dek: bytes, nonce: bytes
) -> bytes:
    sealed = AESGCM(dek).encrypt(nonce, data, spec_aad(member_id, field, version))
    return bytes([0x01]) + struct.pack(">I", version) + nonce + sealed


@pytest.mark.parametrize("v", **by_name(VECTORS))
def test_spec_decoder_opens_every_vector(v: dict) -> None:
    blob = bytes.fromhex(v["blob"])
    deks = {v["dek_version"]: bytes.fromhex(v["dek"])}
    assert spec_aad(v["member_id"], v["field"], v["dek_version"]).hex() == v["aad"]
    assert spec_open(blob, v["member_id"], v["field"], deks).hex() == v["plaintext_hex"]
    assert len(blob) == 1 + 4 + 12 + len(bytes.fromhex(v["plaintext_hex"])) + 16
    resealed = spec_seal(
        bytes.fromhex(v["plaintext_hex"]),
        v["member_id"],
        v["field"],
        v["dek_version"],
        bytes.fromhex(v["dek"]),
        bytes.fromhex(v["nonce"]),
    )
    assert resealed.hex() == v["blob"]


def test_spec_decoder_opens_what_the_code_seals_with_random_nonces() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1, 9: KEY_2}, current=9)
    blob = cipher.encrypt("email", "test@example.invalid")
    assert spec_open(blob, MEMBER_A, "email", {9: KEY_2}) == b"test@example.invalid"
    with pytest.raises(InvalidTag):
        spec_open(blob, MEMBER_B, "email", {9: KEY_2})


def test_spec_worked_example_is_the_first_vector() -> None:
    text = SPEC_PATH.read_text(encoding="utf-8")
    v = VECTORS[0]
    assert v["blob"] in "".join(text.split())
    assert v["aad"] in "".join(text.split())


# -- (c) round trips -----------------------------------------------------------


@pytest.mark.parametrize("value", ["Test Person", "", "Tëst 测试 \U0001f600", "x" * 10_000])
def test_round_trip_text(value: str) -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    blob = cipher.encrypt("name", value)
    assert cipher.decrypt("name", blob) == value
    assert len(blob) == 1 + 4 + 12 + len(value.encode()) + 16


def test_round_trip_bytes() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    data = bytes(range(256))
    blob = cipher.encrypt_bytes("journal-details", data)
    assert cipher.decrypt_bytes("journal-details", blob) == data


def test_every_encryption_draws_a_fresh_nonce() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    blobs = {cipher.encrypt("name", "Test Person") for _ in range(50)}
    assert len(blobs) == 50
    assert len({b[5:17] for b in blobs}) == 50


def test_dek_rotation_keeps_old_blobs_readable_and_seals_under_the_new_version() -> None:
    old = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    old_blob = old.encrypt("name", "Test Person")
    rotated = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1, 2: KEY_2}, current=2)
    assert rotated.current == 2
    assert rotated.decrypt("name", old_blob) == "Test Person"
    new_blob = rotated.encrypt("name", rotated.decrypt("name", old_blob))
    assert FieldCipher.key_version(new_blob) == 2
    after = FieldCipher(member_id=MEMBER_A, keys={2: KEY_2}, current=2)
    assert after.decrypt("name", new_blob) == "Test Person"
    assert_opaque(lambda: after.decrypt("name", old_blob))


def test_new_data_key_is_32_random_bytes() -> None:
    keys = {new_data_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 32 for k in keys)


def test_repr_shows_no_key_material() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1, 2: KEY_2}, current=2)
    text = repr(cipher)
    assert KEY_1.hex() not in text and repr(KEY_1) not in text
    assert "current=2" in text


# -- (d) misuse by the caller: ValueError, not DecryptionError -----------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"member_id": "mbr\x00x", "keys": {1: KEY_1}, "current": 1}, "member id"),
        ({"member_id": "", "keys": {1: KEY_1}, "current": 1}, "member id"),
        ({"member_id": MEMBER_A, "keys": {1: KEY_1[:16]}, "current": 1}, "32 bytes"),
        ({"member_id": MEMBER_A, "keys": {1: KEY_1}, "current": 2}, "current"),
        ({"member_id": MEMBER_A, "keys": {-1: KEY_1}, "current": -1}, "dek version"),
        ({"member_id": MEMBER_A, "keys": {2**32: KEY_1}, "current": 2**32}, "dek version"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FieldCipher(**kwargs)


@pytest.mark.parametrize("field", ["", "na\x00me"])
def test_field_names_must_be_non_empty_without_nul(field: str) -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    with pytest.raises(ValueError, match="field"):
        cipher.encrypt(field, "Test Person")
    blob = cipher.encrypt("name", "Test Person")
    with pytest.raises(ValueError, match="field"):
        cipher.decrypt(field, blob)


def test_nul_separator_prevents_member_field_ambiguity() -> None:
    # without NUL checks "mbr_a" + "\x00" + "b\x00name" could alias "mbr_a\x00b" + "name"
    with pytest.raises(ValueError):
        FieldCipher(member_id="mbr_a\x00b", keys={1: KEY_1}, current=1)


# -- (e) the attacks: one opaque DecryptionError --------------------------------


def sealed(member: str = MEMBER_A, field: str = "name", version: int = 1) -> bytes:
    keys = {1: KEY_1, 2: KEY_2}
    return FieldCipher(member_id=member, keys=keys, current=version).encrypt(field, "Test Person")


def test_ciphertext_swapped_between_members() -> None:
    # member B holds the very same DEK bytes: only the AAD binding stops the swap
    victim = FieldCipher(member_id=MEMBER_B, keys={1: KEY_1}, current=1)
    assert_opaque(lambda: victim.decrypt("name", sealed(MEMBER_A)))


def test_ciphertext_swapped_between_fields() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    blob = cipher.encrypt("phone", "+8613800000000")
    assert_opaque(lambda: cipher.decrypt("email", blob))


def test_bit_flip_in_ciphertext() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1, 2: KEY_2}, current=1)
    blob = sealed()
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            flipped = bytearray(blob)
            flipped[i] ^= bit
            assert_opaque(lambda f=bytes(flipped): cipher.decrypt("name", f))


def test_header_key_version_altered() -> None:
    # versions 1 and 2 hold the SAME key: the AAD's key version still catches it
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1, 2: KEY_1}, current=1)
    blob = cipher.encrypt("name", "Test Person")
    altered = blob[:1] + struct.pack(">I", 2) + blob[5:]
    assert FieldCipher.key_version(altered) == 2
    assert_opaque(lambda: cipher.decrypt("name", altered))


def test_unknown_key_version() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    assert_opaque(lambda: cipher.decrypt("name", sealed(version=2)))


def test_wrong_key_same_version() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_2}, current=1)
    assert_opaque(lambda: cipher.decrypt("name", sealed()))


def test_truncated_blob() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    blob = sealed()
    for n in range(len(blob)):
        assert_opaque(lambda n=n: cipher.decrypt("name", blob[:n]))
        if n < 33:
            assert_opaque(lambda n=n: FieldCipher.key_version(blob[:n]))


def test_extended_blob() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    assert_opaque(lambda: cipher.decrypt("name", sealed() + b"\x00"))


@pytest.mark.parametrize("fmt", [0x00, 0x02, 0x81, 0xFF])
def test_unknown_format_version(fmt: int) -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    blob = bytes([fmt]) + sealed()[1:]
    assert_opaque(lambda: cipher.decrypt("name", blob))
    assert_opaque(lambda: FieldCipher.key_version(blob))


def test_bytes_that_are_not_utf8_do_not_decrypt_as_text() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1}, current=1)
    blob = cipher.encrypt_bytes("name", b"\xff\xfe")
    assert_opaque(lambda: cipher.decrypt("name", blob))


def test_every_failure_has_exactly_the_same_message() -> None:
    cipher = FieldCipher(member_id=MEMBER_A, keys={1: KEY_1, 2: KEY_1}, current=1)
    blob = cipher.encrypt("name", "Test Person")
    failures: list[Callable[[], object]] = [
        lambda: FieldCipher(member_id=MEMBER_B, keys={1: KEY_1}, current=1).decrypt("name", blob),
        lambda: cipher.decrypt("phone", blob),
        lambda: cipher.decrypt("name", blob[:-1] + bytes([blob[-1] ^ 1])),
        lambda: cipher.decrypt("name", blob[:1] + struct.pack(">I", 2) + blob[5:]),
        lambda: cipher.decrypt("name", blob[:1] + struct.pack(">I", 3) + blob[5:]),
        lambda: cipher.decrypt("name", blob[:20]),
        lambda: cipher.decrypt("name", b""),
        lambda: cipher.decrypt("name", b"\x02" + blob[1:]),
        lambda: FieldCipher(member_id=MEMBER_A, keys={1: KEY_2}, current=1).decrypt("name", blob),
    ]
    messages = {str(assert_opaque(f)) for f in failures}
    assert messages == {MESSAGE}
