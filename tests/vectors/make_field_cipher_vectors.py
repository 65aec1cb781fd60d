"""Generator of tests/vectors/field-cipher-v1.json (field encryption v1).

The JSON file is GENERATED ONCE AND FROZEN: it is the reference that
ledger/keys/ and docs/field-encryption.md are tested against, so it must
never be regenerated to make a failing test pass. The inputs below are fixed
(fixed keys, fixed nonces through the test-only seams, no clock), so running
this script again must reproduce the file byte for byte; ``--check`` verifies
exactly that without writing anything.

    .venv/bin/python tests/vectors/make_field_cipher_vectors.py [--check]

Every key is a counting pattern and every value is obviously fake ("Test
Person", "+8613800000000", "test@example.invalid"). Never reuse a nonce
outside test vectors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ledger.keys.blind_index import BlindIndex, normalize_email, normalize_phone
from ledger.keys.field_cipher import FieldCipher
from ledger.keys.keyring import _aad as dek_aad
from ledger.keys.keyring import _seal_dek, dek_context

OUT = Path(__file__).with_name("field-cipher-v1.json")

MEMBER_A = "mbr_" + "a" * 26
MEMBER_B = "mbr_" + "b" * 26
DEK_1 = bytes(range(32))
DEK_2 = bytes(range(32, 64))
KEK_1 = bytes(range(64, 96))
KEK_7 = bytes(range(96, 128))
INDEX_KEY = bytes(range(128, 160))
NONCE_A = bytes(range(12))
NONCE_B = bytes(range(0xA0, 0xAC))
NONCE_C = bytes.fromhex("ffffffffffffffffffffffff")


def aad_hex(member_id: str, field: str, version: int) -> str:
    aad = b"loyalty-ledger/field/v1\x00" + member_id.encode() + b"\x00" + field.encode()
    return (aad + b"\x00" + version.to_bytes(4, "big")).hex()


def field_vector(
    name: str,
    description: str,
    member_id: str,
    field: str,
    version: int,
    dek: bytes,
    nonce: bytes,
    data: bytes,
    text: bool,
) -> dict:
    cipher = FieldCipher(member_id=member_id, keys={version: dek}, current=version)
    blob = cipher._encrypt_with_nonce(field, data, nonce)
    assert cipher.decrypt_bytes(field, blob) == data
    return {
        "name": name,
        "description": description,
        "member_id": member_id,
        "field": field,
        "dek_version": version,
        "dek": dek.hex(),
        "nonce": nonce.hex(),
        "plaintext": data.decode("utf-8") if text else None,
        "plaintext_hex": data.hex(),
        "aad": aad_hex(member_id, field, version),
        "blob": blob.hex(),
    }


def field_vectors() -> list[dict]:
    return [
        field_vector(
            "name", "A text field under DEK version 1.",
            MEMBER_A, "name", 1, DEK_1, NONCE_A, b"Test Person", True,
        ),
        field_vector(
            "phone", "The E.164 phone number of member A.",
            MEMBER_A, "phone", 1, DEK_1, NONCE_B, b"+8613800000000", True,
        ),
        field_vector(
            "email", "An e-mail address of member B, same DEK bytes as member A.",
            MEMBER_B, "email", 1, DEK_1, NONCE_A, b"test@example.invalid", True,
        ),
        field_vector(
            "empty-value", "An empty string: the blob is header and tag only.",
            MEMBER_A, "name", 1, DEK_1, NONCE_C, b"", True,
        ),
        field_vector(
            "non-ascii", "Non-ASCII text is sealed as UTF-8.",
            MEMBER_A, "name", 1, DEK_1, NONCE_B, "Tëst Pérsön 测试".encode(), True,
        ),
        field_vector(
            "big-endian-key-version",
            "DEK version 0x01020304: the header and AAD hold it as u32 big-endian.",
            MEMBER_A, "name", 0x01020304, DEK_2, NONCE_A, b"Test Person", True,
        ),
        field_vector(
            "journal-details-bytes",
            "Raw bytes (encrypt_bytes), as used for encrypted journal details.",
            MEMBER_B, "journal-details", 2, DEK_2, NONCE_C, bytes(range(0xF0, 0x100)) + b"\x00",
            False,
        ),
    ]  # fmt: skip


def dek_wrap_vector(
    name: str, kek: bytes, kek_version: int, dek: bytes, member_id: str, dek_version: int,
    nonce: bytes,
) -> dict:  # fmt: skip
    context = dek_context(member_id, dek_version)
    return {
        "name": name,
        "kek_version": kek_version,
        "kek": kek.hex(),
        "dek": dek.hex(),
        "member_id": member_id,
        "dek_version": dek_version,
        "context": context.hex(),
        "nonce": nonce.hex(),
        "aad": dek_aad(context, kek_version).hex(),
        "blob": _seal_dek(kek, kek_version, dek, context, nonce).hex(),
    }


def dek_wrap_vectors() -> list[dict]:
    return [
        dek_wrap_vector("member-a-dek-1-kek-1", KEK_1, 1, DEK_1, MEMBER_A, 1, NONCE_A),
        dek_wrap_vector("member-b-dek-2-kek-7", KEK_7, 7, DEK_2, MEMBER_B, 2, NONCE_B),
    ]


def index_vector(kind: str, value: str, region: str | None, size: int = 4) -> dict:
    index = BlindIndex(INDEX_KEY, size=size)
    if kind == "phone":
        normalized = normalize_phone(value, region or "CN")
    else:
        normalized = normalize_email(value)
    return {
        "key": INDEX_KEY.hex(),
        "size": size,
        "kind": kind,
        "input": value,
        "region": region,
        "normalized": normalized,
        "token": index.token(kind, normalized).hex(),
    }


def blind_index_vectors() -> list[dict]:
    return [
        index_vector("phone", "+86 138 0000 0000", "CN"),
        index_vector("phone", "13800000000", "CN"),
        index_vector("phone", "+8613800000000", "GB"),
        index_vector("phone", "020 7946 0000", "GB"),
        index_vector("email", "test@example.invalid", None),
        index_vector("email", "  Test@Example.INVALID ", None),
        index_vector("email", "Test@Bücher.example", None),
        index_vector("email", "test@example.invalid", None, size=8),
        index_vector("email", "test@example.invalid", None, size=32),
    ]


def render() -> str:
    doc = {
        "description": (
            "Field encryption v1 (docs/field-encryption.md). Generated once and frozen by "
            "tests/vectors/make_field_cipher_vectors.py; all keys and values are fake."
        ),
        "field_cipher": field_vectors(),
        "dek_wrap": dek_wrap_vectors(),
        "blind_index": blind_index_vectors(),
        "invalid_phone": [
            {"input": "12345", "region": "CN"},
            {"input": "not a number", "region": "CN"},
            {"input": "+86 000 0000 0000", "region": "CN"},
            {"input": "13800000000", "region": "ZZ"},
        ],
        "invalid_email": [
            "test.example.invalid",
            "test@@example.invalid",
            "te@st@example.invalid",
            "@example.invalid",
            "test@localhost",
            "test@example..invalid",
            "test@.example.invalid",
            "test@example.invalid.",
            "te st@example.invalid",
            "test@exa\tmple.invalid",
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.name}: differs from what this script generates", file=sys.stderr)
            return 1
        print(f"{OUT.name}: up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
