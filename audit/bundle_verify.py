"""The offline verifier of export bundles (format: audit/bundle.py, docs/verification.md §10).

``verify_bundle`` reads a bundle once, line by line, and reports every
problem it finds; ``verify_bundle_or_raise`` raises
``BundleVerificationError`` instead of returning a result that is not clean.

Invariants:

1. trust comes only from the verifier keys the auditor passes: the keys the
   bundle lists are never used to verify anything;
2. streaming: memory is bounded by one line, the Merkle frontier (O(log n)
   hashes), the bundle's checkpoints, and the journal replay's per-account
   state; entries are never all held;
3. every entry's bytes are the Merkle leaf, in bundle order, so the root
   recomputed at each checkpoint's size is compared with the signed root:
   rewriting, deleting, inserting or reordering any covered entry changes it;
4. the journal, when exported from sequence 1, goes through
   ``audit.chain.check_chain`` (every journal invariant, and the zero-sum and
   balance checks when a balances line is present); the access log, and a
   journal range that begins with a start line, get the hash-chain checks
   (sequence, prev_hash link, hash, time);
5. every problem names its log ("bundle" for the file as a whole) and the
   sequence number it applies to, when there is one;
6. with a state directory, a log's saved checkpoint is only ever replaced by
   a newer one the bundle proves extends it, and only when nothing at all is
   wrong with that log or the bundle as a whole; the write is atomic.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Protocol

from audit.access_format import decode_record
from audit.bundle import (
    JOURNAL,
    LOGS,
    BadLine,
    BalancesLine,
    BundleLine,
    CheckpointLine,
    EntryLine,
    Header,
    StartLine,
    read_bundle,
)
from audit.chain import StoredEntry, check_chain
from audit.cosignature import CosignerKey
from audit.entry_format import GENESIS_PREV_HASH, EncodingError, JournalEntry, decode_entry
from audit.merkle import EMPTY_ROOT, Frontier, leaf_hash
from audit.note import (
    Checkpoint,
    CheckpointError,
    NoteError,
    Verifier,
    open_checkpoint,
    split_note,
)

__all__ = [
    "BUNDLE",
    "BundleProblem",
    "BundleResult",
    "BundleVerificationError",
    "LogSummary",
    "TrustedKeys",
    "state_file",
    "verify_bundle",
    "verify_bundle_or_raise",
]

BUNDLE: Final = "bundle"  # the log named by problems about the file as a whole
_PHASES: Final = {"checkpoint": 0, "start": 1, "entry": 2, "balances": 3}
_ONCE: Final = ("start", "balances")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleProblem:
    log: str  # "journal", "access", or "bundle" for the file as a whole
    sequence: int | None  # None for problems not tied to one entry
    check: str
    message: str

    def __str__(self) -> str:
        where = f"log {self.log}"
        if self.sequence is not None:
            where += f", sequence {self.sequence}"
        return f"{where}: {self.check}: {self.message}"


@dataclass(slots=True)
class LogSummary:
    entries: int = 0  # entry lines verified
    size: int = 0  # tree size after the last entry (start size + entries)
    root: bytes = EMPTY_ROOT  # recomputed root at ``size``
    checkpoints_verified: int = 0  # signed by a trusted key and matching the entries
    latest_checkpoint: Checkpoint | None = None  # the largest of those
    origin: str = ""
    first_sequence: int = 1  # 1, or the start line's size + 1
    previous_size: int | None = None  # the state file's checkpoint size, if any
    state_saved: bool = False
    untrusted_listed_keys: tuple[str, ...] = ()  # keys the bundle lists, not passed
    # trusted witnesses whose valid cosignature the latest checkpoint carries
    cosigned_by: tuple[str, ...] = ()


@dataclass(slots=True)
class BundleResult:
    problems: list[BundleProblem] = field(default_factory=list)
    logs: dict[str, LogSummary] = field(default_factory=dict)
    readable: bool = True  # False: the file could not be opened/read or has no header
    created_us: int | None = None

    def __bool__(self) -> bool:
        return not self.problems


class BundleVerificationError(Exception):
    """The bundle failed verification; ``result`` lists every problem."""

    def __init__(self, result: BundleResult) -> None:
        super().__init__(f"bundle verification failed at {result.problems[0]}")
        self.result = result


# -- trusted keys -------------------------------------------------------------------------


class TrustedKeys:
    """The auditor's verifier keys. ValueError for a key string that does not parse."""

    def __init__(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str):
            raise TypeError("keys: expected a sequence of verifier key strings, got one string")
        unique: dict[str, Verifier] = {}
        for i, key in enumerate(keys, start=1):
            try:
                verifier = Verifier.from_key(key.strip())
            except NoteError as exc:
                raise ValueError(f"trusted key {i}: {exc}") from None
            unique[verifier.key()] = verifier
        if not unique:
            raise ValueError("at least one trusted verifier key is needed")
        self.keys = frozenset(unique)
        self.names = frozenset(v.name for v in unique.values())
        # open_note takes one key per name, so keys sharing a name go to separate groups
        groups: list[dict[str, Verifier]] = []
        for verifier in unique.values():
            group = next((g for g in groups if verifier.name not in g), None)
            if group is None:
                groups.append(group := {})
            group[verifier.name] = verifier
        self._groups = [list(g.values()) for g in groups]

    def open(self, note: str, origin: str) -> Checkpoint:
        """The checkpoint if a trusted key signed it for ``origin``.

        CheckpointError: signed, but malformed or for another origin;
        NoteError: no trusted key signed it (or a trusted key's signature fails).
        """
        error: NoteError | None = None
        for group in self._groups:
            try:
                checkpoint, opened = open_checkpoint(note, group, origin=origin)
            except CheckpointError:
                raise
            except NoteError as exc:
                error = error or exc
                continue
            # the log's own key is named after its origin: a trusted key of
            # another name (another log, a witness) does not vouch for this
            # origin, so a header cannot rename a log out of its saved state
            if origin not in opened.signatures:
                error = error or NoteError(
                    f"checkpoint: not signed by a trusted key named {origin} (the log's own key)"
                )
                continue
            return checkpoint
        assert error is not None
        raise error


