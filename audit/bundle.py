"""The export bundle, format v1: a ledger's verifiable logs in one JSON Lines file.

docs/verification.md section 10 is the specification; this module is its
executable form. A bundle is UTF-8 text, one JSON object per line, "\\n"
terminated::

    {"format": "loyalty-ledger-bundle/v1", "created_us": int,
     "logs": {"journal": {"origin": str, "verifier_keys": [str]}, "access": {...}}}
    then per declared log, journal first, then access:
      {"type": "checkpoint", "log": L, "note": str}                    zero or more
      {"type": "start", "log": L, "size": a, "prev_hash": hex,
       "frontier": [[level, index, hex], ...]}                          at most one
      {"type": "entry", "log": L, "seq": int, "data": base64, "hash": hex}
      {"type": "balances", "log": "journal", "at": int,
       "balances": {account: int}}                                      at most one

Invariants:

1. the writer produces only lines the reader accepts, in the order above
   (``BundleWriter`` raises ValueError rather than write anything else);
2. the reader never raises on bundle *content*: a line that is not valid
   UTF-8, not JSON, has a duplicate key, an unknown or missing field, a
   value of the wrong type, or is longer than ``MAX_LINE_BYTES``, comes out
   as a ``BadLine`` (with the log and sequence when they can be read), and
   reading goes on with the next line; only I/O errors propagate;
3. the reader is a generator holding one line at a time, so a bundle of any
   length is read in bounded memory;
4. every value has one text form: hashes are 64 lowercase hex digits, base64
   is the standard padded canonical encoding, integers are JSON integers
   (never booleans, floats, NaN or strings).

Ordering between lines is the verifier's business (audit/bundle_verify.py):
the reader reports each line as it is. Pure: imports nothing from ledger/.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final, cast

from audit.merkle import Frontier

__all__ = [
    "ACCESS",
    "FORMAT",
    "JOURNAL",
    "LOGS",
    "MAX_LINE_BYTES",
    "BadLine",
    "BalancesLine",
    "BundleLine",
    "BundleWriter",
    "CheckpointLine",
    "EntryLine",
    "FrontierNode",
    "Header",
    "LogInfo",
    "StartLine",
    "read_bundle",
]

FORMAT: Final = "loyalty-ledger-bundle/v1"
JOURNAL: Final = "journal"
ACCESS: Final = "access"
LOGS: Final = (JOURNAL, ACCESS)  # the order logs appear in a bundle
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
_HEX_HASH = re.compile(r"[0-9a-f]{64}")

FrontierNode = tuple[int, int, bytes]
"""(level, index, hash): one complete subtree of the tree's right edge."""


# -- line types -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogInfo:
    """A log as the header declares it; ``verifier_keys`` are informational only."""

    origin: str
    verifier_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Header:
    line_no: int
    created_us: int
    logs: Mapping[str, LogInfo]


@dataclass(frozen=True, slots=True)
class CheckpointLine:
    line_no: int
    log: str
    note: str


@dataclass(frozen=True, slots=True)
class StartLine:
    line_no: int
    log: str
    size: int
    prev_hash: bytes
    frontier: tuple[FrontierNode, ...]


@dataclass(frozen=True, slots=True)
class EntryLine:
    line_no: int
    log: str
    seq: int
    data: bytes
    stored_hash: bytes


