"""Bulk ingest: a file of operations through the appender in large group
commits (``loyalty-ledger import``).

For importing an existing program's history, a partner's file, or a store's
queue too long for ReplayOffline. One operation per line, as JSON in the
protobuf JSON mapping (docs/bulk-import.md):

- a ``ReplayItem``: ``occurred_at`` plus one of ``earn``, ``redeem``,
  ``hold``, ``capture_hold``, ``release_hold``, ``reverse``, each the
  online request with its own idempotency key and channel context;
- or ``{"open_account": {...OpenAccountRequest...}, "alias": "NAME"}``,
  which opens an account; later lines name it ``"alias:NAME"`` wherever a
  ``member_account_id`` goes.

Every line is validated as the online call validates it; lines are applied
in file order, each as one command, so the journal, the lots and every
guarantee are exactly those of the online path (it is the same appender).
An idempotency key already in the journal returns its first result, so an
interrupted import is re-run from the start. A line that cannot apply is
reported with its line number, the field and the rule, never its values,
and leaves no trace.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.protobuf import json_format
from google.protobuf.message import Message
from loyalty.ledger.v1 import ledger_pb2 as pb

from access.detectors import PersonalDataFound, TooLongToScan
from ledger.appender import Appender
from ledger.commands import Command, Settle, WriteProfile
from ledger.errors import LedgerError, ValidationError
from ledger.keys.idempotency_digest import IdempotencyDigest
from ledger.members.vault import MemberVault
from ledger.service import messages as m
from ledger.service import replay
from ledger.service.status import to_status
from ledger.storage import journal_writes as sql
from ledger.storage.database import Database

ALIAS_PREFIX = "alias:"
MAX_LINE_BYTES = 64 * 1024
MAX_ALIAS = 64
_ALIAS = re.compile(rf"^[A-Za-z0-9._:-]{{1,{MAX_ALIAS}}}$")
_NO_FIELD = re.compile(r'^Message type "[\w.]+" has no field named "[\w.]+"')
_OPERATIONS = ("earn", "redeem", "hold", "capture_hold", "release_hold", "reverse")


@dataclass(frozen=True, slots=True)
class Refusal:
    line: int
    code: str  # the gRPC status name the online call would have returned
    message: str  # names the field and the rule, never a value


@dataclass(slots=True)
class Report:
    lines: int = 0
    applied: int = 0  # new or already in the journal (an idempotent re-run)
    opened: int = 0
    refused: list[Refusal] = field(default_factory=list)
    entries_before: int = 0
    entries_after: int = 0
    seconds: float = 0.0

    @property
    def entries_added(self) -> int:
        return self.entries_after - self.entries_before


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    command: Command | None = None
    alias: str = ""  # an open_account's alias
    opened: str = ""  # an open_account already applied: its account
    error: LedgerError | None = None


class Importer:
    """Feeds lines to an appender in chunks; keeps the aliases it opened."""

    def __init__(
        self,
        *,
        db: Database,
        appender: Appender,
        vault: MemberVault,
        limit: int,
        clock: Callable[[], int],
        chunk: int = 2000,
    ) -> None:
        self._db = db
        self._appender = appender
        self._vault = vault
        self._idem = IdempotencyDigest.for_keyring(vault.keyring)  # as the appender stores keys
        self._limit = limit
        self._clock = clock
        self._chunk = chunk
        self.aliases: dict[str, str] = {}  # alias -> member account id

    def run(
        self, lines: Iterable[str], on_alias: Callable[[str, str], None] | None = None
    ) -> Report:
        report = Report(entries_before=self.head())
        started = time.perf_counter()
        pending: list[tuple[int, str]] = []
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            report.lines += 1
            pending.append((number, text))
            if len(pending) >= self._chunk:
                self._apply(pending, report, on_alias)
                pending = []
        if pending:
            self._apply(pending, report, on_alias)
        report.seconds = time.perf_counter() - started
        report.entries_after = self.head()
        return report

    def head(self) -> int:
        with self._db.reader.connect() as conn:
            seq = conn.exec_driver_sql("SELECT seq FROM journal_head").scalar()
        return int(seq or 0)

    def _apply(
        self,
        pending: list[tuple[int, str]],
        report: Report,
        on_alias: Callable[[str, str], None] | None,
    ) -> None:
        now_us = self._clock()
        lines: list[_Line] = []
        for number, text in pending:  # in order: an alias resolves for the lines after it
            line = self._parse(number, text, now_us)
            if line.alias:
                known = self._opened_before(line.command)
                if known:
                    line = _Line(number, alias=line.alias, opened=known)
                    report.applied += 1
                self.aliases[line.alias] = known or line.command.account  # type: ignore[union-attr]
            lines.append(line)
        commands = [ln.command for ln in lines if ln.command is not None]
        outcomes = iter(self._appender.append_all_blocking(commands))
        for line in lines:
            error = line.error
            if line.command is not None:
                outcome = next(outcomes)
                if isinstance(outcome, LedgerError):
                    error = outcome
                elif isinstance(outcome, BaseException):
                    raise outcome  # storage failed: stop here; a re-run resumes
                else:
                    report.applied += 1
                    if line.alias:
                        report.opened += 1
                        if on_alias is not None:
                            on_alias(line.alias, self.aliases[line.alias])
            if error is not None:
                if line.alias:
                    self.aliases.pop(line.alias, None)
                status = to_status(error)
                report.refused.append(Refusal(line.number, status.code.name, status.details))

    def _opened_before(self, command: Command | None) -> str:
        """The account an open_account with this idempotency key already
        opened ("" if none): a re-run must not open another."""
        if command is None or isinstance(command, Settle | WriteProfile):
            return ""
        channel, key = command.meta.channel_id, command.meta.idempotency_key
        raw = self._db.reader.raw_connection()
        try:  # the appender's own lookup, on a reader connection
            tx = sql.WriteTx(raw.driver_connection, self._db.reader.dialect.name)
            found = sql.load_idempotency(tx, {(channel, key)}, self._idem).get(
                (channel, self._idem.key(channel, key))
            )
        finally:
            raw.close()
        if found is None:
            return ""
        return pb.OpenAccountResponse.FromString(found.response).member_account_id

    def _parse(self, number: int, text: str, now_us: int) -> _Line:
        try:
            return self._parse_line(number, text, now_us)
        except (ValidationError, PersonalDataFound, TooLongToScan) as err:
            return _Line(number, error=ValidationError(err.field, err.rule))
        except LedgerError as err:
            return _Line(number, error=err)

    def _parse_line(self, number: int, text: str, now_us: int) -> _Line:
        if len(text.encode()) > MAX_LINE_BYTES:
            raise ValidationError("line", f"must be at most {MAX_LINE_BYTES} bytes")
        try:
            obj = json.loads(text)
        except ValueError:
            raise ValidationError("line", "must be one JSON object") from None
        if not isinstance(obj, dict):
            raise ValidationError("line", "must be one JSON object")
        if "open_account" in obj:
            return self._open(number, obj)
        op = next((k for k in _OPERATIONS if k in obj), "")
        if op:
            body = obj[op]
            if isinstance(body, dict):
                self._resolve(body, "member_account_id", op)
        request, occurred = _fast_item(obj, op)
        if request is None:  # not in the canonical form: protobuf's JSON parser decides
            item = pb.ReplayItem()
            _parse_json(obj, item, "")
            op = item.WhichOneof("operation") or ""
            if not op:
                raise ValidationError("operation", f"must be one of {', '.join(_OPERATIONS)}")
            request = getattr(item, op)
            occurred = item.occurred_at.seconds * 1_000_000 + item.occurred_at.nanos // 1000
            if not item.HasField("occurred_at"):
                occurred = 0
        if occurred <= 0:
            raise ValidationError("occurred_at", "must be set")
        if occurred > now_us + replay.MAX_CLOCK_SKEW_US:
            raise ValidationError("occurred_at", "must not be in the future")
        try:
            command = replay.command(op, request, self._limit, occurred)
        except (ValidationError, PersonalDataFound, TooLongToScan) as err:
            raise ValidationError(f"{op}.{err.field}", err.rule) from None
        return _Line(number, command=command)

    def _open(self, number: int, obj: dict[str, object]) -> _Line:
        alias = obj.pop("alias", None)
        if not isinstance(alias, str) or not _ALIAS.match(alias):
            raise ValidationError("alias", "must be 1..64 of A-Z a-z 0-9 . _ : -")
        if alias in self.aliases:
            raise ValidationError("alias", "must not name an account opened earlier")
        if set(obj) != {"open_account"}:
            raise ValidationError("line", "an open_account line holds open_account and alias only")
        body = obj["open_account"]
        try:
            request = pb.OpenAccountRequest(**body)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            request = pb.OpenAccountRequest()
            _parse_json(body, request, "open_account.")
        try:
            command = m.open_account_command(request, self._vault)
        except (ValidationError, PersonalDataFound, TooLongToScan) as err:
            raise ValidationError(f"open_account.{err.field}", err.rule) from None
        return _Line(number, command=command, alias=alias)

    def _resolve(self, body: dict[str, object], name: str, op: str) -> None:
        value = body.get(name)
        if isinstance(value, str) and value.startswith(ALIAS_PREFIX):
            account = self.aliases.get(value[len(ALIAS_PREFIX) :])
            if account is None:
                raise ValidationError(f"{op}.{name}", "names an alias no earlier line opened")
            body[name] = account


_REQUESTS = {
    "earn": pb.EarnRequest,
    "redeem": pb.RedeemRequest,
    "hold": pb.HoldRequest,
    "capture_hold": pb.CaptureHoldRequest,
    "release_hold": pb.ReleaseHoldRequest,
    "reverse": pb.ReverseRequest,
}


def _fast_item(obj: dict[str, object], op: str) -> tuple[Message | None, int]:
    """The request and occurred_at (µs) of a line in the canonical form
    (snake_case names, JSON numbers, RFC 3339 time with a Z) without
    protobuf's pure-Python JSON parser, which costs 30x more; (None, 0)
    for anything else, so protobuf's parser gives the answer and the error."""
    if not op or len(obj) != 2 or not isinstance(obj.get("occurred_at"), str):
        return None, 0
    body = obj[op]
    if not isinstance(body, dict):
        return None, 0
    try:
        when = datetime.datetime.fromisoformat(obj["occurred_at"])  # type: ignore[arg-type]
        if when.tzinfo is None or when.utcoffset() != datetime.timedelta(0):
            return None, 0
        return _REQUESTS[op](**body), _micros(when)
    except (TypeError, ValueError, KeyError):
        return None, 0


def _micros(when: datetime.datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _parse_json(obj: object, message: Message, where: str) -> None:
    try:
        if not isinstance(obj, dict):
            raise ValidationError(where.rstrip(".") or "line", "must be a JSON object")
        json_format.ParseDict(obj, message)
    except json_format.ParseError as err:
        text = str(err)
        found = _NO_FIELD.match(text)
        # protobuf's other messages quote the value: name the type only
        rule = found.group(0) if found else "a field has a value of the wrong type or range"
        raise ValidationError(where.rstrip(".") or "line", rule) from None
