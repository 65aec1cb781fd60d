"""A store paying for the shortfall points of redemptions it honoured
offline (docs/outage.md): never more than it owes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.accounts import KIND_SETTLEMENT, PROGRAM_SETTLED
from audit.entry_format import Posting
from ledger.commands import EntryDetails, SettleShortfall, ShortfallSettled
from ledger.errors import PreconditionError

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def settle_shortfall(planner: BatchPlanner, cmd: SettleShortfall) -> ShortfallSettled:
    owed = -planner.balance_of(cmd.store_account)
    if cmd.points > owed:
        raise PreconditionError(
            f"points: more than the store owes ({owed})",
            metadata={"owed": str(owed)},
        )
    posting = Posting(PROGRAM_SETTLED, cmd.store_account, cmd.points)
    entry, _ = planner.append(
        KIND_SETTLEMENT, cmd.meta.channel_id, 0, [posting], b"", EntryDetails()
    )
    planner.move(PROGRAM_SETTLED, -cmd.points, entry.sequence)
    planner.move(cmd.store_account, cmd.points, entry.sequence)
    return ShortfallSettled(cmd.store_account, cmd.points, owed - cmd.points, entry.sequence)
