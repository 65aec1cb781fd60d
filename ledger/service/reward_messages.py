"""Requests and responses of loyalty.rewards.v1.RewardService: validation
into commands, and how outcomes are rendered (docs/program-rules.md §11).

A response the appender stores with the idempotency key never holds a
voucher code: the servicer adds it (and the reward's name) after the
fact, from the voucher's sequence, so the database holds no redeemable
code and a replay renders the same bytes as the first answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loyalty.rewards.v1 import rewards_pb2 as rpb

from audit.chain import StoredEntry
from ledger import validation as v
from ledger.commands import (
    CancelVoucher,
    ClaimReward,
    Outcome,
    RedeemVoucher,
    VoucherChanged,
)
from ledger.errors import NotFoundError, ValidationError
from ledger.keys import voucher_code
from ledger.program.config import Program, Reward
from ledger.program.vouchers import CANCELLED, EXPIRED, ISSUED, REDEEMED
from ledger.service.messages import (
    balance_message,
    entry_details,
    entry_message,
    request_meta,
    timestamp,
)
from ledger.storage.journal_reads import VoucherRow

STATES = {
    ISSUED: rpb.VOUCHER_STATE_ISSUED,
    REDEEMED: rpb.VOUCHER_STATE_REDEEMED,
    EXPIRED: rpb.VOUCHER_STATE_EXPIRED,
    CANCELLED: rpb.VOUCHER_STATE_CANCELLED,
}
MAX_CODE_TEXT = 64  # a code as typed or scanned, dashes and prefix included


def claim_command(request: rpb.ClaimRewardRequest) -> ClaimReward:
    meta = request_meta("ClaimReward", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    reward = v.program_name(request.reward_id, "reward_id")
    return ClaimReward(
        meta, account, reward, entry_details(request.context), _Render("ClaimRewardResponse")
    )


def redeem_command(request: rpb.RedeemVoucherRequest, secret: bytes) -> RedeemVoucher:
    meta = request_meta("RedeemVoucher", request, request.idempotency_key, request.context)
    entry_details(request.context)  # the same rules for store and order ids
    return RedeemVoucher(meta, voucher_of(request.code, secret), _Render("RedeemVoucherResponse"))


def cancel_command(request: rpb.CancelVoucherRequest) -> CancelVoucher:
    meta = request_meta("CancelVoucher", request, request.idempotency_key, request.context)
    account = v.member_account_id(request.member_account_id)
    seq = v.sequence(request.voucher_sequence, "voucher_sequence")
    entry_details(request.context)
    return CancelVoucher(meta, account, seq, _Render("CancelVoucherResponse"))


def voucher_of(code: str, secret: bytes) -> int:
    """The voucher a code names: INVALID_ARGUMENT if it is not well formed
    (mistyped), NOT_FOUND if the ledger did not issue it."""
    if not isinstance(code, str) or not code:
        raise ValidationError("code", "is required")
    if len(code) > MAX_CODE_TEXT:
        raise ValidationError("code", f"must be at most {MAX_CODE_TEXT} characters")
    try:
        seq = voucher_code.sequence_of(secret, code)
    except voucher_code.CodeError as err:
        field, _, rule = str(err).partition(": ")
        raise ValidationError(field, rule) from None
    if seq is None:
        raise NotFoundError("code: no such voucher")
    return seq


@dataclass(frozen=True, slots=True)
class _Render:
    """Renders a VoucherChanged outcome as the named response (picklable,
    for the writer process)."""

    response: str  # message name in loyalty.rewards.v1

    def __call__(self, outcome: Outcome) -> bytes:
        assert isinstance(outcome, VoucherChanged)
        voucher = outcome.voucher
        message = getattr(rpb, self.response)(
            voucher=rpb.Voucher(
                voucher_sequence=voucher.sequence,
                reward_id=voucher.reward_id,
                member_account_id=voucher.owner,
                points=voucher.points,
                state=STATES[outcome.state],
                valid_until=timestamp(voucher.valid_until_us),
                ended_by_sequence=0 if outcome.state == ISSUED else outcome.entry.sequence,
            ),
            entry=entry_message(StoredEntry(outcome.entry, outcome.hash)),
        )
        if outcome.balance is not None:
            message.balance.CopyFrom(
                balance_message(voucher.owner, outcome.balance, outcome.entry.sequence)
            )
        return bytes(message.SerializeToString(deterministic=True))


def complete(data: bytes, response: Any, program: Program, secret: bytes | None) -> bytes:
    """A stored response with what it never stores: the reward's name, and
    (``secret`` given: a claim) the voucher's code."""
    message = response.FromString(data)
    reward = program.reward(message.voucher.reward_id)
    message.voucher.reward_name = reward.name if reward is not None else ""
    if secret is not None:
        code = voucher_code.make_code(secret, message.voucher.voucher_sequence)
        message.voucher.code = voucher_code.display(code)
        message.voucher.qr_text = voucher_code.qr_text(code)
    return bytes(message.SerializeToString(deterministic=True))


def voucher_message(row: VoucherRow, program: Program, secret: bytes | None) -> rpb.Voucher:
    reward = program.reward(row.reward_id)
    message = rpb.Voucher(
        voucher_sequence=row.sequence,
        reward_id=row.reward_id,
        reward_name=reward.name if reward is not None else "",
        member_account_id=row.owner,
        points=row.points,
        state=STATES.get(row.state, rpb.VOUCHER_STATE_UNSPECIFIED),
        valid_until=timestamp(row.valid_until_us),
        ended_by_sequence=row.end_sequence,
    )
    if secret is not None:
        code = voucher_code.make_code(secret, row.sequence)
        message.code = voucher_code.display(code)
        message.qr_text = voucher_code.qr_text(code)
    return message


def reward_message(reward: Reward, taken: int, now_us: int) -> rpb.Reward:
    return rpb.Reward(
        reward_id=reward.id,
        name=reward.name,
        points=reward.points,
        unlimited=reward.stock is None,
        stock_left=max(0, reward.stock - taken) if reward.stock is not None else 0,
        offered=reward.offered(now_us),
        valid_days=reward.valid_days,
        claim_channels=list(reward.claim_channels),
        redeem_channels=list(reward.redeem_channels),
    )