def state_file(state_dir: Path, origin: str) -> Path:
    """``<state_dir>/<origin, every char outside [A-Za-z0-9._-] as '_'>.checkpoint``."""
    return Path(state_dir) / f"{_UNSAFE.sub('_', origin)}.checkpoint"


def _save_note(path: Path, note: str) -> None:
    """Writes ``note`` to ``path`` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(note)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _size_hint(note: str) -> int | None:
    """The size an unverified checkpoint claims, only to say where a problem is."""
    lines = note.split("\n", 2)
    if len(lines) > 1 and lines[1].isascii() and lines[1].isdigit() and len(lines[1]) < 21:
        return int(lines[1]) or None
    return None


# -- one log ----------------------------------------------------------------------------------


class _Chained(Protocol):
    """What the hash-chain checks read from a journal entry or an access record."""

    @property
    def sequence(self) -> int: ...
    @property
    def time_us(self) -> int: ...
    @property
    def prev_hash(self) -> bytes: ...


@dataclass(slots=True)
class _Signed:
    """A checkpoint signed by a trusted key, waiting for the tree to reach its size."""

    checkpoint: Checkpoint
    note: str
    count: int = 1  # lines with this same checkpoint (e.g. re-signed by a witness)
    reached: bool = False


@dataclass(frozen=True, slots=True)
class _Decoded:
    line: EntryLine
    record: _Chained | None  # None when the data does not decode


class _LateBalances(Mapping[str, int]):
    """The balances line's content, filled in after the entries have streamed past."""

    def __init__(self) -> None:
        self.present = False
        self._values: Mapping[str, int] = {}

    def set(self, values: Mapping[str, int]) -> None:
        self.present, self._values = True, values

    def __getitem__(self, key: str) -> int:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _LogCheck:
    """Everything checked about one log, fed one line at a time."""

    def __init__(self, log: str, origin: str, keys: TrustedKeys, state_dir: Path | None) -> None:
        self.log, self.origin, self.keys = log, origin, keys
        self.problems: list[BundleProblem] = []
        self.frontier: Frontier | None = Frontier.empty()  # None: start frontier unusable
        self.size = 0
        self.entries = 0
        self.phase = 0
        self.start: StartLine | None = None
        self.signed: dict[int, _Signed] = {}
        self.latest: _Signed | None = None
        self.verified = 0
        self.unsigned = False  # a checkpoint no trusted key signed
        self.balances = _LateBalances()
        self.state_path = state_file(state_dir, origin) if state_dir is not None else None
        self.saved = self._load_state()
        self.saved_root: bytes | None = None  # recomputed root at the saved size

    def problem(self, seq: int | None, check: str, message: str) -> None:
        self.problems.append(BundleProblem(self.log, seq, check, message))

    # -- lines

    def handle(self, line: BundleLine) -> None:
        if isinstance(line, CheckpointLine):
            self.checkpoint(line)
        elif isinstance(line, StartLine):
            self.start_line(line)
        elif isinstance(line, BalancesLine):
            self.balances_line(line)
        elif isinstance(line, BadLine):
            self.problem(line.seq, "parse", f"line {line.line_no}: {line.message}")
        elif isinstance(line, EntryLine):
            raise AssertionError("entry lines go through entry()")

    def _advance(self, kind: str, line_no: int, seq: int | None = None) -> bool:
        """Moves to ``kind``'s place in the section's order; False (reported) if it is late."""
        phase = _PHASES[kind]
        if phase < self.phase or (phase == self.phase and kind in _ONCE):
            self.problem(
                seq,
                "order",
                f"line {line_no}: {'an' if kind == 'entry' else 'a'} {kind} line out of place "
                "(expected checkpoints, at most one start line, entries, at most one "
                "balances line); ignored",
            )
            return False
        if self.phase == 0 and kind != "start" and phase > 0:
            self._reached()  # the tree before the first entry: size 0
        self.phase = phase
        return True

    def checkpoint(self, line: CheckpointLine) -> None:
        hint = _size_hint(line.note)
        if not self._advance("checkpoint", line.line_no, hint):
            return
        try:
            cp = self.keys.open(line.note, self.origin)
        except CheckpointError as exc:
            self.problem(hint, "checkpoint", f"line {line.line_no}: {exc}")
            return
        except NoteError as exc:
            self.unsigned = True
            self.problem(
                hint, "checkpoint", f"not signed by a trusted key (line {line.line_no}): {exc}"
            )
            return
        seen = self.signed.get(cp.size)
        if seen is None:
            self.signed[cp.size] = _Signed(cp, line.note)
        elif seen.checkpoint.root != cp.root:
            self.problem(
                cp.size or None,
                "fork",
                f"two checkpoints of size {cp.size} signed by trusted keys have different "
                f"roots: {seen.checkpoint.root.hex()} and {cp.root.hex()} (line {line.line_no})",
            )
        else:
            seen.count += 1

    def start_line(self, line: StartLine) -> None:
        if not self._advance("start", line.line_no, line.size):
            return
        self.start, self.size = line, line.size
        try:
            frontier = Frontier(line.size, [(level, h) for level, _, h in line.frontier])
        except ValueError as exc:
            self.frontier = None
            self.problem(line.size, "start", f"the frontier is not a tree's right edge: {exc}")
            return
        keys = [key for key, _ in frontier.hashes()]
        if keys != [(level, index) for level, index, _ in line.frontier]:
            self.frontier = None
            self.problem(line.size, "start", f"frontier node indexes: expected {keys}")
            return
        self.frontier = frontier
        self._reached()

    def entry(self, line: EntryLine) -> _Decoded | None:
        if not self._advance("entry", line.line_no, line.seq):
            return None
        self.entries += 1
        self.size += 1
        if self.frontier is not None:
            self.frontier.append(leaf_hash(line.data))
            self._reached()
        try:
            record: _Chained = (
                decode_entry(line.data) if self.log == JOURNAL else decode_record(line.data)
            )
        except EncodingError as exc:
            self.problem(line.seq, "encoding", str(exc))
            return _Decoded(line, None)
        if record.sequence != line.seq:
            self.problem(
                line.seq,
                "sequence",
                f"the line says sequence {line.seq}, its data encodes {record.sequence}",
            )
        return _Decoded(line, record)

    def balances_line(self, line: BalancesLine) -> None:
        if not self._advance("balances", line.line_no):
            return
        if self.log != JOURNAL:
            self.problem(None, "balances", "only the journal has balances; ignored")
        elif self.start is not None:
            self.problem(
                None, "balances", "only meaningful when the export starts at sequence 1; ignored"
            )
        elif line.at != self.size:
            self.problem(
                None,
                "balances",
                f"balances as of size {line.at}, but the entries end at size {self.size}; "
                "not compared",
            )
        else:
            self.balances.set(line.balances)

    # -- the tree

    def _reached(self) -> None:
        """The tree now has ``self.size`` leaves: check any checkpoint of that size."""
        assert self.frontier is not None
        signed = self.signed.get(self.size)
        wanted = self.saved is not None and self.saved.size == self.size
        if signed is None and not wanted:
            return
        root = self.frontier.root()
        if wanted:
            self.saved_root = root
        if signed is None:
            return
        signed.reached = True
        if root == signed.checkpoint.root:
            self.verified += signed.count
            self.latest = signed
        else:
            self.problem(
                self.size or None,
                "merkle",
                f"the root of the first {self.size} entries is {root.hex()}, "
                f"the signed checkpoint says {signed.checkpoint.root.hex()}",
            )

    # -- the end

    def finish(self, listed_keys: Sequence[str]) -> LogSummary:
        if self.phase == 0 and self.frontier is not None and self.start is None:
            self._reached()
        self._unreached_checkpoints()
        if self.size and self.latest is None:
            self.problem(
                None,
                "checkpoint",
                "no checkpoint signed by a trusted key matches the entries: nothing in this "
                "log is vouched for",
            )
        if self.latest is not None and self.size > self.latest.checkpoint.size:
            first = self.latest.checkpoint.size + 1
            self.problem(
                first,
                "checkpoint",
                f"entries {first}..{self.size} are not covered by a signed checkpoint: "
                "nothing vouches for them",
            )
        self._check_state()
        untrusted = tuple(k for k in listed_keys if k.strip() not in self.keys.keys)
        if untrusted and self.unsigned:
            self.problem(
                None,
                "keys",
                f"the bundle lists {len(untrusted)} verifier key(s) you did not pass; "
                "keys are only trusted when you pass them",
            )
        return LogSummary(
            entries=self.entries,
            size=self.size,
            root=self.frontier.root() if self.frontier is not None else b"",
            checkpoints_verified=self.verified,
            latest_checkpoint=self.latest.checkpoint if self.latest else None,
            origin=self.origin,
            first_sequence=self.start.size + 1 if self.start else 1,
            previous_size=self.saved.size if self.saved else None,
            untrusted_listed_keys=untrusted,
        )

    def _unreached_checkpoints(self) -> None:
        for size, signed in sorted(self.signed.items()):
            if signed.reached:
                continue
            if size > self.size:
                why = f"its size {size} exceeds the exported entries (size {self.size})"
            elif self.frontier is None:
                why = "the start line's frontier is unusable"
            else:
                why = f"its size {size} precedes the start of the export (size {self.size})"
                if self.start is not None:
                    why = f"its size {size} precedes the start line (size {self.start.size})"
            self.problem(size or None, "checkpoint", f"cannot verify: {why}")

    def _load_state(self) -> Checkpoint | None:
        path = self.state_path
        if path is None:
            return None
        try:
            note = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # first verification of this log: nothing to extend yet
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(None, "state", f"cannot read {path}: {exc}")
            return None
        try:
            return self.keys.open(note, self.origin)
        except NoteError as exc:
            self.problem(
                None, "state", f"{path} does not verify with the trusted keys for this log: {exc}"
            )
            return None

    def _check_state(self) -> None:
        saved = self.saved
        if saved is None:
            return
        n = saved.size
        if n > self.size:
            self.problem(
                self.size + 1,
                "truncated",
                f"the bundle ends at size {self.size}, previously verified {n}",
            )
        elif self.saved_root is None:
            self.problem(
                n or None,
                "state",
                f"the bundle has no usable tree state at size {n} (it starts after it, or "
                "its start line is unusable), so it cannot show it extends the previously "
                f"verified checkpoint of size {n}",
            )
        elif self.saved_root != saved.root:
            self.problem(
                n or None,
                "fork",
                f"the log at size {n} has root {self.saved_root.hex()}, "
                f"previously verified {saved.root.hex()}",
            )
        latest = self.latest.checkpoint.size if self.latest else None
        if latest is None or latest < n:
            shown = "none" if latest is None else f"size {latest}"
            self.problem(
                n or None,
                "stale checkpoint",
                f"the bundle's latest checkpoint is {shown}, older than the previously "
                f"verified size {n}",
            )

    def save_state(self) -> bool:
        """Saves the latest verified checkpoint; only call when the log is clean."""
        if self.state_path is None or self.latest is None:
            return False
        try:
            _save_note(self.state_path, self.latest.note)
        except OSError as exc:
            self.problem(None, "state", f"cannot save {self.state_path}: {exc}")
            return False
        return True


