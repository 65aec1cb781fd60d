"""The journal format v1 against its frozen test vectors and its spec.

- every vector encodes to exactly its bytes and hash with audit.entry_format;
- a decoder/encoder written here from docs/journal-format.md alone (struct
  and hashlib, nothing from audit/) reads every vector back: the spec is
  implementable without the code;
- EntryDetails round trips and decodes the vectors' details;
- audit.chain accepts the vectors' chain and catches each named attack at
  the right sequence. Every attack is its strongest form short of rebuilding
  the whole chain: the materialized balances (and, where said, the head) are
  made to agree with the damaged journal, so only the named check is left to
  catch it.

No network, no database; all data is fake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
import re
import struct
from collections import defaultdict
from pathlib import Path

import pytest

from audit.chain import ChainVerificationError, Head, StoredEntry, check_chain, verify_chain
from audit.entry_format import GENESIS_PREV_HASH, JournalEntry, Posting
from ledger.commands import EntryDetails

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "vectors" / "journal-entry-v1.json"
GENERATOR_PATH = ROOT / "tests" / "vectors" / "make_journal_vectors.py"
SPEC_PATH = ROOT / "docs" / "journal-format.md"

VECTORS: list[dict] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CHAIN = [v for v in VECTORS if v["chain"] == "chain-1"]
WITH_DETAILS = [v for v in VECTORS if v["details"]]

MEMBER = "mbr_" + "a" * 26
ISSUED = "program:issued"
REDEEMED = "program:redeemed"


def by_name(vectors: list[dict]) -> dict:
    return {"argvalues": vectors, "ids": [v["name"] for v in vectors]}


# -- vectors -> audit.entry_format objects ----------------------------------


def entry_of(v: dict) -> JournalEntry:
    return JournalEntry(
        sequence=v["sequence"],
        time_us=v["time_us"],
        prev_hash=bytes.fromhex(v["prev_hash"]),
        kind=v["kind"],
        channel_id=v["channel_id"],
        reverses=v["reverses"],
        postings=tuple(
            Posting(p["from_account"], p["to_account"], p["points"]) for p in v["postings"]
        ),
        details=bytes.fromhex(v["details"]),
        request=bytes.fromhex(v.get("request", "")),
    )


def stored_of(v: dict) -> StoredEntry:
    return StoredEntry(entry_of(v), bytes.fromhex(v["hash"]))


def seal(entry: JournalEntry) -> StoredEntry:
    """Store an entry with its correct hash, as a forger with the code would."""
    return StoredEntry(entry, entry.compute_hash())


def replay(entries: list[StoredEntry]) -> dict[str, int]:
    """Balances that agree with ``entries`` (what a careful attacker writes)."""
    balances: defaultdict[str, int] = defaultdict(int)
    for stored in entries:
        for p in stored.entry.postings:
            balances[p.from_account] -= p.points
            balances[p.to_account] += p.points
    return dict(balances)


def head_of(entries: list[StoredEntry]) -> Head:
    last = entries[-1]
    return Head(last.entry.sequence, last.stored_hash)


def problems(result) -> list[tuple[int | None, str]]:
    return [(p.sequence, p.check) for p in result.problems]


# -- (a) the code produces the vectors' bytes --------------------------------


def test_vector_file_has_the_required_cases() -> None:
    names = {v["name"] for v in VECTORS}
    assert {"earn-with-purchase", "redeem-without-details", "reverse-partial"} <= names
    assert [v["sequence"] for v in CHAIN] == [1, 2, 3]
    assert CHAIN[0]["prev_hash"] == GENESIS_PREV_HASH.hex()
    for previous, current in itertools.pairwise(CHAIN):
        assert current["prev_hash"] == previous["hash"]


@pytest.mark.parametrize("v", **by_name(VECTORS))
def test_vector_encodes_to_expected_bytes_and_hash(v: dict) -> None:
    entry = entry_of(v)
    assert entry.encode().hex() == v["encoding"]
    assert entry.compute_hash().hex() == v["hash"]
    assert hashlib.sha256(bytes.fromhex(v["encoding"])).hexdigest() == v["hash"]


def test_generator_reproduces_the_frozen_file_byte_for_byte() -> None:
    spec = importlib.util.spec_from_file_location("make_journal_vectors", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == VECTORS_PATH.read_text(encoding="utf-8")


# -- (b) an independent implementation, from docs/journal-format.md alone ----


class SpecError(ValueError):
    pass


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise SpecError(f"truncated at offset {self.pos}: need {n} bytes")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self, fmt: str) -> int:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return value

    def str(self) -> str:
        return self.take(self.int(">H")).decode("utf-8")

    def bytes(self) -> bytes:
        return self.take(self.int(">I"))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise SpecError(f"{len(self.data) - self.pos} trailing bytes")


def spec_decode_entry(data: bytes) -> dict:
    r = Reader(data)
    if r.take(4) != b"LLJE":
        raise SpecError("bad magic")
    version = r.int(">B")
    if version not in (1, 2):
        raise SpecError("unknown version")
    fields: dict = {}
    fields["sequence"] = r.int(">Q")
    fields["time_us"] = r.int(">q")
    fields["prev_hash"] = r.take(32).hex()
    fields["kind"] = r.str()
    fields["channel_id"] = r.str()
    fields["reverses"] = r.int(">Q")
    postings = []
    for _ in range(r.int(">I")):
        from_account = r.str()
        to_account = r.str()
        postings.append(
            {"from_account": from_account, "to_account": to_account, "points": r.int(">q")}
        )
    fields["postings"] = postings
    fields["details"] = r.bytes().hex()
    if version == 2:  # section 2.1: the request digest, 16 raw bytes, last
        fields["request"] = r.take(16).hex()
    r.end()
    return fields


def spec_encode_entry(fields: dict) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack(">H", len(raw)) + raw

    request = bytes.fromhex(fields.get("request", ""))
    version = 2 if request else 1
    out = [b"LLJE", struct.pack(">BQq", version, fields["sequence"], fields["time_us"])]
    out.append(bytes.fromhex(fields["prev_hash"]))
    out += [s(fields["kind"]), s(fields["channel_id"]), struct.pack(">Q", fields["reverses"])]
    out.append(struct.pack(">I", len(fields["postings"])))
    for p in fields["postings"]:
        out += [s(p["from_account"]), s(p["to_account"]), struct.pack(">q", p["points"])]
    details = bytes.fromhex(fields["details"])
    out += [struct.pack(">I", len(details)), details, request]
    return b"".join(out)


def spec_decode_details(data: bytes) -> dict | None:
    if not data:
        return None
    r = Reader(data)
    fmt = r.int(">B")
    if fmt != 0x01:
        raise SpecError(f"unknown details format {fmt:#04x}")
    decoded = {"format": fmt}
    decoded["store_id"] = r.str()
    decoded["external_transaction_id"] = r.str()
    decoded["purchase_currency"] = r.str()
    decoded["purchase_minor_units"] = r.int(">q")
    r.end()
    return decoded


ENTRY_FIELDS = (
    "sequence",
    "time_us",
    "prev_hash",
    "kind",
    "channel_id",
    "reverses",
    "postings",
    "details",
)


@pytest.mark.parametrize("v", **by_name(VECTORS))
def test_spec_decoder_reads_back_every_vector(v: dict) -> None:
    encoding = bytes.fromhex(v["encoding"])
    fields = spec_decode_entry(encoding)
    assert fields == {k: v[k] for k in ENTRY_FIELDS}
    assert spec_encode_entry(fields) == encoding
    assert hashlib.sha256(spec_encode_entry(fields)).hexdigest() == v["hash"]
    assert spec_decode_details(bytes.fromhex(v["details"])) == v.get("details_decoded")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b + b"\x00",  # trailing byte
        lambda b: b[:-1],  # truncated details
        lambda b: b[:4] + b"\x03" + b[5:],  # unknown version
        lambda b: b"LLJF" + b[4:],  # bad magic
    ],
    ids=["trailing", "truncated", "version", "magic"],
)
def test_spec_decoder_rejects_malformed_encodings(mangle) -> None:
    with pytest.raises(SpecError):
        spec_decode_entry(mangle(bytes.fromhex(VECTORS[0]["encoding"])))


def test_spec_worked_example_matches_the_first_vector() -> None:
    """The annotated hex dump, the hex string and the hash in the spec are the vector's."""
    v = VECTORS[0]
    text = SPEC_PATH.read_text(encoding="utf-8")
    dump = re.search(r"Its 177-byte encoding.*?```text\n(.*?)```", text, re.S)
    assert dump is not None
    data = b""
    for line in dump.group(1).splitlines()[1:]:  # skip the column header
        assert int(line[:4], 16) == len(data), line
        data += bytes.fromhex(line[7:54])
    assert data.hex() == v["encoding"]
    one_string = re.search(r"as one hex string:\n\n```text\n(.*?)```", text, re.S)
    assert one_string is not None
    assert "".join(one_string.group(1).split()) == v["encoding"]
    assert v["hash"] in text


