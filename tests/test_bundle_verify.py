"""The offline bundle verifier against the attacks it exists to catch.

Bundles are built here from first principles: journal entries and access
records correctly hashed and chained, Merkle roots from a Frontier,
checkpoints signed with fresh Ed25519 keys. Each attack test then breaks one
thing and asserts the verifier names the right log, sequence and check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from audit.access_format import AccessRecord
from audit.bundle import (
    ACCESS,
    JOURNAL,
    BadLine,
    BundleWriter,
    CheckpointLine,
    EntryLine,
    Header,
    LogInfo,
    read_bundle,
)
from audit.bundle_verify import (
    BundleVerificationError,
    state_file,
    verify_bundle,
    verify_bundle_or_raise,
)
from audit.entry_format import (
    GENESIS_PREV_HASH,
    KIND_EARN,
    KIND_REDEEM,
    PROGRAM_ISSUED,
    PROGRAM_REDEEMED,
    JournalEntry,
    Posting,
)
from audit.merkle import Frontier, leaf_hash, mth
from audit.note import Checkpoint, Signer, sign_checkpoint
from audit.verify_cli import run_verify

J_ORIGIN = "ledger.example/journal"
A_ORIGIN = "ledger.example/access"
J_SIGNER = Signer.generate(J_ORIGIN)
A_SIGNER = Signer.generate(A_ORIGIN)
KEYS = [J_SIGNER.verifier_key(), A_SIGNER.verifier_key()]


def member(i: int) -> str:
    """``mbr_`` + 26 characters of [a-z2-7], as the ledger makes account ids."""
    digest = hashlib.sha256(f"member {i}".encode()).digest()
    return "mbr_" + base64.b32encode(digest).decode("ascii").lower()[:26]


# -- building logs ---------------------------------------------------------------------


@dataclass
class Log:
    """A log's entries as (canonical bytes, stored hash), with what it takes to sign them."""

    name: str
    origin: str
    signer: Signer
    items: list[tuple[bytes, bytes]] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)

    def frontier(self, size: int) -> Frontier:
        f = Frontier.empty()
        for data, _ in self.items[:size]:
            f.append(leaf_hash(data))
        return f

    def root(self, size: int) -> bytes:
        return self.frontier(size).root()

    def checkpoint(self, size: int, signer: Signer | None = None) -> str:
        cp = Checkpoint(self.origin, size, self.root(size))
        return sign_checkpoint(cp, signer or self.signer)


