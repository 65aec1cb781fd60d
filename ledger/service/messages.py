"""Translation between the gRPC messages and the ledger's commands and
entries. Validation happens here, field by field, before anything reaches
the appender; nothing in this module touches storage."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.ledger.v1 import ledger_pb2 as pb

from access.detectors import check_free_text
from audit.accounts import (
    KIND_CAPTURE,
    KIND_EXCHANGE_IN,
    KIND_EXCHANGE_OUT,
    KIND_EXPIRE,
    KIND_HOLD,
    KIND_MATURE,
    KIND_RELEASE,
    KIND_SETTLEMENT,
    KIND_SHORTFALL,
    KIND_TRANSFER,
    KIND_VOUCHER_CANCEL,
    KIND_VOUCHER_EXPIRE,
    KIND_VOUCHER_ISSUE,
    KIND_VOUCHER_REDEEM,
    is_shortfall_account,
)
from audit.chain import StoredEntry
from audit.entry_format import JournalEntry
from audit.profile_format import KIND_PROFILE
from ledger import validation as v
from ledger.commands import (
    KIND_EARN,
    KIND_ERASE,
    KIND_REDEEM,
    KIND_REVERSE,
    AccountOpened,
    Appended,
    Capture,
    Earn,
    Enroll,
    EntryDetails,
    Exchange,
    Hold,
    Outcome,
    Redeem,
    Refer,
    Referred,
    Release,
    Renderer,
    RequestMeta,
    Reverse,
    Transfer,
    is_sealed,
    new_member_account_id,
)
from ledger.errors import ValidationError
from ledger.members.vault import MemberVault
from ledger.program.lots import BalanceView

DEVICE_TOKEN_KIND = "device"  # blind-index kind of device ids (referral anti-abuse)

_KINDS = {
    KIND_ERASE: pb.ENTRY_KIND_ERASE,
    KIND_EARN: pb.ENTRY_KIND_EARN,
    KIND_REDEEM: pb.ENTRY_KIND_REDEEM,
    KIND_REVERSE: pb.ENTRY_KIND_REVERSE,
    KIND_HOLD: pb.ENTRY_KIND_HOLD,
    KIND_CAPTURE: pb.ENTRY_KIND_CAPTURE,
    KIND_RELEASE: pb.ENTRY_KIND_RELEASE,
    KIND_MATURE: pb.ENTRY_KIND_MATURE,
    KIND_EXPIRE: pb.ENTRY_KIND_EXPIRE,
    KIND_TRANSFER: pb.ENTRY_KIND_TRANSFER,
    KIND_EXCHANGE_OUT: pb.ENTRY_KIND_EXCHANGE_OUT,
    KIND_EXCHANGE_IN: pb.ENTRY_KIND_EXCHANGE_IN,
    KIND_PROFILE: pb.ENTRY_KIND_PROFILE,
    KIND_SHORTFALL: pb.ENTRY_KIND_SHORTFALL,
    KIND_SETTLEMENT: pb.ENTRY_KIND_SETTLEMENT,
    KIND_VOUCHER_ISSUE: pb.ENTRY_KIND_VOUCHER_ISSUE,
    KIND_VOUCHER_REDEEM: pb.ENTRY_KIND_VOUCHER_REDEEM,
    KIND_VOUCHER_EXPIRE: pb.ENTRY_KIND_VOUCHER_EXPIRE,
    KIND_VOUCHER_CANCEL: pb.ENTRY_KIND_VOUCHER_CANCEL,
}
_PAGE_TOKEN = struct.Struct(">BQ")
_PAGE_TOKEN_VERSION = 1


def request_meta(
    method: str, request: Message, key: str, context: pb.ChannelContext
) -> RequestMeta:
    digest = hashlib.sha256(
        method.encode() + b"\x00" + request.SerializeToString(deterministic=True)
    )
    return RequestMeta(v.channel_id(context.channel_id), v.idempotency_key(key), digest.digest())


def entry_details(context: pb.ChannelContext, purchase: pb.Money | None = None) -> EntryDetails:
    store = v.optional_store_id(context.store_id)
    external = v.optional_external_id(context.external_transaction_id)
    # data minimization: these identify a store and an order, never a person
    check_free_text("context.store_id", store)
    check_free_text("context.external_transaction_id", external)
    minor, currency = 0, ""
    if purchase is not None:
        minor, currency = v.money(purchase.minor_units, purchase.currency_code, "purchase")
    return EntryDetails(store, external, minor, currency)


def open_account_command(request: pb.OpenAccountRequest, vault: MemberVault) -> Enroll:
    """An account without personal data: an Enroll with no fields, so the
    account still gets the data key its entries' details are sealed under."""
    meta = request_meta("OpenAccount", request, request.idempotency_key, request.context)
    entry_details(request.context)
    account = new_member_account_id()
    return Enroll(meta, account, vault.seal_new(account, {}), render=render_open_account)