# -- (c) EntryDetails ---------------------------------------------------------


@pytest.mark.parametrize("v", **by_name(WITH_DETAILS))
def test_entry_details_decodes_vector_details(v: dict) -> None:
    raw = bytes.fromhex(v["details"])
    expected = v["details_decoded"]
    details = EntryDetails.decode(raw)
    assert details == EntryDetails(
        store_id=expected["store_id"],
        external_transaction_id=expected["external_transaction_id"],
        purchase_minor_units=expected["purchase_minor_units"],
        purchase_currency=expected["purchase_currency"],
    )
    assert details.encode() == raw


@pytest.mark.parametrize(
    "details",
    [
        EntryDetails(),
        EntryDetails("store-0001", "txn-0001", 12_345, "EUR"),
        EntryDetails(store_id="store-0002"),
        EntryDetails(external_transaction_id="txn-0002"),
        EntryDetails(purchase_minor_units=0, purchase_currency="JPY"),
    ],
)
def test_entry_details_round_trip(details: EntryDetails) -> None:
    raw = details.encode()
    assert EntryDetails.decode(raw) == details
    assert (raw == b"") == details.is_empty()


def test_sealed_details_format_0x02() -> None:
    from ledger.commands import open_details, seal_details
    from ledger.keys.errors import DecryptionError
    from ledger.keys.field_cipher import FieldCipher

    details = EntryDetails("store-0001", "txn-0001", 1999, "EUR")
    cipher = FieldCipher(member_id=MEMBER, keys={1: bytes(range(32))}, current=1)
    sealed = seal_details(cipher, details)
    assert sealed[0] == 0x02 and b"store-0001" not in sealed
    # 0x02 | the field-cipher blob of the 0x01 encoding, field "entry_details"
    assert cipher.decrypt_bytes("entry_details", sealed[1:]) == details.encode()
    assert open_details(cipher, sealed) == details
    assert seal_details(cipher, EntryDetails()) == b""
    with pytest.raises(ValueError, match="format byte 0x02 is not clear text"):
        EntryDetails.decode(sealed)
    other = FieldCipher(member_id=MEMBER + "x", keys={1: bytes(range(32))}, current=1)
    with pytest.raises(DecryptionError):  # moved to another member's entry
        open_details(other, sealed)


