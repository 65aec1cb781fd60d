"""Rewards and vouchers: claiming a reward of the catalogue (the member's
points into voucher:<reward>, while the reward is offered and in stock),
redeeming its voucher once in any channel the reward allows, cancelling
it (the points back to their lots), and expiry (docs/program-rules.md §11).

Stock and "once" hold across appenders: the batch decides under the
writers' lock from counts and voucher states read inside it, and the
tables behind them have the voucher's sequence as primary key
(``voucher_ends``) and the reward as key of its count (``reward_stock``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import (
    KIND_VOUCHER_CANCEL,
    KIND_VOUCHER_EXPIRE,
    KIND_VOUCHER_ISSUE,
    KIND_VOUCHER_REDEEM,
    PROGRAM_EXPIRED,
    available_form,
    voucher_account,
)
from audit.entry_format import Posting
from ledger.commands import (
    PROGRAM_REDEEMED,
    CancelVoucher,
    ClaimReward,
    EntryDetails,
    RedeemVoucher,
    VoucherChanged,
)
from ledger.errors import NotFoundError, RewardUnavailableError, VoucherEndedError
from ledger.planner.records import SYSTEM
from ledger.program.vouchers import (
    CANCELLED,
    EXPIRED,
    ISSUED,
    REDEEMED,
    VoucherEnd,
    VoucherState,
)

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner

DAY_US = 86_400_000_000


def claim(planner: BatchPlanner, cmd: ClaimReward) -> VoucherChanged:
    family = planner.family_of(cmd.account)
    reward = planner.program.reward(cmd.reward_id)
    if reward is None:
        raise NotFoundError("reward_id: no such reward in the catalogue")
    channel = cmd.meta.channel_id
    if not reward.offered(planner.now_us):
        raise RewardUnavailableError(
            "REWARD_NOT_OFFERED", "reward_id: the reward is not offered now", {}
        )
    if reward.claim_channels and channel not in reward.claim_channels:
        raise RewardUnavailableError(
            "REWARD_NOT_IN_CHANNEL",
            "context.channel_id: the reward cannot be claimed through this channel",
            {"channels": ",".join(reward.claim_channels)},
        )
    taken = planner.rewards_taken.get(reward.id, 0) + planner.stock_deltas.get(reward.id, 0)
    if reward.stock is not None and taken >= reward.stock:
        raise RewardUnavailableError(
            "OUT_OF_STOCK", "reward_id: out of stock", {"stock": str(reward.stock)}
        )
    if reward.per_member is not None:
        held = sum(
            1
            for v in planner.vouchers.values()
            if v.owner == family.owner and v.reward_id == reward.id
        )
        if held >= reward.per_member:
            raise RewardUnavailableError(
                "REWARD_LIMIT",
                f"reward_id: the member holds {held} open vouchers of it, the most allowed",
                {"per_member": str(reward.per_member)},
            )
    target = voucher_account(reward.id)
    postings = [Posting(a, target, n) for a, n in planner.take(family, reward.points)]
    appended = planner.post(KIND_VOUCHER_ISSUE, channel, 0, postings, cmd.details, family.owner)
    seq = appended.entry.sequence
    voucher = VoucherState(
        seq, family.owner, reward.id, planner.now_us + reward.valid_days * DAY_US, tuple(postings)
    )
    planner.vouchers[seq] = voucher
    planner.new_vouchers.append(voucher)
    planner.stock_deltas[reward.id] = planner.stock_deltas.get(reward.id, 0) + 1
    return VoucherChanged(appended.entry, appended.hash, voucher, ISSUED, appended.balance)


def redeem(planner: BatchPlanner, cmd: RedeemVoucher) -> VoucherChanged:
    voucher = _open(planner, cmd.voucher)
    reward = planner.program.reward(voucher.reward_id)
    channels = reward.redeem_channels if reward is not None else ()
    if channels and cmd.meta.channel_id not in channels:
        raise RewardUnavailableError(
            "REWARD_NOT_IN_CHANNEL",
            "code: the voucher cannot be redeemed through this channel",
            {"channels": ",".join(channels)},
        )
    posting = Posting(voucher_account(voucher.reward_id), PROGRAM_REDEEMED, voucher.points)
    return _end(planner, voucher, KIND_VOUCHER_REDEEM, cmd.meta.channel_id, [posting], REDEEMED)


def cancel(planner: BatchPlanner, cmd: CancelVoucher) -> VoucherChanged:
    voucher = _open(planner, cmd.voucher, member=cmd.account)
    planner.family_of(voucher.owner)  # an erased member's points cannot come back
    source = voucher_account(voucher.reward_id)
    postings = [Posting(source, available_form(p.from_account), p.points) for p in voucher.postings]
    changed = _end(planner, voucher, KIND_VOUCHER_CANCEL, cmd.meta.channel_id, postings, CANCELLED)
    balance = planner.families[voucher.owner].settled_view()
    return VoucherChanged(changed.entry, changed.hash, voucher, CANCELLED, balance)


def expire_due(planner: BatchPlanner, owner: str) -> None:
    """Expire ``owner``'s open vouchers past their validity (the settle)."""
    due = [
        v
        for v in planner.vouchers.values()
        if v.owner == owner and v.valid_until_us <= planner.now_us
    ]
    for voucher in sorted(due, key=lambda v: v.sequence):
        posting = Posting(voucher_account(voucher.reward_id), PROGRAM_EXPIRED, voucher.points)
        _end(planner, voucher, KIND_VOUCHER_EXPIRE, SYSTEM, [posting], EXPIRED)


def _open(planner: BatchPlanner, seq: int, member: str = "") -> VoucherState:
    """The open voucher ``seq`` (of ``member`` when given), or why not."""
    voucher = planner.vouchers.get(seq)
    if voucher is not None and (not member or voucher.owner == member):
        return voucher
    ended = planner.ended_vouchers.get(seq)
    if ended is not None and (not member or ended.owner == member):
        raise VoucherEndedError(ended.state, ended.end_sequence)
    if member:  # another member's voucher: as if there were none
        raise NotFoundError("voucher_sequence: no voucher of member_account_id with this sequence")
    raise NotFoundError("code: no such voucher")


def _end(
    planner: BatchPlanner,
    voucher: VoucherState,
    kind: str,
    channel: str,
    postings: list[Posting],
    state: str,
) -> VoucherChanged:
    entry, digest = planner.append(kind, channel, voucher.sequence, postings, b"", EntryDetails())
    for p in postings:
        planner.move(p.from_account, -p.points, entry.sequence)
        planner.move(p.to_account, p.points, entry.sequence)
    del planner.vouchers[voucher.sequence]
    end = VoucherEnd(voucher.sequence, voucher.owner, voucher.reward_id, entry.sequence, state)
    planner.ended_vouchers[voucher.sequence] = end
    planner.voucher_ends.append(end)
    if state != REDEEMED:  # back in stock: it was never handed over
        deltas = planner.stock_deltas
        deltas[voucher.reward_id] = deltas.get(voucher.reward_id, 0) - 1
    return VoucherChanged(entry, digest, voucher, state, None)