def journal_entries(n: int, seed: int = 0) -> Iterator[tuple[JournalEntry, dict[str, int]]]:
    """Earn to a member, then redeem part of it, alternately; balances as of each entry."""
    prev, balances = GENESIS_PREV_HASH, {PROGRAM_ISSUED: 0, PROGRAM_REDEEMED: 0}
    for seq in range(1, n + 1):
        account = member(seed * 1_000_000 + (seq + 1) // 2)
        if seq % 2:
            posting = Posting(PROGRAM_ISSUED, account, 10 + seed)
            kind = KIND_EARN
        else:
            posting = Posting(account, PROGRAM_REDEEMED, 3)
            kind = KIND_REDEEM
        balances[posting.from_account] = balances.get(posting.from_account, 0) - posting.points
        balances[posting.to_account] = balances.get(posting.to_account, 0) + posting.points
        entry = JournalEntry(seq, 1_000_000 + seq, prev, kind, "pos", 0, (posting,))
        prev = entry.compute_hash()
        yield entry, balances


def journal(n: int, seed: int = 0) -> Log:
    log = Log(JOURNAL, J_ORIGIN, J_SIGNER)
    for entry, balances in journal_entries(n, seed):
        log.items.append((entry.encode(), entry.compute_hash()))
        log.balances = dict(balances)
    return log


def access_log(n: int) -> Log:
    log = Log(ACCESS, A_ORIGIN, A_SIGNER)
    prev = GENESIS_PREV_HASH
    for seq in range(1, n + 1):
        record = AccessRecord(
            seq,
            2_000_000 + seq,
            prev,
            f"req-{seq}",
            "svc:pos-1",
            "pos",
            "/loyalty.ledger.v1.Ledger/GetBalance",
            "deny" if seq == 3 else "allow",
            "role lacks permission" if seq == 3 else "",
            "service",
            member(seq),
            "balance",
        )
        prev = record.compute_hash()
        log.items.append((record.encode(), prev))
    return log


# -- building bundles ------------------------------------------------------------------


@dataclass
class Section:
    log: Log
    checkpoints: list[str] = field(default_factory=list)
    start: int = 0  # export entries after this size (a start line when > 0)
    end: int | None = None  # the last exported sequence (all by default)
    balances: bool = False


def bundle_text(*sections: Section, listed: dict[str, list[str]] | None = None) -> str:
    out = io.StringIO()
    writer = BundleWriter(out)
    listed = listed or {}
    infos = {
        s.log.name: LogInfo(
            s.log.origin, tuple(listed.get(s.log.name, [s.log.signer.verifier_key()]))
        )
        for s in sections
    }
    writer.header(1_700_000_000_000_000, infos)
    for s in sections:
        log, end = s.log, len(s.log.items) if s.end is None else s.end
        for note in s.checkpoints:
            writer.checkpoint(log.name, note)
        if s.start:
            writer.start(log.name, s.start, log.items[s.start - 1][1], log.frontier(s.start))
        for seq in range(s.start + 1, end + 1):
            data, stored = log.items[seq - 1]
            writer.entry(log.name, seq, data, stored)
        if s.balances:
            writer.balances(log.name, end, log.balances)
    return out.getvalue()


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def write(path: Path, content: str | list[dict[str, Any]]) -> Path:
    if isinstance(content, list):
        content = "".join(json.dumps(obj) + "\n" for obj in content)
    path.write_text(content, encoding="utf-8")
    return path


def entry_index(lines: list[dict[str, Any]], log: str, seq: int) -> int:
    return next(
        i
        for i, obj in enumerate(lines)
        if obj.get("type") == "entry" and obj["log"] == log and obj["seq"] == seq
    )


def found(result: Any) -> set[tuple[str, int | None, str]]:
    return {(p.log, p.sequence, p.check) for p in result.problems}


def clean_bundle(tmp_path: Path, name: str = "bundle.jsonl", **kw: Any) -> Path:
    j, a = journal(12), access_log(7)
    text = bundle_text(
        Section(j, [j.checkpoint(4), j.checkpoint(8), j.checkpoint(12)], balances=True),
        Section(a, [a.checkpoint(7)]),
    )
    return write(tmp_path / name, text)


# -- a clean bundle and ranges ---------------------------------------------------------


def test_clean_bundle_verifies(tmp_path: Path) -> None:
    result = verify_bundle(clean_bundle(tmp_path), KEYS)
    assert result, [str(p) for p in result.problems]
    j = result.logs[JOURNAL]
    assert (j.entries, j.size, j.checkpoints_verified) == (12, 12, 3)
    assert j.root == mth([data for data, _ in journal(12).items])
    assert j.latest_checkpoint is not None and j.latest_checkpoint.size == 12
    a = result.logs[ACCESS]
    assert (a.entries, a.size, a.checkpoints_verified) == (7, 7, 1)


def test_reader_streams_typed_lines(tmp_path: Path) -> None:
    lines = list(read_bundle(clean_bundle(tmp_path)))
    assert isinstance(lines[0], Header)
    assert lines[0].logs[JOURNAL].origin == J_ORIGIN
    assert isinstance(lines[1], CheckpointLine)
    entries = [line for line in lines if isinstance(line, EntryLine)]
    assert [e.seq for e in entries if e.log == JOURNAL] == list(range(1, 13))
    assert entries[0].data == journal(1).items[0][0]


def test_malformed_lines_are_problems_not_exceptions(tmp_path: Path) -> None:
    text = clean_bundle(tmp_path).read_text()
    broken = text.replace('"seq":5,', '"seq":5,"seq":5,', 1) + "not json\n"
    parsed = list(read_bundle(io.StringIO(broken)))
    bad = [line for line in parsed if isinstance(line, BadLine)]
    assert [(b.log, b.seq) for b in bad] == [(JOURNAL, 5), (None, None)]
    result = verify_bundle(write(tmp_path / "broken.jsonl", broken), KEYS)
    assert (JOURNAL, 5, "parse") in found(result)
    assert not result


def test_over_long_line_is_skipped_not_held(tmp_path: Path) -> None:
    text = clean_bundle(tmp_path).read_bytes()
    first, rest = text.split(b"\n", 1)
    huge = b'{"type":"entry","log":"journal","data":"' + b"A" * 5000 + b'"}\n'
    lines = list(read_bundle(io.BytesIO(first + b"\n" + huge + rest), max_line=4096))
    assert isinstance(lines[1], BadLine) and "longer than 4096" in lines[1].message
    assert isinstance(lines[2], CheckpointLine)


def test_writer_refuses_lines_out_of_order() -> None:
    writer = BundleWriter(io.BytesIO())
    writer.header(0, {JOURNAL: LogInfo(J_ORIGIN)})
    writer.entry(JOURNAL, 1, b"x", bytes(32))
    with pytest.raises(ValueError, match="expected sequence 2"):
        writer.entry(JOURNAL, 3, b"x", bytes(32))
    with pytest.raises(ValueError, match="bundle order"):
        writer.checkpoint(JOURNAL, "late")


def test_range_bundle_with_a_start_line_verifies(tmp_path: Path) -> None:
    j, a = journal(20), access_log(9)
    text = bundle_text(
        Section(j, [j.checkpoint(5), j.checkpoint(13), j.checkpoint(20)], start=5),
        Section(a, [a.checkpoint(9)], start=4),
    )
    result = verify_bundle(write(tmp_path / "range.jsonl", text), KEYS)
    assert result, [str(p) for p in result.problems]
    summary = result.logs[JOURNAL]
    assert (summary.first_sequence, summary.entries, summary.size) == (6, 15, 20)
    assert summary.checkpoints_verified == 3
    assert summary.root == j.root(20)


def test_range_bundle_extends_the_saved_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    j = journal(20)
    first = bundle_text(Section(j, [j.checkpoint(8)], end=8))
    assert verify_bundle(write(tmp_path / "first.jsonl", first), [KEYS[0]], state)
    later = bundle_text(Section(j, [j.checkpoint(20)], start=6))
    result = verify_bundle(write(tmp_path / "later.jsonl", later), [KEYS[0]], state)
    assert result, [str(p) for p in result.problems]
    assert result.logs[JOURNAL].state_saved
    assert "\n20\n" in state_file(state, J_ORIGIN).read_text()


def test_range_bundle_tampered_frontier(tmp_path: Path) -> None:
    j = journal(10)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(4), j.checkpoint(10)], start=4)))
    start = next(obj for obj in lines if obj.get("type") == "start")
    start["frontier"][0][2] = "00" * 32
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    assert {(JOURNAL, 4, "merkle"), (JOURNAL, 10, "merkle")} <= found(result)