# -- (d) audit.chain: the clean chain and the attacks -------------------------

GENUINE = [stored_of(v) for v in CHAIN]
GENUINE_HEAD = head_of(GENUINE)
GENUINE_BALANCES = {ISSUED: -400, REDEEMED: 200, MEMBER: 200}


def assert_caught(
    entries: list[StoredEntry],
    expected: list[tuple[int | None, str]],
    *,
    head: Head | None,
    balances: dict[str, int] | None,
) -> None:
    result = check_chain(entries, head=head, balances=balances)
    assert problems(result) == expected, [str(p) for p in result.problems]
    with pytest.raises(ChainVerificationError) as raised:
        verify_chain(entries, head=head, balances=balances)
    assert problems(raised.value.result) == expected


def test_chain_vectors_verify() -> None:
    assert replay(GENUINE) == GENUINE_BALANCES
    result = verify_chain(GENUINE, head=GENUINE_HEAD, balances=GENUINE_BALANCES)
    assert result.entries == 3
    assert result.head == Head(3, bytes.fromhex(CHAIN[-1]["hash"]))
    assert result.first_bad_sequence is None


def test_journal_tampered_amount() -> None:
    first = GENUINE[0]
    inflated = dataclasses.replace(first.entry, postings=(Posting(ISSUED, MEMBER, 5_000),))
    entries = [StoredEntry(inflated, first.stored_hash), *GENUINE[1:]]
    assert_caught(entries, [(1, "hash")], head=GENUINE_HEAD, balances=replay(entries))


