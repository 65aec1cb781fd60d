"""The access record format v1 ("LLAR", docs/verification.md 11.2) against
its frozen vectors (tests/vectors/access-record-v1.json), and an encoder
written from the docs' table alone that must agree byte for byte."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import struct
from pathlib import Path

import pytest

from audit.access_format import AccessRecord, decode_record
from audit.entry_format import EncodingError

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "vectors" / "access-record-v1.json"
GENERATOR_PATH = ROOT / "tests" / "vectors" / "make_access_vectors.py"
VECTORS: list[dict] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
TEXTS = (
    "request_id",
    "principal",
    "role",
    "method",
    "decision",
    "reason",
    "purpose",
    "member_account_id",
    "fields",
)


def _record(v: dict) -> AccessRecord:
    return AccessRecord(
        v["sequence"], v["time_us"], bytes.fromhex(v["prev_hash"]), *(v[t] for t in TEXTS)
    )


def _from_the_docs(v: dict) -> bytes:
    """docs/verification.md 11.2: magic, u8 version, u64 sequence, i64 time,
    32-byte prev_hash, then nine strs (u16 length + UTF-8), big-endian."""
    out = b"LLAR" + bytes([1]) + struct.pack(">Q", v["sequence"]) + struct.pack(">q", v["time_us"])
    out += bytes.fromhex(v["prev_hash"])
    for name in TEXTS:
        raw = v[name].encode("utf-8")
        out += struct.pack(">H", len(raw)) + raw
    return out


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_encoding_and_hash_match_the_vectors(v: dict) -> None:
    record = _record(v)
    assert record.encode().hex() == v["encoding"]
    assert _from_the_docs(v).hex() == v["encoding"]
    assert record.compute_hash().hex() == v["hash"]
    assert hashlib.sha256(bytes.fromhex(v["encoding"])).hexdigest() == v["hash"]
    assert decode_record(bytes.fromhex(v["encoding"])) == record


def test_the_vectors_are_one_chain() -> None:
    assert VECTORS[0]["prev_hash"] == "00" * 32
    for before, after in itertools.pairwise(VECTORS):
        assert after["prev_hash"] == before["hash"]
        assert after["sequence"] == before["sequence"] + 1


def test_a_changed_byte_changes_the_hash_and_bad_bytes_do_not_decode() -> None:
    data = bytearray(bytes.fromhex(VECTORS[1]["encoding"]))
    data[-1] ^= 0x01  # a field name changed after the fact
    assert hashlib.sha256(data).hexdigest() != VECTORS[1]["hash"]
    for bad in (data[:-1], bytes(data) + b"\x00", b"LLAR\x02" + bytes(data[5:])):
        with pytest.raises(EncodingError):
            decode_record(bytes(bad))


def test_generator_reproduces_the_frozen_file_byte_for_byte() -> None:
    spec = importlib.util.spec_from_file_location("make_access_vectors", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == VECTORS_PATH.read_text(encoding="utf-8")
