"""``loyalty-ledger settle-shortfall``: record that a store paid for (part
of) its outage shortfall (docs/outage.md). One ``settlement`` journal entry
(program:settled -> shortfall:<store>), never more than the store owes;
the reference (an invoice or payment id) is the idempotency key, so running
the same settlement twice records it once. Who ran it goes to the access
log."""

from __future__ import annotations

import hashlib
import json

from audit.accounts import MAX_SHORTFALL_STORE, shortfall_account
from ledger.appender import Appender
from ledger.commands import (
    SETTLEMENT_CHANNEL,
    Outcome,
    RequestMeta,
    SettleShortfall,
    ShortfallSettled,
)
from ledger.errors import ValidationError
from ledger.reports.cli import cli_decision
from ledger.storage.database import Database
from ledger.validation import idempotency_key


class _Render:
    """The settlement's answer, as JSON (picklable, like every renderer)."""

    def __call__(self, outcome: Outcome) -> bytes:
        assert isinstance(outcome, ShortfallSettled)
        return json.dumps(
            {
                "sequence": outcome.sequence,
                "store": outcome.store_account.split(":", 1)[1],
                "points": outcome.points,
                "owed": outcome.owed,
            },
            sort_keys=True,
        ).encode()


def settlement_command(store: str, points: int, reference: str) -> SettleShortfall:
    try:
        account = shortfall_account(store)
    except ValueError:
        rule = (
            f"must be a store or channel id: 1-{MAX_SHORTFALL_STORE} characters of a-z, 0-9, "
            "'.', '_', '-', starting with a-z or 0-9"
        )
        raise ValidationError("store", rule) from None
    if points <= 0:
        raise ValidationError("points", "must be > 0")
    key = idempotency_key(reference)
    digest = hashlib.sha256(
        b"SettleShortfall\x00" + json.dumps([account, points, key]).encode()
    ).digest()
    return SettleShortfall(
        RequestMeta(SETTLEMENT_CHANNEL, key, digest), account, points, render=_Render()
    )


def settle_shortfall(
    db: Database, *, store: str, points: int, reference: str, principal: str
) -> dict[str, object]:
    command = settlement_command(store, points, reference)
    appender = Appender(db=db)
    try:
        answer = json.loads(appender.append_blocking(command))
        reason = f"{store} {points} {reference}"
        appender.record_blocking(cli_decision(principal, "admin", "cli/settle-shortfall", reason))
    finally:
        appender.close()
    return dict(answer)