def test_journal_tampered_amount_rehashed() -> None:
    inflated = dataclasses.replace(GENUINE[0].entry, postings=(Posting(ISSUED, MEMBER, 5_000),))
    entries = [seal(inflated), *GENUINE[1:]]
    assert_caught(entries, [(2, "chain")], head=GENUINE_HEAD, balances=replay(entries))


def test_journal_deleted_entry() -> None:
    entries = [GENUINE[0], GENUINE[2]]
    assert_caught(
        entries,
        [(2, "sequence"), (3, "chain")],  # the gap is reported at the missing sequence
        head=GENUINE_HEAD,
        balances=replay(entries),
    )


def test_journal_reordered_entries() -> None:
    entries = [GENUINE[0], GENUINE[2], GENUINE[1]]
    assert_caught(
        entries,
        [(2, "sequence"), (3, "chain"), (2, "sequence"), (2, "chain"), (2, "time"), (None, "head")],
        head=GENUINE_HEAD,
        balances=replay(entries),
    )
    assert check_chain(entries).first_bad_sequence == 2


def test_journal_broken_link() -> None:
    # A forger rewrites entry 2 with a wrong prev_hash and rebuilds everything
    # after it (hashes, links, head): the broken link is still found.
    second = seal(dataclasses.replace(GENUINE[1].entry, prev_hash=b"\xff" * 32))
    third = seal(dataclasses.replace(GENUINE[2].entry, prev_hash=second.stored_hash))
    entries = [GENUINE[0], second, third]
    assert_caught(entries, [(2, "chain")], head=head_of(entries), balances=replay(entries))


def test_journal_broken_link_stored_hash_kept() -> None:
    second = GENUINE[1]
    relinked = dataclasses.replace(second.entry, prev_hash=b"\xff" * 32)
    entries = [GENUINE[0], StoredEntry(relinked, second.stored_hash), GENUINE[2]]
    assert_caught(
        entries, [(2, "chain"), (2, "hash")], head=GENUINE_HEAD, balances=GENUINE_BALANCES
    )


def test_journal_member_overdraft() -> None:
    # Correctly hashed and linked, head and balances consistent: only the
    # replay of the member's balance shows the redeem of 600 out of 500.
    too_much = dataclasses.replace(GENUINE[1].entry, postings=(Posting(MEMBER, REDEEMED, 600),))
    entries = [GENUINE[0], seal(too_much)]
    assert replay(entries)[MEMBER] == -100
    assert_caught(entries, [(2, "overdraft")], head=head_of(entries), balances=replay(entries))


def test_balances_not_zero_sum() -> None:
    minted = {**GENUINE_BALANCES, MEMBER: GENUINE_BALANCES[MEMBER] + 1_000}
    assert_caught(
        GENUINE, [(None, "zero-sum"), (None, "balance")], head=GENUINE_HEAD, balances=minted
    )
    result = check_chain(GENUINE, head=GENUINE_HEAD, balances=minted)
    assert "sum to 1000" in result.problems[0].message
    assert MEMBER in result.problems[1].message


def test_head_truncated() -> None:
    # The last entry is gone but the recorded head still names it.
    entries = GENUINE[:2]
    assert_caught(entries, [(None, "head")], head=GENUINE_HEAD, balances=replay(entries))
    assert check_chain(entries, head=GENUINE_HEAD).first_bad_sequence is None


# -- the shape of each kind, rehashed so only the rule itself can catch it ---


def forge_next(
    entries: list[StoredEntry], kind: str, posting: Posting, **kw: int
) -> list[StoredEntry]:
    """Append a correctly hashed and linked entry (what a forger with the code writes)."""
    last = entries[-1].entry
    entry = JournalEntry(
        sequence=last.sequence + 1,
        time_us=kw.get("time_us", last.time_us + 1),
        prev_hash=entries[-1].stored_hash,
        kind=kind,
        channel_id="pos-test",
        reverses=kw.get("reverses", 0),
        postings=(posting,),
    )
    return [*entries, seal(entry)]


