"""The ledger's DecisionSink: access decisions into ``access_decisions``.

Decisions are queued and written by one thread in batches (one multi-row
INSERT per batch, at most ``FLUSH_INTERVAL`` after the decision, and on
``close``), so recording costs a call a queue put, not a transaction.
Not yet fail-closed: if a batch cannot be written it is logged and retried
once; issue #5 moves the record into the operation's own transaction.
"""

from __future__ import annotations

import queue
import threading

import structlog

from audit.decisions import AccessDecision
from ledger.storage import journal_writes as sql
from ledger.storage.database import Database

log = structlog.get_logger(__name__)

FLUSH_INTERVAL = 0.2  # seconds a decision may wait before it is written
COLUMNS = (
    "time_us",
    "request_id",
    "principal",
    "role",
    "method",
    "decision",
    "reason",
    "purpose",
    "member_account_id",
    "fields",
)
_STOP = object()


class DecisionRecorder:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: queue.SimpleQueue[AccessDecision | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="decision-recorder", daemon=True)
        self._thread.start()

    def record(self, decision: AccessDecision) -> None:
        self._queue.put(decision)

    def close(self) -> None:
        """Write everything recorded so far, then stop."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[AccessDecision] = []
            try:
                item = self._queue.get(timeout=FLUSH_INTERVAL)
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if batch:
                self._write(batch)

    def _write(self, batch: list[AccessDecision], attempts: int = 2) -> None:
        rows = [tuple(getattr(d, c) for c in COLUMNS) for d in batch]
        for attempt in range(attempts):
            raw = self._db.writer.raw_connection()
            try:
                tx = sql.WriteTx(raw.driver_connection, self._db.writer.dialect.name)
                tx.begin()
                sql.insert_rows(tx, "access_decisions", COLUMNS, rows)
                raw.commit()
                return
            except Exception:
                raw.rollback()
                log.error("decisions_not_written", size=len(batch), attempt=attempt, exc_info=True)
            finally:
                raw.close()
        if len(batch) > 1:  # one bad record must not take its batch with it
            for decision in batch:
                self._write([decision], attempts=1)