@dataclass(frozen=True, slots=True)
class BalancesLine:
    line_no: int
    log: str
    at: int
    balances: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line the reader could not accept; ``log``/``seq`` when they could be read."""

    line_no: int
    message: str
    log: str | None = None
    seq: int | None = None
    type: str | None = None


BundleLine = Header | CheckpointLine | StartLine | EntryLine | BalancesLine | BadLine


# -- encoding helpers ---------------------------------------------------------------


class _Invalid(ValueError):
    """A field has the wrong shape; becomes a BadLine."""


def _hex(raw: bytes) -> str:
    return raw.hex()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(obj: Mapping[str, Any], name: str, minimum: int = 0) -> int:
    value = obj.get(name)
    if not _is_int(value):
        raise _Invalid(f"{name}: expected an integer, got {type(value).__name__}")
    number = cast(int, value)
    if number < minimum:
        raise _Invalid(f"{name}: expected >= {minimum}, got {number}")
    return number


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{name}: expected a non-empty string, got {type(value).__name__}")
    return value


def _hash(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise _Invalid(f"{name}: expected 64 lowercase hex digits")
    return bytes.fromhex(value)


def _base64(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise _Invalid(f"{name}: expected a base64 string, got {type(value).__name__}")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _Invalid(f"{name}: expected standard padded base64") from None
    if _b64(raw) != value:
        raise _Invalid(f"{name}: expected canonical base64")
    return raw


def _fields(obj: Mapping[str, Any], expected: set[str]) -> None:
    missing = sorted(expected - obj.keys())
    extra = sorted(obj.keys() - expected)
    if missing:
        raise _Invalid(f"missing field(s): {', '.join(missing)}")
    if extra:
        raise _Invalid(f"unknown field(s): {', '.join(extra)}")


# -- parsing one line -----------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not a JSON number")


def _load(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise _Invalid("not JSON: nested too deeply") from None
    except _Invalid:
        raise
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise _Invalid(f"not acceptable JSON: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise _Invalid(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _parse_header(line_no: int, obj: Mapping[str, Any]) -> Header:
    _fields(obj, {"format", "created_us", "logs"})
    if obj["format"] != FORMAT:
        raise _Invalid(f"format: expected {FORMAT!r}, got {obj['format']!r}")
    logs = obj["logs"]
    if not isinstance(logs, dict):
        raise _Invalid("logs: expected an object")
    unknown = sorted(set(logs) - set(LOGS))
    if unknown:
        raise _Invalid(f"logs: unknown log(s) {', '.join(map(repr, unknown))}")
    infos = {name: _parse_log_info(name, logs[name]) for name in LOGS if name in logs}
    return Header(line_no, _int(obj, "created_us"), infos)


def _parse_log_info(name: str, value: object) -> LogInfo:
    if not isinstance(value, dict):
        raise _Invalid(f"logs.{name}: expected an object")
    _fields(value, {"origin", "verifier_keys"})
    keys = value["verifier_keys"]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Invalid(f"logs.{name}.verifier_keys: expected a list of strings")
    return LogInfo(_str(value, "origin"), tuple(keys))


def _parse_frontier(value: object) -> tuple[FrontierNode, ...]:
    if not isinstance(value, list):
        raise _Invalid("frontier: expected a list of [level, index, hash]")
    nodes: list[FrontierNode] = []
    for node in value:
        if (
            not isinstance(node, list)
            or len(node) != 3
            or not all(_is_int(x) and x >= 0 for x in node[:2])
        ):
            raise _Invalid("frontier: expected [level, index, hash] with integers >= 0")
        nodes.append((node[0], node[1], _hash(node[2], "frontier hash")))
    return tuple(nodes)


def _parse_typed(line_no: int, obj: Mapping[str, Any], kind: str, log: str) -> BundleLine:
    if kind == "checkpoint":
        _fields(obj, {"type", "log", "note"})
        return CheckpointLine(line_no, log, _str(obj, "note"))
    if kind == "start":
        _fields(obj, {"type", "log", "size", "prev_hash", "frontier"})
        return StartLine(
            line_no,
            log,
            _int(obj, "size", 1),
            _hash(obj["prev_hash"], "prev_hash"),
            _parse_frontier(obj["frontier"]),
        )
    if kind == "entry":
        _fields(obj, {"type", "log", "seq", "data", "hash"})
        return EntryLine(
            line_no,
            log,
            _int(obj, "seq", 1),
            _base64(obj["data"], "data"),
            _hash(obj["hash"], "hash"),
        )
    if kind == "balances":
        _fields(obj, {"type", "log", "at", "balances"})
        return BalancesLine(line_no, log, _int(obj, "at"), _parse_balances(obj["balances"]))
    raise _Invalid(f"type: unknown line type {kind!r}")


def _parse_balances(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Invalid("balances: expected an object of account -> integer")
    for account, amount in value.items():
        if not account or not _is_int(amount):
            raise _Invalid("balances: expected non-empty account ids and integer amounts")
    return cast(dict[str, int], value)


def _hints(text: str) -> tuple[str | None, int | None]:
    """The log and sequence of a line rejected by the strict parser, to say where it is."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    log, seq = obj.get("log"), obj.get("seq")
    return (log if log in LOGS else None), (seq if _is_int(seq) else None)