FORGED_KINDS = {
    # name: (kind, posting, extra fields, expected check)
    "journal_earn_into_program_account": ("earn", Posting(ISSUED, REDEEMED, 5), {}, "kind"),
    "journal_redeem_wrong_direction": ("redeem", Posting(REDEEMED, MEMBER, 5), {}, "kind"),
    "journal_unknown_kind": ("mint", Posting(ISSUED, MEMBER, 5), {}, "kind"),
    "journal_reversal_of_a_reversal": (
        "reverse",
        Posting(ISSUED, MEMBER, 5),
        {"reverses": 3},
        "reversal",
    ),
    "journal_reversal_of_future_entry": (
        "reverse",
        Posting(MEMBER, ISSUED, 5),
        {"reverses": 9},
        "reversal",
    ),
    "journal_reversal_not_mirrored": (
        "reverse",
        Posting(ISSUED, MEMBER, 5),
        {"reverses": 1},
        "reversal",
    ),
    # seq 2 redeemed 200: giving back 201 is more than it moved
    "journal_reversal_exceeds_original": (
        "reverse",
        Posting(REDEEMED, MEMBER, 201),
        {"reverses": 2},
        "reversal",
    ),
    "journal_time_backwards": ("earn", Posting(ISSUED, MEMBER, 5), {"time_us": 1}, "time"),
}


@pytest.mark.parametrize("name", sorted(FORGED_KINDS))
def test_forged_entry_shapes_are_caught(name: str) -> None:
    kind, posting, extra, check = FORGED_KINDS[name]
    entries = forge_next(GENUINE, kind, posting, **extra)
    assert_caught(entries, [(4, check)], head=head_of(entries), balances=replay(entries))


def test_partial_reversals_up_to_the_original_amount_verify() -> None:
    entries = forge_next(GENUINE, "reverse", Posting(REDEEMED, MEMBER, 150), reverses=2)
    entries = forge_next(entries, "reverse", Posting(REDEEMED, MEMBER, 50), reverses=2)
    assert check_chain(entries, head=head_of(entries), balances=replay(entries))
    too_much = forge_next(entries, "reverse", Posting(REDEEMED, MEMBER, 1), reverses=2)
    assert problems(check_chain(too_much)) == [(6, "reversal")]


# -- format v2: the request digest (docs/journal-format.md 2.1) ---------------

V2_PATH = ROOT / "tests" / "vectors" / "journal-entry-v2.json"
V2: list[dict] = json.loads(V2_PATH.read_text(encoding="utf-8"))
CHAIN_2 = [v for v in V2 if v["chain"] == "chain-2"]


def _rendered_by(generator: str) -> str:
    """What a frozen vector file's generator renders now."""
    path = ROOT / "tests" / "vectors" / generator
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render())


def test_v2_generator_reproduces_the_frozen_file() -> None:
    assert _rendered_by("make_journal_v2_vectors.py") == V2_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("v", **by_name(V2))
def test_v2_vectors_encode_decode_and_match_the_spec(v: dict) -> None:
    from audit.entry_format import decode_entry

    encoding = bytes.fromhex(v["encoding"])
    entry = entry_of(v)
    assert entry.encode() == encoding and entry.compute_hash().hex() == v["hash"]
    assert encoding[4] == v["version"] == (2 if v["request"] else 1)
    assert decode_entry(encoding) == entry
    fields = spec_decode_entry(encoding)  # the independent decoder, from the docs
    want = {k: v[k] for k in ENTRY_FIELDS}
    if v["request"]:
        want["request"] = v["request"]
    assert fields == want and spec_encode_entry(fields) == encoding


def test_v2_entries_refuse_a_request_of_the_wrong_size() -> None:
    from audit.entry_format import EncodingError, decode_entry

    with pytest.raises(EncodingError, match="request"):
        dataclasses.replace(entry_of(V2[0]), request=b"x" * 15).encode()
    with pytest.raises(EncodingError):  # a v2 entry cut short of its request
        decode_entry(bytes.fromhex(V2[0]["encoding"])[:-1])


def test_v2_chain_verifies_and_a_replayed_request_is_caught() -> None:
    chain = [stored_of(v) for v in CHAIN_2]
    result = verify_chain(chain, head=head_of(chain), balances=replay(chain))
    assert result.entries == 3
    replayed = stored_of(next(v for v in V2 if v["name"] == "replayed-request"))
    entries = [*chain, replayed]
    assert_caught(entries, [(4, "request")], head=head_of(entries), balances=replay(entries))