# -- attacks on entries ----------------------------------------------------------------


def test_rewritten_entry(tmp_path: Path) -> None:
    j = journal(12)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(12)])))
    i = entry_index(lines, JOURNAL, 7)
    data = bytearray(base64.b64decode(lines[i]["data"]))
    data[-5] ^= 0x01  # the posting's points: 10 -> 11
    lines[i]["data"] = base64.b64encode(bytes(data)).decode()
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    assert (JOURNAL, 7, "hash") in found(result)
    assert (JOURNAL, 12, "merkle") in found(result)


def test_rewritten_entry_with_recomputed_hashes(tmp_path: Path) -> None:
    """The whole chain recomputed after the rewrite: only the signed root catches it."""
    honest, forged = journal(12), journal(12)
    entries = [e for e, _ in journal_entries(12)]
    prev = entries[5].compute_hash()
    for k in range(6, 12):
        e = entries[k]
        postings = e.postings
        if k == 6:  # sequence 7 earns 11 points instead of 10
            postings = (Posting(e.postings[0].from_account, e.postings[0].to_account, 11),)
        e = JournalEntry(e.sequence, e.time_us, prev, e.kind, e.channel_id, 0, postings)
        prev = e.compute_hash()
        forged.items[k] = (e.encode(), prev)
    text = bundle_text(Section(forged, [honest.checkpoint(6), honest.checkpoint(12)]))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert found(result) == {
        (JOURNAL, 12, "merkle"),
        (JOURNAL, 7, "checkpoint"),  # 7..12 vouched for by no good checkpoint
    }
    assert result.logs[JOURNAL].checkpoints_verified == 1


def test_deleted_entry(tmp_path: Path) -> None:
    j = journal(12)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(12)])))
    del lines[entry_index(lines, JOURNAL, 5)]
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    assert (JOURNAL, 5, "sequence") in found(result)
    assert (JOURNAL, 6, "chain") in found(result)
    assert any("entry missing" in p.message for p in result.problems if p.sequence == 5)


def test_reordered_entries(tmp_path: Path) -> None:
    j = journal(12)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(12)])))
    i = entry_index(lines, JOURNAL, 8)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    problems = found(result)
    assert {(JOURNAL, 8, "sequence"), (JOURNAL, 9, "chain"), (JOURNAL, 8, "chain")} <= problems
    assert (JOURNAL, 12, "merkle") in problems