def parse_line(line_no: int, text: str) -> BundleLine:
    """One line of a bundle (without its newline); never raises on content."""
    try:
        obj = _load(text)
    except _Invalid as exc:
        log, seq = _hints(text)
        return BadLine(line_no, str(exc), log, seq)
    kind, log = obj.get("type"), obj.get("log")
    seq = obj.get("seq") if _is_int(obj.get("seq")) else None
    known_log = log if log in LOGS else None
    known_type = kind if isinstance(kind, str) else None
    try:
        if "format" in obj and kind is None:
            return _parse_header(line_no, obj)
        if not isinstance(kind, str):
            raise _Invalid("type: expected a string (or a header line)")
        if known_log is None:
            raise _Invalid(f"log: expected one of {', '.join(LOGS)}, got {log!r}")
        return _parse_typed(line_no, obj, kind, known_log)
    except _Invalid as exc:
        return BadLine(line_no, str(exc), known_log, seq, known_type)


# -- reading ------------------------------------------------------------------------------


_TOO_LONG = object()  # marks a line longer than the limit


def _next_line(readline: Callable[[int], Any], max_line: int) -> Any:
    """The next raw line (bytes or str, newline kept), ``_TOO_LONG``, or empty at the end.

    An over-long line is read on and dropped in chunks, never held whole.
    """
    raw = readline(max_line + 1)
    if len(raw) <= max_line:
        return raw
    while not _ends_line(raw):
        raw = readline(1024 * 1024)
        if not raw:
            break
    return _TOO_LONG


def _ends_line(raw: bytes | str) -> bool:
    return raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")


def _text(raw: bytes | str) -> str | None:
    """The line as text without its line ending; None when it is not UTF-8."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return raw[:-1].removesuffix("\r") if raw.endswith("\n") else raw


def _read(source: IO[bytes] | IO[str], max_line: int) -> Iterator[BundleLine]:
    readline = cast(Callable[[int], Any], source.readline)
    line_no = 0
    while raw := _next_line(readline, max_line):
        line_no += 1
        if raw is _TOO_LONG:
            yield BadLine(line_no, f"line longer than {max_line} bytes")
            continue
        text = _text(raw)
        if text is None:
            yield BadLine(line_no, "line is not valid UTF-8")
        elif not text.strip():
            yield BadLine(line_no, "empty line")
        else:
            yield parse_line(line_no, text)


def read_bundle(
    source: str | os.PathLike[str] | IO[bytes] | IO[str], *, max_line: int = MAX_LINE_BYTES
) -> Generator[BundleLine, None, None]:
    """The lines of a bundle, one typed object at a time, in file order.

    Malformed lines come out as ``BadLine``; only I/O errors (opening or
    reading) raise. A path is opened, and closed when the generator ends.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield from _read(f, max_line)
    else:
        yield from _read(source, max_line)


# -- writing --------------------------------------------------------------------------------

_PHASES = {"checkpoint": 0, "start": 1, "entry": 2, "balances": 3}


def _dumps(obj: Mapping[str, object]) -> str:
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False) + "\n"


def _writer(out: IO[bytes] | IO[str]) -> Callable[[str], object]:
    if isinstance(out, io.TextIOBase):
        return cast(IO[str], out).write
    binary = cast(IO[bytes], out)
    return lambda text: binary.write(text.encode("utf-8"))


def _frontier_nodes(size: int, frontier: Frontier | Sequence[FrontierNode]) -> list[FrontierNode]:
    if isinstance(frontier, Frontier):
        if frontier.size != size:
            raise ValueError(f"start: frontier has size {frontier.size}, expected {size}")
        return [(level, index, h) for (level, index), h in frontier.hashes()]
    nodes = list(frontier)
    check = Frontier(size, [(level, h) for level, _, h in nodes])
    if [key for key, _ in check.hashes()] != [(level, index) for level, index, _ in nodes]:
        raise ValueError(f"start: frontier node indexes do not fit a tree of size {size}")
    return nodes


