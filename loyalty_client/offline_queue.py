"""A store's offline queue: earns and redemptions recorded while the ledger
is unreachable, kept in a SQLite file on the till, and replayed through
ReplayOffline when it is back (docs/outage.md).

Every item gets its idempotency key and the time of the sale when it is
queued, so replaying is always safe: an item the ledger had in fact
received before the outage, or one replayed twice after a crash, returns
its first result and is applied once. An item leaves the queue only once
the ledger answered for it; one it refused stays, marked, for a person to
resolve (``refused()``, ``discard()``). The file holds account ids, points
and order ids, no personal data; it is created with mode 0600.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.ledger.v1 import ledger_pb2 as pb

from loyalty_client.requests import Requests

MAX_BATCH = 500  # ReplayOffline's limit per call

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    operation TEXT NOT NULL CHECK (operation IN ('earn', 'redeem')),
    request BLOB NOT NULL,
    occurred_us INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'applied', 'refused')),
    code INTEGER,
    message TEXT,
    response BLOB,
    answered_us INTEGER
)
"""


class Replayer(Protocol):
    def replay_offline(self, items: list[pb.ReplayItem]) -> pb.ReplayOfflineResponse: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    operation: str  # earn, redeem
    code: int  # google.rpc.Code: 0 applied (now or before)
    message: str  # why not, naming the field and the rule
    entry_sequence: int  # 0 when refused
    shortfall_points: int  # a redemption the member's points no longer covered

    @property
    def applied(self) -> bool:
        return self.code == 0


def _now_us() -> int:
    return time.time_ns() // 1000


def _timestamp(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


class OfflineQueue:
    def __init__(self, path: str | Path, *, channel_id: str, store_id: str = "") -> None:
        self.path = Path(path)
        self.requests = Requests(channel_id, store_id)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # queued means on disk
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> OfflineQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queueing ------------------------------------------------------------

    def _put(self, operation: str, request: pb.EarnRequest | pb.RedeemRequest, at_us: int) -> str:
        _check(operation, request, at_us)
        self._db.execute(
            "INSERT INTO items (key, operation, request, occurred_us) VALUES (?, ?, ?, ?)",
            (request.idempotency_key, operation, request.SerializeToString(), at_us),
        )
        return request.idempotency_key

    def earn(
        self,
        account: str,
        points: int = 0,
        *,
        purchase_minor: int | None = None,
        currency: str = "",
        categories: Iterable[str] = (),
        external_id: str = "",
        occurred_us: int | None = None,
        key: str | None = None,
    ) -> str:
        """Queue an earn made now (or at ``occurred_us``); its idempotency key."""
        request = self.requests.earn(
            key, account, points, purchase_minor, currency, categories, external_id
        )
        return self._put("earn", request, occurred_us or _now_us())

    def redeem(
        self,
        account: str,
        points: int,
        *,
        external_id: str = "",
        occurred_us: int | None = None,
        key: str | None = None,
    ) -> str:
        """Queue a redemption the till honoured offline; its idempotency key."""
        request = self.requests.redeem(key, account, points, external_id)
        return self._put("redeem", request, occurred_us or _now_us())

    # -- replay --------------------------------------------------------------

    def pending(self) -> int:
        return int(
            self._db.execute("SELECT count(*) FROM items WHERE state = 'queued'").fetchone()[0]
        )

    def replay(self, client: Replayer, batch: int = MAX_BATCH) -> list[Outcome]:
        """Send every queued item, oldest sale first, ``batch`` per call;
        the outcomes of this run. A call that fails (the ledger still down)
        raises, and its items stay queued, to be sent again with their keys."""
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch: must be 1..{MAX_BATCH}")
        outcomes: list[Outcome] = []
        while True:
            rows = self._db.execute(
                "SELECT id, key, operation, request, occurred_us FROM items"
                " WHERE state = 'queued' ORDER BY occurred_us, id LIMIT ?",
                (batch,),
            ).fetchall()
            if not rows:
                return outcomes
            items = []
            for _, _, operation, raw, at_us in rows:
                item = pb.ReplayItem(occurred_at=_timestamp(at_us))
                getattr(item, operation).MergeFromString(raw)
                items.append(item)
            response = client.replay_offline(items)
            if len(response.results) != len(rows):
                raise RuntimeError("ReplayOffline: one result per item expected")
            now = _now_us()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for (row_id, key, operation, _, _), result in zip(
                    rows, response.results, strict=True
                ):
                    answer = getattr(result, operation)
                    applied = result.code == 0
                    self._db.execute(
                        "UPDATE items SET state = ?, code = ?, message = ?, response = ?,"
                        " answered_us = ? WHERE id = ?",
                        (
                            "applied" if applied else "refused",
                            result.code,
                            result.message,
                            answer.SerializeToString() if applied else None,
                            now,
                            row_id,
                        ),
                    )
                    outcomes.append(_outcome(key, operation, result.code, result.message, answer))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def refused(self) -> list[Outcome]:
        """Items the ledger refused, for a person to resolve."""
        return self._answered("refused")

    def applied(self) -> list[Outcome]:
        return self._answered("applied")

    def _answered(self, state: str) -> list[Outcome]:
        out = []
        for key, operation, code, message, raw in self._db.execute(
            "SELECT key, operation, code, message, response FROM items WHERE state = ?"
            " ORDER BY occurred_us, id",
            (state,),
        ):
            answer = pb.EarnResponse() if operation == "earn" else pb.RedeemResponse()
            if raw:
                answer.MergeFromString(raw)
            out.append(_outcome(key, operation, code, message or "", answer))
        return out

    def discard(self, key: str) -> bool:
        """Drop a refused item once a person has dealt with it."""
        done = self._db.execute("DELETE FROM items WHERE key = ? AND state = 'refused'", (key,))
        return done.rowcount == 1

    def purge_applied(self, older_than_us: int) -> int:
        """Forget applied items answered before ``older_than_us``."""
        done = self._db.execute(
            "DELETE FROM items WHERE state = 'applied' AND answered_us < ?", (older_than_us,)
        )
        return int(done.rowcount)


MAX_CLOCK_SKEW_US = 5 * 60 * 1_000_000  # the ledger refuses sales further ahead than this


def _check(operation: str, request: pb.EarnRequest | pb.RedeemRequest, at_us: int) -> None:
    """Refuse, when queued, what the ledger would surely refuse on replay:
    the sale has already been made and nobody is at the till to fix it later."""
    if not request.member_account_id:
        raise ValueError("account: required")
    if isinstance(request, pb.EarnRequest):
        if request.points < 0 or (request.points == 0 and not request.HasField("purchase")):
            raise ValueError("points: must be > 0 (or 0 with purchase_minor to compute them)")
    elif request.points <= 0:
        raise ValueError(f"points: must be > 0 for {operation}")
    if at_us <= 0 or at_us > _now_us() + MAX_CLOCK_SKEW_US:
        raise ValueError("occurred_us: must be a time in microseconds, not in the future")


def _outcome(
    key: str, operation: str, code: int, message: str, answer: pb.EarnResponse | pb.RedeemResponse
) -> Outcome:
    shortfall = answer.shortfall_points if isinstance(answer, pb.RedeemResponse) else 0
    return Outcome(
        key=key,
        operation=operation,
        code=code,
        message=message,
        entry_sequence=answer.entry.sequence if code == 0 else 0,
        shortfall_points=shortfall,
    )