def test_access_record_rewritten(tmp_path: Path) -> None:
    j, a = journal(4), access_log(6)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(4)]), Section(a, [a.checkpoint(6)])))
    i = entry_index(lines, ACCESS, 3)
    data = base64.b64decode(lines[i]["data"]).replace(b"deny", b"allw")
    lines[i]["data"] = base64.b64encode(data).decode()
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    assert (ACCESS, 3, "hash") in found(result)
    assert (ACCESS, 6, "merkle") in found(result)
    assert not any(p.log == JOURNAL for p in result.problems)


def test_access_record_deleted_and_time_reversed(tmp_path: Path) -> None:
    a = access_log(6)
    lines = lines_of(bundle_text(Section(a, [a.checkpoint(6)])))
    del lines[entry_index(lines, ACCESS, 4)]
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    assert {(ACCESS, 4, "sequence"), (ACCESS, 5, "chain")} <= found(result)


def test_balances_that_do_not_match_the_journal(tmp_path: Path) -> None:
    j = journal(6)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(6)], balances=True)))
    balances = lines[-1]["balances"]
    balances[member(1)] += 5
    result = verify_bundle(write(tmp_path / "b.jsonl", lines), KEYS)
    assert {(JOURNAL, None, "balance"), (JOURNAL, None, "zero-sum")} <= found(result)


# -- attacks on checkpoints ------------------------------------------------------------


def test_forked_log(tmp_path: Path) -> None:
    j, other = journal(10), journal(10, seed=1)
    text = bundle_text(Section(j, [j.checkpoint(5), other.checkpoint(5), j.checkpoint(10)]))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert (JOURNAL, 5, "fork") in found(result)


def test_checkpoint_signed_by_unknown_key(tmp_path: Path) -> None:
    j = journal(10)
    impostor = Signer.generate(J_ORIGIN)  # the same name, another key
    text = bundle_text(Section(j, [j.checkpoint(5, impostor), j.checkpoint(10)]))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert found(result) == {(JOURNAL, 5, "checkpoint")}
    assert "not signed by a trusted key" in result.problems[0].message


def test_tampered_checkpoint_root(tmp_path: Path) -> None:
    j = journal(10)
    note = j.checkpoint(10)
    root_line = note.split("\n")[2]
    forged_root = base64.b64encode(j.root(9)).decode()
    text = bundle_text(Section(j, [j.checkpoint(5), note.replace(root_line, forged_root)]))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert (JOURNAL, 10, "checkpoint") in found(result)
    assert result.logs[JOURNAL].checkpoints_verified == 1


def test_checkpoint_beyond_the_exported_entries(tmp_path: Path) -> None:
    j = journal(10)
    text = bundle_text(Section(j, [j.checkpoint(6), j.checkpoint(10)], end=8))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert found(result) == {(JOURNAL, 10, "checkpoint"), (JOURNAL, 7, "checkpoint")}


def test_checkpoint_of_another_log(tmp_path: Path) -> None:
    j, a = journal(4), access_log(4)
    text = bundle_text(Section(j, [a.checkpoint(4), j.checkpoint(4)]))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert found(result) == {(JOURNAL, 4, "checkpoint")}
    assert "origin" in result.problems[0].message


def test_bundle_key_not_trusted(tmp_path: Path) -> None:
    j = journal(6)
    impostor = Signer.generate(J_ORIGIN)
    text = bundle_text(
        Section(j, [j.checkpoint(6, impostor)]),
        listed={JOURNAL: [impostor.verifier_key()]},
    )
    path = write(tmp_path / "b.jsonl", text)
    # the bundle's own key would verify it: it is not used
    result = verify_bundle(path, [J_SIGNER.verifier_key()])
    assert {(JOURNAL, 6, "checkpoint"), (JOURNAL, None, "keys")} <= found(result)
    assert result.logs[JOURNAL].untrusted_listed_keys == (impostor.verifier_key(),)
    assert verify_bundle(path, [impostor.verifier_key()])


def test_unsigned_log_is_not_vouched_for(tmp_path: Path) -> None:
    j = journal(6)
    result = verify_bundle(write(tmp_path / "b.jsonl", bundle_text(Section(j))), KEYS)
    assert found(result) == {(JOURNAL, None, "checkpoint")}


# -- attacks against the auditor's state -----------------------------------------------


