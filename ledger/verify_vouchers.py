"""What ``loyalty-ledger verify`` checks of vouchers beside the journal
(docs/program-rules.md §11): the tables the ledger decides from agree with
the journal's voucher entries.

- ``vouchers`` holds exactly the ``voucher_issue`` entries, each with the
  owner and reward its postings name;
- ``voucher_ends`` holds exactly the voucher ends (redeem, expire,
  cancel): the voucher each names, the entry that ended it, its state (a
  row deleted to make a voucher redeemable again is found here, before a
  second redemption would be found in the journal);
- ``reward_stock`` is, per reward, the vouchers issued and not expired or
  cancelled (a count edited down to sell more than the stock is found).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from audit.accounts import (
    KIND_VOUCHER_CANCEL,
    KIND_VOUCHER_EXPIRE,
    KIND_VOUCHER_ISSUE,
    KIND_VOUCHER_REDEEM,
    VOUCHER_PREFIX,
    owner_of,
)
from ledger.program.vouchers import CANCELLED, EXPIRED, REDEEMED
from ledger.storage.database import Database
from ledger.storage.schema import journal_entries, journal_postings, reward_stock, voucher_ends
from ledger.storage.schema import vouchers as vouchers_table

ENDS = {KIND_VOUCHER_REDEEM: REDEEMED, KIND_VOUCHER_EXPIRE: EXPIRED, KIND_VOUCHER_CANCEL: CANCELLED}


@dataclass(frozen=True, slots=True)
class VoucherProblem:
    voucher: int | None
    check: str
    message: str

    def __str__(self) -> str:
        where = f"voucher {self.voucher}" if self.voucher is not None else "vouchers"
        return f"{where}: {self.check}: {self.message}"


def verify_vouchers(db: Database) -> tuple[int, list[VoucherProblem]]:
    """(vouchers in the journal, problems)."""
    problems: list[VoucherProblem] = []
    with db.reader.connect() as conn:
        issued: dict[int, tuple[str, str]] = {}  # seq -> (owner, reward)
        for seq, source, target in conn.execute(
            sa.select(journal_postings.c.seq, journal_postings.c.from_account,
                      journal_postings.c.to_account)
            .join(journal_entries, journal_entries.c.seq == journal_postings.c.seq)
            .where(journal_entries.c.kind == KIND_VOUCHER_ISSUE)
        ):  # fmt: skip
            issued.setdefault(int(seq), (owner_of(source), target.removeprefix(VOUCHER_PREFIX)))
        ends = {
            int(reverses): (int(seq), ENDS[kind])
            for seq, kind, reverses in conn.execute(
                sa.select(
                    journal_entries.c.seq, journal_entries.c.kind, journal_entries.c.reverses
                ).where(journal_entries.c.kind.in_(list(ENDS)))
            )
        }
        rows = {
            int(seq): (owner, reward)
            for seq, owner, reward in conn.execute(
                sa.select(vouchers_table.c.seq, vouchers_table.c.owner, vouchers_table.c.reward_id)
            )
        }
        ended = {
            int(seq): (int(end), state)
            for seq, end, state in conn.execute(
                sa.select(voucher_ends.c.seq, voucher_ends.c.end_seq, voucher_ends.c.state)
            )
        }
        stock = {
            reward: int(taken)
            for reward, taken in conn.execute(
                sa.select(reward_stock.c.reward_id, reward_stock.c.taken)
            )
        }
    for seq in sorted(issued.keys() | rows.keys()):
        if issued.get(seq) != rows.get(seq):
            what = (
                "has no row in vouchers"
                if seq not in rows
                else "row names no voucher_issue entry"
                if seq not in issued
                else "row names another owner or reward than its entry"
            )
            problems.append(VoucherProblem(seq, "index", what))
    for seq in sorted(ends.keys() | ended.keys()):
        if ends.get(seq) != ended.get(seq):
            what = (
                "ended in the journal, but voucher_ends has no row for it"
                if seq not in ended
                else "voucher_ends says it ended, but no journal entry ended it"
                if seq not in ends
                else "voucher_ends names another entry or state than the journal"
            )
            problems.append(VoucherProblem(seq, "ends", what))
    taken = Counter(
        reward for seq, (_, reward) in issued.items() if ends.get(seq, (0, REDEEMED))[1] == REDEEMED
    )
    for reward in sorted(taken.keys() | stock.keys()):
        if taken.get(reward, 0) != stock.get(reward, 0):
            problems.append(
                VoucherProblem(
                    None,
                    "stock",
                    f"reward_stock of {reward} is {stock.get(reward, 0)}, the journal's "
                    f"vouchers take {taken.get(reward, 0)}",
                )
            )
    return len(issued), problems