# -- hash chains ----------------------------------------------------------------------------


class _ChainCheck:
    """Sequence, prev_hash link, hash and time, for records with no journal semantics."""

    def __init__(self, check: _LogCheck) -> None:
        self.check = check
        start = check.start
        self.prev_seq = start.size if start else 0
        self.prev_hash = start.prev_hash if start else GENESIS_PREV_HASH
        self.prev_time: int | None = None

    def feed(self, decoded: _Decoded) -> None:
        line, record = decoded.line, decoded.record
        if record is None:  # undecodable, already reported: move past it
            self.prev_seq, self.prev_hash = line.seq, line.stored_hash
            return
        seq, problem = record.sequence, self.check.problem
        expected = self.prev_seq + 1
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            problem(
                expected,
                "sequence",
                f"entry missing: expected sequence {expected}, got {seq} ({missing} absent)",
            )
        elif seq < expected:
            problem(seq, "sequence", f"out of order: expected sequence {expected}, got {seq}")
        if record.prev_hash != self.prev_hash:
            problem(
                seq,
                "chain",
                f"prev_hash does not match the hash of sequence {self.prev_seq}: "
                f"expected {self.prev_hash.hex()}, got {record.prev_hash.hex()}",
            )
        computed = hashlib.sha256(line.data).digest()
        if computed != line.stored_hash:
            problem(
                seq,
                "hash",
                f"content does not match its hash: expected {line.stored_hash.hex()}, "
                f"got {computed.hex()}",
            )
        if self.prev_time is not None and record.time_us < self.prev_time:
            problem(
                seq,
                "time",
                f"time goes backwards: expected >= {self.prev_time}, got {record.time_us}",
            )
        self.prev_seq, self.prev_hash, self.prev_time = seq, line.stored_hash, record.time_us