# -- profile entries: no postings, details 0x03 (docs/journal-format.md 6.5) ------

PROFILE_PATH = ROOT / "tests" / "vectors" / "journal-profile.json"
PROFILE_V: list[dict] = json.loads(PROFILE_PATH.read_text(encoding="utf-8"))
CHAIN_P = [v for v in PROFILE_V if v["chain"] == "chain-p"]


def spec_decode_profile(details: bytes) -> dict:
    """Details 0x03 read from the table in 6.5 alone (not audit/profile_format)."""
    assert details[0] == 0x03
    pos = 1

    def text() -> str:
        nonlocal pos
        n = int.from_bytes(details[pos : pos + 2], "big")
        pos += 2 + n
        return details[pos - n : pos].decode("utf-8")

    account = text()
    count = int.from_bytes(details[pos : pos + 2], "big")
    pos += 2
    fields = []
    for _ in range(count):
        name = text()
        fields.append({"field": name, "digest": details[pos : pos + 32].hex()})
        pos += 32
    assert pos == len(details)
    return {"format": 3, "account": account, "fields": fields}


def test_profile_generator_reproduces_the_frozen_file() -> None:
    expected = PROFILE_PATH.read_text(encoding="utf-8")
    assert _rendered_by("make_journal_profile_vectors.py") == expected


@pytest.mark.parametrize("v", **by_name(PROFILE_V))
def test_profile_vectors_encode_and_match_the_spec(v: dict) -> None:
    from audit.entry_format import decode_entry
    from audit.profile_format import ProfileCommitment, ProfileFormatError

    encoding = bytes.fromhex(v["encoding"])
    entry = entry_of(v)
    assert entry.encode() == encoding and entry.compute_hash().hex() == v["hash"]
    assert decode_entry(encoding) == entry
    fields = spec_decode_entry(encoding)  # the independent decoder, from the docs
    assert spec_encode_entry(fields) == encoding
    if v["kind"] != "profile":
        return
    details = bytes.fromhex(v["details"])
    assert spec_decode_profile(details) == v["details_decoded"]
    names = [f["field"] for f in v["details_decoded"]["fields"]]
    if names != sorted(names):
        with pytest.raises(ProfileFormatError, match="ascending"):
            ProfileCommitment.decode(details)
        return
    decoded = ProfileCommitment.decode(details)
    assert decoded.encode() == details  # canonical: one encoding per value
    assert decoded.account == v["details_decoded"]["account"]
    assert [(n, d.hex()) for n, d in decoded.fields] == [
        (f["field"], f["digest"]) for f in v["details_decoded"]["fields"]
    ]


def test_profile_chain_verifies_and_bad_profile_entries_are_caught() -> None:
    chain = [stored_of(v) for v in CHAIN_P]
    result = verify_chain(chain, head=head_of(chain), balances=replay(chain))
    assert result.entries == 4
    named = {v["name"]: stored_of(v) for v in PROFILE_V}
    after = [*chain, named["profile-after-erase"]]
    assert_caught(after, [(5, "closed")], head=head_of(after), balances=replay(after))
    for name in ("profile-with-posting", "profile-fields-out-of-order"):
        entries = [*chain[:3], named[name]]
        found = problems(check_chain(entries, head=head_of(entries), balances=replay(entries)))
        assert (4, "kind") in found, name


@pytest.mark.parametrize(
    "details",
    [
        b"",  # no details
        b"\x01" + bytes(20),  # clear order details in a profile entry
        b"\x03\x00\x0eprogram:issued\x00\x00",  # a program account, not a member
        bytes.fromhex("03001e") + b"mbr_" + b"a" * 26 + bytes.fromhex("0001000141") + bytes(32),
        bytes.fromhex("03001e") + b"mbr_" + b"a" * 26 + bytes.fromhex("0000ff"),  # trailing
    ],
    ids=["empty", "format-01", "no-member", "bad-name", "trailing"],
)
def test_malformed_profile_details_are_a_kind_problem(details: bytes) -> None:
    chain = [stored_of(v) for v in CHAIN_P[:3]]
    bad = seal(
        JournalEntry(
            4, chain[-1].entry.time_us, chain[-1].stored_hash, "profile", "members", 0, (), details
        )
    )
    entries = [*chain, bad]
    assert problems(check_chain(entries, head=head_of(entries), balances=replay(entries))) == [
        (4, "kind")
    ]


