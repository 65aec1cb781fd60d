"""The shortfall report: what each store handed over in an outage beyond
the member's points (``shortfall`` entries, docs/outage.md) and what it
has paid (``settlement`` entries), for the store and finance. From the
journal alone: every such entry in the span, with its sequence and hash (so
each line can be checked against the verifiable log), and each store's
total owed now.

No personal data: member account ids are pseudonymous and entry details
(order numbers, which are sealed under the member's key) are not opened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from audit.accounts import KIND_SETTLEMENT, KIND_SHORTFALL, SHORTFALL_PREFIX
from audit.entry_format import JournalEntry, is_member_account
from ledger.storage.database import Database
from ledger.storage.journal_reads import JournalReads
from ledger.storage.schema import accounts

VERSION = 1
PAGE = 100


def _iso(time_us: int) -> str:
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, tz=dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _stores(db: Database, store: str | None) -> dict[str, int]:
    """Shortfall accounts (or the one of ``store``) and what each owes now."""
    with db.reader.connect() as conn:
        query = sa.select(accounts.c.account_id, accounts.c.balance).where(
            accounts.c.account_id >= SHORTFALL_PREFIX,
            accounts.c.account_id < SHORTFALL_PREFIX[:-1] + ";",  # ':' + 1
        )
        if store is not None:
            query = query.where(accounts.c.account_id == SHORTFALL_PREFIX + store)
        return {str(a): -int(b) for a, b in conn.execute(query)}


def _line(account: str, entry: JournalEntry, stored_hash: bytes) -> dict[str, Any]:
    """One shortfall or settlement entry of a store's account."""
    points = sum(p.points for p in entry.postings if account in (p.from_account, p.to_account))
    covered = [p for p in entry.postings if is_member_account(p.from_account)]
    members = sorted({p.from_account.split("/", 1)[0] for p in covered})
    return {
        "store": account.removeprefix(SHORTFALL_PREFIX),
        "kind": entry.kind,  # shortfall (the store owes more) or settlement (it paid)
        "sequence": entry.sequence,
        "time": _iso(entry.time_us),
        "channel_id": entry.channel_id,
        "points": points,
        "member_points": sum(p.points for p in covered),
        "member_account_id": members[0] if members else "",
        "hash": stored_hash.hex(),
    }


def build_shortfall_report(
    db: Database, *, from_us: int, to_us: int, store: str | None, now_us: int
) -> dict[str, Any]:
    reads = JournalReads(db.reader)
    owed = _stores(db, store)
    lines: list[dict[str, Any]] = []
    for account in sorted(owed):
        before: int | None = None
        while True:
            page = reads.history(account, before, PAGE) or []
            for stored in page:
                entry = stored.entry
                if not from_us <= entry.time_us < to_us:
                    continue
                lines.append(_line(account, stored.entry, stored.stored_hash))
            if len(page) < PAGE:
                break
            before = page[-1].entry.sequence
    lines.sort(key=lambda line: line["sequence"])
    by_store: dict[str, dict[str, int]] = {}
    for account, points in sorted(owed.items()):
        name = account.removeprefix(SHORTFALL_PREFIX)
        mine = [line for line in lines if line["store"] == name]
        short = [line for line in mine if line["kind"] == KIND_SHORTFALL]
        by_store[name] = {
            "owed_now": points,
            "shortfalls_in_span": len(short),
            "shortfall_points_in_span": sum(line["points"] for line in short),
            "settled_points_in_span": sum(
                line["points"] for line in mine if line["kind"] == KIND_SETTLEMENT
            ),
        }
    return {
        "report": "shortfalls",
        "version": VERSION,
        "generated_at": _iso(now_us),
        "span": {"from": _iso(from_us), "to": _iso(to_us)},
        "store": store,
        "by_store": by_store,
        "entries": lines,
    }


def blocks(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[object]]]]:
    """The CSV blocks (ledger/reports/render.py): per store, then per entry."""
    totals = ["owed_now", "shortfalls_in_span", "shortfall_points_in_span"]
    totals.append("settled_points_in_span")
    stores = [[name, *(s[k] for k in totals)] for name, s in report["by_store"].items()]
    columns = ["store", "kind", "sequence", "time", "channel_id", "points"]
    columns += ["member_points", "member_account_id", "hash"]
    return [
        ("by_store", ["store", *totals], stores),
        ("entries", columns, [[line[c] for c in columns] for line in report["entries"]]),
    ]