def _journal_entries(decoded: Iterator[_Decoded]) -> Iterator[StoredEntry]:
    for d in decoded:
        if isinstance(d.record, JournalEntry):
            yield StoredEntry(d.record, d.line.stored_hash, d.line.data)


def _check_journal(decoded: Iterator[_Decoded], check: _LogCheck) -> None:
    """Streams the journal through check_chain; balances arrive after the entries."""
    result = check_chain(_journal_entries(decoded), balances=check.balances)
    for p in result.problems:
        if p.sequence is None and p.check in ("balance", "zero-sum") and not check.balances.present:
            continue  # no balances line: there was nothing to compare with
        check.problem(p.sequence, p.check, p.message)


# -- the bundle's lines ------------------------------------------------------------------------


class _Stream:
    """The bundle's lines with one line of lookahead."""

    def __init__(self, lines: Iterator[BundleLine]) -> None:
        self._lines = lines
        self._next: BundleLine | None = None

    def peek(self) -> BundleLine | None:
        if self._next is None:
            self._next = next(self._lines, None)
        return self._next

    def pop(self) -> BundleLine | None:
        line = self.peek()
        self._next = None
        return line


def _owner(line: BundleLine) -> str | None:
    """The log a line belongs to; None for a bad line whose log is unknown."""
    return "" if isinstance(line, Header) else line.log


