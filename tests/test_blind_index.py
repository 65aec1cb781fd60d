"""Blind index (ledger.keys.blind_index): normalization and tokens.

- the vectors' normalized forms and tokens, with the code and with an
  independent HMAC computation from docs/field-encryption.md;
- phone numbers written differently meet in one E.164 form; e-mail
  addresses are lower-cased and their domains IDNA-encoded;
- invalid input raises ValueError whose message never contains the input.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from ledger.keys import BlindIndex, normalize_email, normalize_phone

ROOT = Path(__file__).resolve().parent.parent
DOC: dict = json.loads(
    (ROOT / "tests" / "vectors" / "field-cipher-v1.json").read_text(encoding="utf-8")
)
VECTORS: list[dict] = DOC["blind_index"]
KEY = bytes(range(128, 160))

PHONE_ERROR = "phone: not a valid phone number"
EMAIL_ERROR = "email: not a valid e-mail address"


def ids(vectors: list[dict]) -> list[str]:
    return [f"{v['kind']}-{v['input'].strip()}-{v['size']}" for v in vectors]


# -- (a) vectors ----------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS, ids=ids(VECTORS))
def test_vector_normalizes_and_tokens(v: dict) -> None:
    if v["kind"] == "phone":
        assert normalize_phone(v["input"], v["region"]) == v["normalized"]
    else:
        assert normalize_email(v["input"]) == v["normalized"]
    index = BlindIndex(bytes.fromhex(v["key"]), size=v["size"])
    assert index.token(v["kind"], v["normalized"]).hex() == v["token"]
    convenience = (
        index.phone(v["input"], v["region"]) if v["kind"] == "phone" else index.email(v["input"])
    )
    assert convenience.hex() == v["token"]


@pytest.mark.parametrize("v", VECTORS, ids=ids(VECTORS))
def test_spec_hmac_gives_the_vector_token(v: dict) -> None:
    message = v["kind"].encode() + b"\x00" + v["normalized"].encode()
    digest = hmac.new(bytes.fromhex(v["key"]), message, hashlib.sha256).digest()
    assert digest[: v["size"]].hex() == v["token"]


def test_vectors_cover_both_kinds_and_sizes() -> None:
    assert {v["kind"] for v in VECTORS} == {"phone", "email"}
    assert {v["size"] for v in VECTORS} >= {4, 8, 32}


# -- (b) phone numbers ----------------------------------------------------------


def test_same_number_written_differently_gives_one_e164() -> None:
    assert normalize_phone("+86 138 0000 0000") == "+8613800000000"
    assert normalize_phone("13800000000", "CN") == "+8613800000000"
    assert normalize_phone("138-0000-0000") == "+8613800000000"
    index = BlindIndex(KEY)
    assert index.phone("+86 138 0000 0000") == index.phone("13800000000", "CN")


def test_international_form_ignores_the_default_region() -> None:
    assert normalize_phone("+86 138 0000 0000", "GB") == "+8613800000000"
    assert normalize_phone("020 7946 0000", "GB") == "+442079460000"


@pytest.mark.parametrize(
    "v", DOC["invalid_phone"], ids=[f"{v['input']}-{v['region']}" for v in DOC["invalid_phone"]]
)
def test_invalid_phone_raises_without_echoing_the_input(v: dict) -> None:
    with pytest.raises(ValueError) as info:
        normalize_phone(v["input"], v["region"])
    assert str(info.value) == PHONE_ERROR
    assert v["input"] not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


@pytest.mark.parametrize("value", ["", "   ", "+", "0", "1" * 300, "+86 13800000000000000"])
def test_more_invalid_phones(value: str) -> None:
    with pytest.raises(ValueError, match=f"^{PHONE_ERROR}$"):
        normalize_phone(value)


# -- (c) e-mail addresses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("test@example.invalid", "test@example.invalid"),
        ("  Test@Example.INVALID\n", "test@example.invalid"),
        ("TEST.Person+tag@Sub.Example.invalid", "test.person+tag@sub.example.invalid"),
        ("test@BÜCHER.example", "test@xn--bcher-kva.example"),
        ("tëst@example.invalid", "tëst@example.invalid"),
        ("test@xn--bcher-kva.example", "test@xn--bcher-kva.example"),
    ],
)
def test_email_normalization(value: str, expected: str) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize("value", DOC["invalid_email"])
def test_invalid_email_raises_without_echoing_the_input(value: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_email(value)
    assert str(info.value) == EMAIL_ERROR
    assert value not in str(info.value)


@pytest.mark.parametrize("value", ["", "@", "a@b", "a" * 250 + "@example.invalid", "a@\x00.b"])
def test_more_invalid_emails(value: str) -> None:
    with pytest.raises(ValueError, match=f"^{EMAIL_ERROR}$"):
        normalize_email(value)


# -- (d) tokens ------------------------------------------------------------------


def test_kind_separates_tokens() -> None:
    index = BlindIndex(KEY, size=32)
    assert index.token("phone", "x") != index.token("email", "x")
    # the NUL separator: "phone" + "\0" + "x" never equals "phon" + "\0" + "e..."
    assert index.token("phone", "ab") != index.token("phon", "e\x00ab")


def test_key_changes_every_token() -> None:
    a, b = BlindIndex(KEY), BlindIndex(bytes(32))
    assert a.email("test@example.invalid") != b.email("test@example.invalid")


def test_token_size_defaults_to_32_bits() -> None:
    index = BlindIndex(KEY)
    assert index.size == 4
    assert len(index.phone("13800000000")) == 4
    full = BlindIndex(KEY, size=32).phone("13800000000")
    assert index.phone("13800000000") == full[:4]


@pytest.mark.parametrize(
    ("key", "size", "message"),
    [(bytes(16), 4, "at least 32 bytes"), (KEY, 0, "size"), (KEY, 33, "size")],
)
def test_constructor_rejects_bad_arguments(key: bytes, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BlindIndex(key, size=size)


@pytest.mark.parametrize("kind", ["", "Phone", "ph\x00one", "1phone", "a" * 33])
def test_token_rejects_bad_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        BlindIndex(KEY).token(kind, "+8613800000000")


def test_repr_shows_no_key_material() -> None:
    assert KEY.hex() not in repr(BlindIndex(KEY))
    assert repr(KEY) not in repr(BlindIndex(KEY))