def test_truncated_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    j = journal(10)
    full = bundle_text(Section(j, [j.checkpoint(10)]))
    assert verify_bundle(write(tmp_path / "full.jsonl", full), KEYS, state)
    short = bundle_text(Section(j, [j.checkpoint(5)], end=7))
    result = verify_bundle(write(tmp_path / "short.jsonl", short), KEYS, state)
    assert (JOURNAL, 8, "truncated") in found(result)
    message = next(p.message for p in result.problems if p.check == "truncated")
    assert "previously verified 10" in message
    assert "\n10\n" in state_file(state, J_ORIGIN).read_text()


def test_replaced_database_consistent_but_different_history(tmp_path: Path) -> None:
    state = tmp_path / "state"
    original = journal(8)
    first = bundle_text(Section(original, [original.checkpoint(8)], balances=True))
    assert verify_bundle(write(tmp_path / "first.jsonl", first), KEYS, state)
    saved = state_file(state, J_ORIGIN).read_text()
    # a new database, its own consistent history, checkpoints signed by the real key
    replaced = journal(12, seed=1)
    second = bundle_text(
        Section(replaced, [replaced.checkpoint(8), replaced.checkpoint(12)], balances=True)
    )
    path = write(tmp_path / "second.jsonl", second)
    assert verify_bundle(path, KEYS), "internally consistent on its own"
    result = verify_bundle(path, KEYS, state)
    assert found(result) == {(JOURNAL, 8, "fork")}
    message = result.problems[0].message
    assert f"previously verified {original.root(8).hex()}" in message
    assert f"has root {replaced.root(8).hex()}" in message
    assert state_file(state, J_ORIGIN).read_text() == saved


def test_stale_checkpoint_replay(tmp_path: Path) -> None:
    state = tmp_path / "state"
    j = journal(10)
    old = bundle_text(Section(j, [j.checkpoint(6)]))
    new = bundle_text(Section(j, [j.checkpoint(6), j.checkpoint(10)]))
    assert verify_bundle(write(tmp_path / "new.jsonl", new), KEYS, state)
    result = verify_bundle(write(tmp_path / "old.jsonl", old), KEYS, state)
    assert found(result) == {(JOURNAL, 10, "stale checkpoint"), (JOURNAL, 7, "checkpoint")}
    assert "\n10\n" in state_file(state, J_ORIGIN).read_text()


def test_state_is_written_only_on_success(tmp_path: Path) -> None:
    state = tmp_path / "state"
    j = journal(12)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(6), j.checkpoint(12)])))
    del lines[entry_index(lines, JOURNAL, 9)]
    result = verify_bundle(write(tmp_path / "bad.jsonl", lines), KEYS, state)
    assert not result and not result.logs[JOURNAL].state_saved
    assert not state_file(state, J_ORIGIN).exists()

    result = verify_bundle(clean_bundle(tmp_path), KEYS, state)
    assert result and result.logs[JOURNAL].state_saved and result.logs[ACCESS].state_saved
    assert state_file(state, J_ORIGIN).read_text() == j.checkpoint(12)
    assert state_file(state, A_ORIGIN).read_text() == access_log(7).checkpoint(7)
    assert sorted(p.name for p in state.iterdir()) == [
        "ledger.example_access.checkpoint",
        "ledger.example_journal.checkpoint",
    ]


def test_tampered_state_file_is_a_problem(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    j = journal(4)
    state_file(state, J_ORIGIN).write_text(j.checkpoint(4, Signer.generate(J_ORIGIN)))
    result = verify_bundle(clean_bundle(tmp_path), KEYS, state)
    assert (JOURNAL, None, "state") in found(result)
    assert not result.logs[JOURNAL].state_saved


# -- the two forms and the report ------------------------------------------------------


def test_raising_form(tmp_path: Path) -> None:
    assert verify_bundle_or_raise(clean_bundle(tmp_path), KEYS)
    j = journal(6)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(6)])))
    del lines[entry_index(lines, JOURNAL, 2)]
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle_or_raise(write(tmp_path / "b.jsonl", lines), KEYS)
    assert (JOURNAL, 2, "sequence") in found(info.value.result)
    assert "log journal, sequence 2: sequence" in str(info.value)


def test_bad_trusted_key_is_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trusted key 1"):
        verify_bundle(clean_bundle(tmp_path), ["not-a-key"])


def run(path: Path, keys: list[str], state: Path | None = None) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_verify(path, keys, state, out)
    return code, out.getvalue().splitlines()