class _Section:
    """One log's lines: stops before the next declared log's, reports strays."""

    def __init__(
        self, stream: _Stream, log: str, later: set[str], stray: Callable[[BundleLine], None]
    ) -> None:
        self.stream, self.log, self.later, self.stray = stream, log, later, stray

    def peek(self) -> BundleLine | None:
        while (line := self.stream.peek()) is not None:
            owner = _owner(line)
            if owner is None or owner == self.log:
                return line
            if owner in self.later:
                return None
            self.stray(self.stream.pop())  # type: ignore[arg-type]
        return None

    def pop(self) -> BundleLine | None:
        line = self.peek()
        return self.stream.pop() if line is not None else None


def _section_entries(section: _Section, check: _LogCheck) -> Iterator[_Decoded]:
    """The section's decoded entries; its other lines go to ``check`` on the way."""
    while (line := section.pop()) is not None:
        if isinstance(line, EntryLine):
            decoded = check.entry(line)
            if decoded is not None:
                yield decoded
        else:
            check.handle(line)


def _run_section(section: _Section, check: _LogCheck) -> None:
    # checkpoints and the start line come first: whether there is a start line
    # decides how the entries are checked
    while (line := section.peek()) is not None and not isinstance(line, EntryLine):
        check.handle(section.pop())  # type: ignore[arg-type]
    decoded = _section_entries(section, check)
    if check.log == JOURNAL and check.start is None:
        _check_journal(decoded, check)
    else:
        chain = _ChainCheck(check)
        for d in decoded:
            chain.feed(d)