def earn_command(request: pb.EarnRequest, *, limit: int, occurred_us: int = 0) -> Earn:
    meta = request_meta("Earn", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    purchase = request.purchase if request.HasField("purchase") else None
    # 0 points with a purchase: the program prices it
    points = v.points(request.points, limit=limit) if request.points or not purchase else 0
    categories = v.categories(request.categories)
    details = entry_details(request.context, purchase)
    return Earn(
        meta,
        account,
        points,
        details,
        render=_render_entry(pb.EarnResponse),
        categories=categories,
        occurred_us=occurred_us,
    )


def redeem_command(request: pb.RedeemRequest, *, limit: int) -> Redeem:
    meta = request_meta("Redeem", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    points = v.points(request.points, limit=limit)
    return Redeem(
        meta,
        account,
        points,
        entry_details(request.context),
        render=_render_entry(pb.RedeemResponse),
    )


def hold_command(request: pb.HoldRequest, *, limit: int) -> Hold:
    meta = request_meta("Hold", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    points = v.points(request.points, limit=limit)
    minutes = v.hold_minutes(request.minutes)
    return Hold(
        meta,
        account,
        points,
        entry_details(request.context),
        render=_render_entry(pb.HoldResponse),
        minutes=minutes,
    )


def capture_command(request: pb.CaptureHoldRequest, *, limit: int) -> Capture:
    meta = request_meta("CaptureHold", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    hold = v.sequence(request.hold_sequence, "hold_sequence")
    points = v.points(request.points, limit=limit) if request.HasField("points") else None
    return Capture(
        meta,
        account,
        hold,
        points,
        entry_details(request.context),
        _render_entry(pb.CaptureHoldResponse),
    )


def release_command(request: pb.ReleaseHoldRequest) -> Release:
    meta = request_meta("ReleaseHold", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    hold = v.sequence(request.hold_sequence, "hold_sequence")
    return Release(
        meta, account, hold, entry_details(request.context), _render_entry(pb.ReleaseHoldResponse)
    )


def transfer_command(request: pb.TransferRequest, *, limit: int) -> Transfer:
    meta = request_meta("Transfer", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    to = v.member_account_id(request.to_member_account_id, "to_member_account_id")
    if to == account:
        raise ValidationError("to_member_account_id", "must differ from member_account_id")
    points = v.points(request.points, limit=limit)
    return Transfer(
        meta,
        account,
        points,
        entry_details(request.context),
        render=_render_entry(pb.TransferResponse),
        to_account=to,
    )


def exchange_out_command(request: pb.ExchangeOutRequest, *, limit: int) -> Exchange:
    meta = request_meta("ExchangeOut", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    partner = v.program_name(request.partner_id, "partner_id")
    points = v.points(request.points, limit=limit)
    return Exchange(
        meta,
        account,
        points,
        entry_details(request.context),
        render=_render_entry(pb.ExchangeOutResponse),
        partner=partner,
        direction="out",
    )


def exchange_in_command(request: pb.ExchangeInRequest, *, limit: int) -> Exchange:
    meta = request_meta("ExchangeIn", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    partner = v.program_name(request.partner_id, "partner_id")
    units = v.points(request.partner_units, limit=limit, field="partner_units")
    return Exchange(
        meta,
        account,
        0,
        entry_details(request.context),
        render=_render_entry(pb.ExchangeInResponse),
        partner=partner,
        direction="in",
        units=units,
    )


def refer_command(request: pb.ReferRequest, vault: MemberVault) -> Refer:
    meta = request_meta("Refer", request, request.idempotency_key, request.context)
    referrer = v.member_account_id(request.member_account_id)
    referred = v.member_account_id(request.referred_member_account_id, "referred_member_account_id")
    if referrer == referred:
        raise ValidationError("referred_member_account_id", "must differ from the referrer")
    tokens = []
    for name in ("device_id", "referrer_device_id"):
        value = getattr(request, name)
        if value and not (len(value) <= 128 and value.isascii() and value.isprintable()):
            raise ValidationError(name, "must be printable ASCII, at most 128 characters")
        tokens.append(vault.token(DEVICE_TOKEN_KIND, value) if value else b"")
    return Refer(meta, referrer, referred, tokens[0], tokens[1], render=render_referred)


def render_referred(outcome: Outcome) -> bytes:
    assert isinstance(outcome, Referred)
    return pb.ReferResponse(
        member_account_id=outcome.referrer, referred_member_account_id=outcome.referred
    ).SerializeToString(deterministic=True)


def reverse_command(request: pb.ReverseRequest, *, limit: int) -> Reverse:
    meta = request_meta("Reverse", request, request.idempotency_key, request.context)
    original = v.sequence(request.original_sequence, "original_sequence")
    points = v.points(request.points, limit=limit) if request.HasField("points") else None
    account = v.member_account_id(request.member_account_id)
    return Reverse(
        meta,
        account,
        original,
        points,
        entry_details(request.context),
        render=_render_entry(pb.ReverseResponse),
    )


def render_open_account(outcome: Outcome) -> bytes:
    assert isinstance(outcome, AccountOpened)
    return pb.OpenAccountResponse(member_account_id=outcome.account_id).SerializeToString(
        deterministic=True
    )


def timestamp(time_us: int) -> Timestamp:
    return Timestamp(seconds=time_us // 1_000_000, nanos=(time_us % 1_000_000) * 1000)


def balance_message(account: str, balance: BalanceView, as_of: int) -> pb.Balance:
    return pb.Balance(
        member_account_id=account,
        points=balance.total,
        as_of_sequence=as_of,
        available=balance.available,
        pending=balance.pending,
        held=balance.held,
        expiring=[
            pb.ExpiringPoints(expires=timestamp(when), points=n) for when, n in balance.expiring
        ],
    )


@dataclass(frozen=True, slots=True)
class _EntryRenderer:
    """Renders an Appended outcome as the named response message. A plain
    object rather than a closure, so commands can be pickled to the writer
    process (ledger/service/writer_link.py)."""

    response: str  # message name in loyalty.ledger.v1

    def __call__(self, outcome: Outcome) -> bytes:
        assert isinstance(outcome, Appended)
        response = getattr(pb, self.response)(
            entry=entry_message(StoredEntry(outcome.entry, outcome.hash)),
            balance=balance_message(
                outcome.member_account, outcome.balance, outcome.entry.sequence
            ),
        )
        if isinstance(response, pb.EarnResponse):
            response.rules.extend(pb.AppliedRule(rule_id=r, points=n) for r, n in outcome.rules)
        elif isinstance(response, pb.HoldResponse):
            response.hold_sequence = outcome.entry.sequence
            response.expires.CopyFrom(timestamp(outcome.hold_expires_us))
        elif isinstance(response, pb.ExchangeOutResponse):
            response.partner_units = outcome.partner_units
        elif isinstance(response, pb.RedeemResponse) and outcome.entry.kind == KIND_SHORTFALL:
            for p in outcome.entry.postings:
                if is_shortfall_account(p.from_account):
                    response.shortfall_points = p.points
                    response.shortfall_account = p.from_account
        return bytes(response.SerializeToString(deterministic=True))


def _render_entry(response_type: Callable[..., Message]) -> Renderer:
    return _EntryRenderer(response_type.__name__)


def entry_message(stored: StoredEntry, details: EntryDetails | None = None) -> pb.Entry:
    """The entry as sent: the sealed details bytes always (so the hash can be
    recomputed without being able to read them), their content only when
    the caller passes it opened (a read for a purpose that shows order
    details). Clear details (format 0x01, accounts from before data keys)
    are never sent raw unless shown."""
    entry: JournalEntry = stored.entry
    if entry.kind == KIND_PROFILE:  # digests of ciphertexts only: always shown
        details = EntryDetails()
    withheld = details is None and bool(entry.details)
    details = details or EntryDetails()
    message = pb.Entry(
        sequence=entry.sequence,
        time=Timestamp(
            seconds=entry.time_us // 1_000_000, nanos=(entry.time_us % 1_000_000) * 1000
        ),
        kind=_KINDS.get(entry.kind, pb.ENTRY_KIND_UNSPECIFIED),
        postings=[
            pb.Posting(from_account=p.from_account, to_account=p.to_account, points=p.points)
            for p in entry.postings
        ],
        channel_id=entry.channel_id,
        store_id=details.store_id,
        external_transaction_id=details.external_transaction_id,
        reverses_sequence=entry.reverses,
        prev_hash=entry.prev_hash,
        hash=stored.stored_hash,
        details=entry.details if is_sealed(entry.details) or not withheld else b"",
        details_withheld=withheld,
    )
    if details.purchase_currency:
        message.purchase.CopyFrom(
            pb.Money(
                minor_units=details.purchase_minor_units, currency_code=details.purchase_currency
            )
        )
    return message


def encode_page_token(before_sequence: int) -> str:
    raw = _PAGE_TOKEN.pack(_PAGE_TOKEN_VERSION, before_sequence)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> int | None:
    """The sequence to page before, or None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, before = _PAGE_TOKEN.unpack(raw)
    except (ValueError, struct.error):
        raise ValidationError("page_token", "is not a token returned by ListEntries") from None
    if version != _PAGE_TOKEN_VERSION or not 1 < before < 2**63:
        raise ValidationError("page_token", "is not a token returned by ListEntries")
    return int(before)
