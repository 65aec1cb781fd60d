"""Offline replay: a store's queued operations, sent after an outage.

Each item carries the original request (with its original idempotency key
and channel) and when it happened at the store. Items are applied in
``occurred_at`` order, one command each, so order-dependent rules (which
lots a redemption uses, which hold a capture names) come out as they would
have online; an item already applied returns its first result (its key).
A redemption the member's points no longer cover (spent meanwhile in
another channel) is applied anyway, as a shortfall entry: the goods were
handed over, so the rest is taken from the store's shortfall account for
the store to settle (docs/outage.md). Any other item that can no longer
apply gets its own error, naming the field and the rule. Nothing here
touches storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from loyalty.ledger.v1 import ledger_pb2 as pb

from access.detectors import PersonalDataFound, TooLongToScan
from audit.accounts import MAX_SHORTFALL_STORE
from ledger.commands import Command
from ledger.errors import LedgerError, ValidationError
from ledger.service import messages as m
from ledger.service.status import to_status

MAX_ITEMS = 500
MAX_CLOCK_SKEW_US = 5 * 60 * 1_000_000  # a store clock may run this far ahead
MAX_AGE_US = 30 * 86_400 * 1_000_000  # an outage longer than this is not replayed


@dataclass(frozen=True, slots=True)
class Item:
    index: int
    operation: str
    occurred_us: int
    command: Command | None
    error: LedgerError | None


def command(
    op: str, request: object, limit: int, occurred_us: int, *, shortfall: bool = False
) -> Command:
    """The command of one queued operation. ``shortfall``: a redemption
    beyond the member's points becomes the store's shortfall (ReplayOffline,
    where the goods were handed over) rather than a refusal (bulk import)."""
    if op == "earn":
        assert isinstance(request, pb.EarnRequest)
        return m.earn_command(request, limit=limit, occurred_us=occurred_us)
    if op == "redeem" and shortfall:  # the goods were handed over: not a refusal
        assert isinstance(request, pb.RedeemRequest)
        redeem = replace(m.redeem_command(request, limit=limit), offline=True)
        try:  # a valid store (or channel) id; too long for an account id?
            redeem.shortfall_account  # noqa: B018 - raises when it does not fit
        except ValueError:
            field = "context.store_id" if redeem.details.store_id else "context.channel_id"
            raise ValidationError(
                field, f"must be at most {MAX_SHORTFALL_STORE} characters for an offline redemption"
            ) from None
        return redeem
    if op == "redeem":
        assert isinstance(request, pb.RedeemRequest)
        return m.redeem_command(request, limit=limit)
    if op == "hold":
        assert isinstance(request, pb.HoldRequest)
        return m.hold_command(request, limit=limit)
    if op == "capture_hold":
        assert isinstance(request, pb.CaptureHoldRequest)
        return m.capture_command(request, limit=limit)
    if op == "release_hold":
        assert isinstance(request, pb.ReleaseHoldRequest)
        return m.release_command(request)
    assert isinstance(request, pb.ReverseRequest)
    return m.reverse_command(request, limit=limit)


def plan(request: pb.ReplayOfflineRequest, *, limit: int, now_us: int) -> list[Item]:
    """Every item validated on its own, in the order they will be applied."""
    if not 1 <= len(request.items) <= MAX_ITEMS:
        raise ValidationError("items", f"must hold 1..{MAX_ITEMS} operations")
    items = []
    for i, item in enumerate(request.items):
        where = f"items[{i}]"
        op = item.WhichOneof("operation") or ""
        occurred = item.occurred_at.seconds * 1_000_000 + item.occurred_at.nanos // 1000
        try:
            if not op:
                raise ValidationError(f"{where}.operation", "must be set")
            if not item.HasField("occurred_at") or occurred <= 0:
                raise ValidationError(f"{where}.occurred_at", "must be set")
            if not 0 <= item.occurred_at.nanos < 1_000_000_000:
                raise ValidationError(f"{where}.occurred_at", "nanos must be 0..999999999")
            if occurred > now_us + MAX_CLOCK_SKEW_US:
                raise ValidationError(f"{where}.occurred_at", "must not be in the future")
            if occurred < now_us - MAX_AGE_US:
                raise ValidationError(f"{where}.occurred_at", "must be within the last 30 days")
            try:
                planned = command(op, getattr(item, op), limit, occurred, shortfall=True)
            except (ValidationError, PersonalDataFound, TooLongToScan) as err:
                raise ValidationError(f"{where}.{op}.{err.field}", err.rule) from None
            items.append(Item(i, op, occurred, planned, None))
        except LedgerError as err:
            items.append(Item(i, op, occurred, None, err))
    return sorted(items, key=lambda it: (it.occurred_us, it.index))


def results(
    items: list[Item], outcomes: Iterator[bytes | BaseException]
) -> pb.ReplayOfflineResponse:
    """One result per item, in request order. ``outcomes``: the appender's
    answer to each item that had a command, in ``items`` order."""
    out: list[pb.ReplayResult] = []
    for item in items:
        result = pb.ReplayResult(index=item.index)
        error: BaseException | None = item.error
        if item.command is not None:
            outcome = next(outcomes)
            if isinstance(outcome, bytes):
                getattr(result, item.operation).MergeFromString(outcome)
            else:
                error = outcome
        if isinstance(error, LedgerError):
            status = to_status(error)
            result.code, result.message = status.code.value[0], status.details
        elif error is not None:
            raise error  # not a ledger decision: fail the call (observe maps it)
        out.append(result)
    out.sort(key=lambda r: r.index)
    return pb.ReplayOfflineResponse(results=out)