# -- the verifier ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Stray:
    line_no: int
    seq: int | None
    count: int = 1


def cosigners(note: str, witnesses: Sequence[CosignerKey]) -> tuple[str, ...]:
    """The witnesses (of ``witnesses``) whose valid cosignature ``note`` carries."""
    try:
        text, signatures = split_note(note)
    except NoteError:
        return ()
    found = {w.name for w in witnesses for s in signatures if w.verify(text, s) is not None}
    return tuple(sorted(found))


class _Verification:
    def __init__(
        self,
        keys: TrustedKeys,
        state_dir: Path | None,
        witnesses: Sequence[CosignerKey] = (),
        min_witnesses: int = 0,
    ) -> None:
        self.keys, self.state_dir = keys, state_dir
        self.witnesses, self.min_witnesses = tuple(witnesses), min_witnesses
        self.result = BundleResult()
        self.bundle_problems: list[BundleProblem] = []
        self.checks: dict[str, _LogCheck] = {}
        self.strays: dict[tuple[str, str], _Stray] = {}

    def bundle_problem(self, check: str, message: str) -> None:
        self.bundle_problems.append(BundleProblem(BUNDLE, None, check, message))

    def stray(self, line: BundleLine) -> None:
        """A line outside its log's section: one problem per kind, with a count."""
        owner = _owner(line)
        if isinstance(line, Header):
            self.bundle_problem("order", f"line {line.line_no}: a second header line; ignored")
        elif isinstance(line, BadLine) and owner is None:
            self.bundle_problem("parse", f"line {line.line_no}: {line.message}")
        elif owner in self.checks:
            what = f"{owner} lines after the next log's lines; ignored"
            self._count_stray(owner, what, line.line_no, getattr(line, "seq", None))
        else:
            what = f"lines of log {owner!r}, which the header does not declare; ignored"
            self._count_stray(BUNDLE, what, line.line_no, None)

    def _count_stray(self, log: str, what: str, line_no: int, seq: int | None) -> None:
        seen = self.strays.get((log, what))
        if seen is None:
            self.strays[(log, what)] = _Stray(line_no, seq)
        else:
            seen.count += 1

    def _report_strays(self) -> None:
        for (log, what), stray in self.strays.items():
            problem = BundleProblem(
                log, stray.seq, "order", f"{stray.count} {what} (the first at line {stray.line_no})"
            )
            if log == BUNDLE:
                self.bundle_problems.append(problem)
            else:
                self.checks[log].problems.append(problem)

    def run(self, lines: Iterator[BundleLine]) -> None:
        stream = _Stream(lines)
        header = stream.pop()
        if not isinstance(header, Header):
            self.result.readable = False
            why = "the file is empty" if header is None else "not a bundle header"
            if isinstance(header, BadLine):
                why += f": {header.message}"
            self.bundle_problem("header", f"line 1: {why}")
            return
        self.result.created_us = header.created_us
        order = [log for log in LOGS if log in header.logs]
        for i, log in enumerate(order):
            info = header.logs[log]
            check = self.checks[log] = _LogCheck(log, info.origin, self.keys, self.state_dir)
            _run_section(_Section(stream, log, set(order[i + 1 :]), self.stray), check)
            summary = self.result.logs[log] = check.finish(info.verifier_keys)
            if self.witnesses and check.latest is not None:
                summary.cosigned_by = cosigners(check.latest.note, self.witnesses)
                if len(summary.cosigned_by) < self.min_witnesses:
                    check.problem(
                        None,
                        "witness",
                        f"the latest checkpoint (size {check.latest.checkpoint.size}) is "
                        f"cosigned by {len(summary.cosigned_by)} of the trusted witnesses, "
                        f"{self.min_witnesses} required: nothing shows that the log was not "
                        "rewritten by whoever holds its key",
                    )
        while (line := stream.pop()) is not None:
            self.stray(line)
        self._report_strays()
        self._missing_logs({check.origin for check in self.checks.values()})

    def _missing_logs(self, present: set[str]) -> None:
        """A log verified before (state saved under a trusted key's name) must
        be in the bundle: leaving it out must not skip its rollback check."""
        if not present:
            self.bundle_problem("header", "the bundle holds no log")
        if self.state_dir is None:
            return
        for name in sorted(self.keys.names - present):
            if state_file(self.state_dir, name).exists():
                self.bundle_problem(
                    "state", f"log {name} was verified before and is missing from this bundle"
                )

    def save_states(self) -> None:
        if self.state_dir is None or self.bundle_problems:
            return
        for log, check in self.checks.items():
            if not check.problems:
                self.result.logs[log].state_saved = check.save_state()

    def finish(self) -> BundleResult:
        problems = list(self.bundle_problems)
        for check in self.checks.values():
            problems += sorted(check.problems, key=lambda p: (p.sequence is None, p.sequence or 0))
        self.result.problems = problems
        return self.result