# -- shortfall entries: outage redemptions beyond the balance (5.3, docs/outage.md) ---

SHORTFALL_PATH = ROOT / "tests" / "vectors" / "journal-shortfall.json"
SHORTFALL_V: list[dict] = json.loads(SHORTFALL_PATH.read_text(encoding="utf-8"))
CHAIN_S = [v for v in SHORTFALL_V if v["chain"] == "chain-s"]


def test_shortfall_generator_reproduces_the_frozen_file() -> None:
    expected = SHORTFALL_PATH.read_text(encoding="utf-8")
    assert _rendered_by("make_journal_shortfall_vectors.py") == expected


@pytest.mark.parametrize("v", **by_name(SHORTFALL_V))
def test_shortfall_vectors_encode_as_the_spec_says(v: dict) -> None:
    from audit.entry_format import decode_entry

    encoding = bytes.fromhex(v["encoding"])
    entry = entry_of(v)
    assert entry.encode() == encoding and entry.compute_hash().hex() == v["hash"]
    assert decode_entry(encoding) == entry
    assert spec_encode_entry(spec_decode_entry(encoding)) == encoding


def test_shortfall_chain_verifies_and_bad_shortfall_entries_are_caught() -> None:
    chain = [stored_of(v) for v in CHAIN_S]
    result = verify_chain(chain, head=head_of(chain), balances=replay(chain))
    assert result.entries == 4
    named = {v["name"]: stored_of(v) for v in SHORTFALL_V}
    over = [*chain[:3], named["settlement-beyond-owed"]]
    found = problems(check_chain(over, head=head_of(over), balances=replay(over)))
    assert found == [(4, "kind")]
    for name in ("shortfall-two-stores", "shortfall-no-store", "redeem-from-store"):
        entries = [*chain[:2], named[name]]
        found = problems(check_chain(entries, head=head_of(entries), balances=replay(entries)))
        assert set(found) == {(3, "kind")}, name  # (no-store breaks two rules)


# -- voucher entries: a reward's voucher and how it ends (5.3, program-rules 11) ---

VOUCHER_PATH = ROOT / "tests" / "vectors" / "journal-voucher.json"
VOUCHER_V: list[dict] = json.loads(VOUCHER_PATH.read_text(encoding="utf-8"))
CHAIN_V = [v for v in VOUCHER_V if v["chain"] == "chain-v"]


def test_voucher_generator_reproduces_the_frozen_file() -> None:
    expected = VOUCHER_PATH.read_text(encoding="utf-8")
    assert _rendered_by("make_journal_voucher_vectors.py") == expected


@pytest.mark.parametrize("v", **by_name(VOUCHER_V))
def test_voucher_vectors_encode_as_the_spec_says(v: dict) -> None:
    from audit.entry_format import decode_entry

    encoding = bytes.fromhex(v["encoding"])
    entry = entry_of(v)
    assert entry.encode() == encoding and entry.compute_hash().hex() == v["hash"]
    assert decode_entry(encoding) == entry
    assert spec_encode_entry(spec_decode_entry(encoding)) == encoding


def test_voucher_chain_verifies_and_bad_voucher_entries_are_caught() -> None:
    chain = [stored_of(v) for v in CHAIN_V]
    result = verify_chain(chain, head=head_of(chain), balances=replay(chain))
    assert result.entries == 8
    named = {v["name"]: stored_of(v) for v in VOUCHER_V}
    cases = {
        "voucher-redeem-twice": (4, (5, "reversal")),
        "voucher-redeem-part": (3, (4, "reversal")),
        "voucher-cancel-elsewhere": (3, (4, "reversal")),
        "voucher-issue-two-rewards": (2, (3, "kind")),
    }
    for name, (prefix, problem) in cases.items():
        entries = [*chain[:prefix], named[name]]
        found = problems(check_chain(entries, head=head_of(entries), balances=replay(entries)))
        assert found == [problem], name