def test_report_clean(tmp_path: Path) -> None:
    code, lines = run(clean_bundle(tmp_path), KEYS)
    assert code == 0
    assert lines[-1] == "OK"
    assert "log journal (origin ledger.example/journal)" in lines
    assert "  checkpoints verified: 3" in lines
    assert "  latest checkpoint: size 12" in lines
    assert f"  root: {journal(12).root(12).hex()}" in lines


def test_report_with_problems(tmp_path: Path) -> None:
    j = journal(6)
    lines = lines_of(bundle_text(Section(j, [j.checkpoint(6)])))
    lines[entry_index(lines, JOURNAL, 4)]["hash"] = "ab" * 32
    code, report = run(write(tmp_path / "b.jsonl", lines), KEYS)
    assert code == 1
    assert any(line.startswith("log journal, sequence 4: hash: ") for line in report)
    assert report[-1].startswith("FAILED: ") and report[-1].endswith(" problem(s)")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p / "missing.jsonl",
        lambda p: write(p / "empty.jsonl", ""),
        lambda p: write(p / "text.jsonl", "hello\n"),
    ],
)
def test_report_unreadable(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    code, report = run(make(tmp_path), KEYS)
    assert code == 2
    assert report[-1] == "FAILED: 1 problem(s)"


# -- size ------------------------------------------------------------------------------


def test_large_journal_bundle_verifies(tmp_path: Path) -> None:
    """20,000 journal entries with two checkpoints and a balances line."""
    n = 20_000
    path = tmp_path / "big.jsonl"
    frontier, roots = Frontier.empty(), {}
    for entry, _ in journal_entries(n):
        frontier.append(leaf_hash(entry.encode()))
        if frontier.size in (10_000, n):
            roots[frontier.size] = frontier.root()
    with path.open("w", encoding="utf-8") as f:
        writer = BundleWriter(f)
        writer.header(0, {JOURNAL: LogInfo(J_ORIGIN)})
        for size, root in roots.items():
            writer.checkpoint(JOURNAL, sign_checkpoint(Checkpoint(J_ORIGIN, size, root), J_SIGNER))
        final: dict[str, int] = {}
        for entry, balances in journal_entries(n):
            writer.entry(JOURNAL, entry.sequence, entry.encode(), entry.compute_hash())
            final = balances
        writer.balances(JOURNAL, n, final)
    result = verify_bundle(path, KEYS)
    assert result, [str(p) for p in result.problems[:5]]
    summary = result.logs[JOURNAL]
    assert (summary.entries, summary.checkpoints_verified) == (n, 2)


@pytest.mark.slow
def test_large_bundle_verifies_in_bounded_memory(tmp_path: Path) -> None:
    """20,000 access records: the verifier holds one line at a time, never the bundle.

    (The journal's replay in audit.chain keeps per-account balances and one
    small record per reversible entry by design; the access log has no such
    state, so its peak shows the verifier's own footprint.)
    """
    n = 20_000
    log = access_log(n)
    path = write(tmp_path / "big.jsonl", bundle_text(Section(log, [log.checkpoint(n)])))
    del log
    tracemalloc.start()
    try:
        result = verify_bundle(path, KEYS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result, [str(p) for p in result.problems[:5]]
    assert result.logs[ACCESS].entries == n
    size = path.stat().st_size
    assert size > 5_000_000
    assert peak < 1_000_000, f"peak {peak} bytes for a {size}-byte bundle"


def test_unsigned_tail_after_the_last_checkpoint(tmp_path: Path) -> None:
    """Entries no signed checkpoint covers are vouched for by nobody."""
    j = journal(12)
    text = bundle_text(Section(j, [j.checkpoint(9)]))
    result = verify_bundle(write(tmp_path / "b.jsonl", text), KEYS)
    assert found(result) == {(JOURNAL, 10, "checkpoint")}


def test_log_renamed_out_of_its_saved_state(tmp_path: Path) -> None:
    """A header naming another origin (signed by the trusted key under its own
    name) does not vouch for it; a log left out of a later bundle is missing."""
    state = tmp_path / "state"
    j = journal(6)
    assert verify_bundle(
        write(tmp_path / "one.jsonl", bundle_text(Section(j, [j.checkpoint(6)]))), KEYS, state
    )
    empty = '{"format": "loyalty-ledger-bundle/v1", "created_us": 0, "logs": {}}\n'
    result = verify_bundle(write(tmp_path / "empty.jsonl", empty), KEYS, state)
    assert not result
    assert any("missing from this bundle" in p.message for p in result.problems)