class BundleWriter:
    """Writes a v1 bundle to a text or binary file object, line by line.

    Enforces the format's order: the header first; then per log (journal,
    then access) checkpoints, at most one start line, entries with
    consecutive sequences, and for the journal at most one balances line.
    Raises ValueError instead of writing a line out of order.
    """

    def __init__(self, out: IO[bytes] | IO[str]) -> None:
        self._write = _writer(out)
        self._logs: tuple[str, ...] | None = None
        self._log_index = -1
        self._phase = 0
        self._next_seq: int | None = None
        self._started = False  # the current log's section has a start line
        self.lines = 0

    def header(self, created_us: int, logs: Mapping[str, LogInfo]) -> None:
        if self._logs is not None:
            raise ValueError("bundle order: the header is written once, first")
        if not _is_int(created_us) or created_us < 0:
            raise ValueError(f"created_us: expected an integer >= 0, got {created_us!r}")
        unknown = sorted(set(logs) - set(LOGS))
        if unknown:
            raise ValueError(f"unknown log(s): {', '.join(unknown)}")
        self._logs = tuple(name for name in LOGS if name in logs)
        body = {
            name: {"origin": logs[name].origin, "verifier_keys": list(logs[name].verifier_keys)}
            for name in self._logs
        }
        self._emit({"format": FORMAT, "created_us": created_us, "logs": body})

    def checkpoint(self, log: str, note: str) -> None:
        self._enter(log, "checkpoint")
        self._emit({"type": "checkpoint", "log": log, "note": note})

    def start(
        self, log: str, size: int, prev_hash: bytes, frontier: Frontier | Sequence[FrontierNode]
    ) -> None:
        if not _is_int(size) or size < 1:
            raise ValueError(f"start: size must be an integer >= 1, got {size!r}")
        _check_hash("start prev_hash", prev_hash)
        nodes = _frontier_nodes(size, frontier)
        self._enter(log, "start")
        self._next_seq, self._started = size + 1, True
        self._emit(
            {
                "type": "start",
                "log": log,
                "size": size,
                "prev_hash": _hex(prev_hash),
                "frontier": [[level, index, _hex(h)] for level, index, h in nodes],
            }
        )

    def entry(self, log: str, seq: int, data: bytes, stored_hash: bytes) -> None:
        _check_hash("entry hash", stored_hash)
        expected = self._next_seq if self._current() == log and self._phase >= 1 else 1
        if seq != expected:
            raise ValueError(f"entry: expected sequence {expected}, got {seq!r}")
        self._enter(log, "entry")
        self._next_seq = seq + 1
        self._emit(
            {"type": "entry", "log": log, "seq": seq, "data": _b64(data), "hash": _hex(stored_hash)}
        )

    def balances(self, log: str, at: int, balances: Mapping[str, int]) -> None:
        if log != JOURNAL:
            raise ValueError(f"balances: only the journal has balances, got {log!r}")
        if not _is_int(at) or at < 0:
            raise ValueError(f"balances: at must be an integer >= 0, got {at!r}")
        if self._current() == log and self._started:
            raise ValueError("balances: only meaningful when the export starts at sequence 1")
        self._enter(log, "balances")
        self._emit({"type": "balances", "log": log, "at": at, "balances": dict(balances)})

    def _current(self) -> str | None:
        if self._logs is None or not 0 <= self._log_index < len(self._logs):
            return None
        return self._logs[self._log_index]

    def _enter(self, log: str, kind: str) -> None:
        """Moves to ``log``'s section and ``kind``'s phase, or raises if that goes back."""
        if self._logs is None:
            raise ValueError("bundle order: write the header first")
        if log not in self._logs:
            raise ValueError(f"bundle order: log {log!r} is not declared in the header")
        index, phase = self._logs.index(log), _PHASES[kind]
        if index < self._log_index:
            raise ValueError(f"bundle order: {log} lines after the next log's")
        if index > self._log_index:
            self._log_index, self._phase = index, 0
            self._next_seq, self._started = None, False
        repeatable = kind in ("checkpoint", "entry")
        if phase < self._phase or (phase == self._phase and not repeatable):
            raise ValueError(f"bundle order: a {kind} line cannot follow the lines written")
        self._phase = phase

    def _emit(self, obj: Mapping[str, object]) -> None:
        self._write(_dumps(obj))
        self.lines += 1


def _check_hash(what: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what}: expected 32 bytes")