def verify_bundle(
    path: str | os.PathLike[str] | IO[bytes] | IO[str],
    keys: Sequence[str],
    state_dir: Path | None = None,
    witness_keys: Sequence[str] = (),
    min_witnesses: int = 0,
) -> BundleResult:
    """Verifies a bundle against the auditor's trusted ``keys``; lists every problem.

    ``witness_keys`` (C2SP cosigner verifier keys) and ``min_witnesses``: the
    latest checkpoint of each log must carry at least that many valid
    cosignatures by those witnesses.

    ValueError if a key string does not parse (that is the caller's input, not
    the bundle's); everything wrong with the bundle, including a file that
    cannot be read, is in the result.
    """
    witnesses = []
    for i, vkey in enumerate(witness_keys):
        try:
            witnesses.append(CosignerKey.from_vkey(vkey))
        except NoteError as exc:
            raise ValueError(f"witness key {i}: {exc}") from None
    if min_witnesses > len(witnesses):
        raise ValueError(
            f"--min-witnesses {min_witnesses}: only {len(witnesses)} witness key(s) given"
        )
    verification = _Verification(TrustedKeys(keys), state_dir, witnesses, min_witnesses)
    try:
        with closing(read_bundle(path)) as lines:
            verification.run(lines)
    except OSError as exc:
        verification.result.readable = False
        verification.bundle_problem("read", f"cannot read the bundle: {exc}")
    verification.save_states()
    return verification.finish()


def verify_bundle_or_raise(
    path: str | os.PathLike[str] | IO[bytes] | IO[str],
    keys: Sequence[str],
    state_dir: Path | None = None,
) -> BundleResult:
    """Like ``verify_bundle`` but raises ``BundleVerificationError`` on any problem."""
    result = verify_bundle(path, keys, state_dir)
    if not result:
        raise BundleVerificationError(result)
    return result
