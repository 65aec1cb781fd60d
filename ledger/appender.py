"""Group commit: one thread appends every mutating command to the journal.

Request threads ``submit`` a command and wait on its future. The appender
thread takes whatever is queued (up to ``max_batch``), opens one
transaction, takes the writers' lock (the chain head), loads what the batch
needs, lets the ``BatchPlanner`` decide each command in arrival order,
writes the results and commits once, durably. Only then are the futures
resolved: a caller never sees a result that is not on disk.

Failure handling: a command the planner refuses fails alone and leaves no
trace. If the transaction itself fails (storage error), the batch is retried
command by command, so one bad command cannot sink its neighbours; whatever
still fails gets ``UnavailableError`` (retryable: nothing was written).

Several server processes may each run an appender on one PostgreSQL
database: the head row lock makes their transactions take turns, and each
re-reads the head and balances after taking it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import structlog

from ledger.commands import PROGRAM_ACCOUNTS, Command, Earn, Redeem, Reverse
from ledger.errors import LedgerError, UnavailableError
from ledger.planner import BatchPlanner
from ledger.storage import journal_writes as sql
from ledger.storage.database import Database

log = structlog.get_logger(__name__)

Clock = Callable[[], int]  # microseconds since the Unix epoch


def system_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class _Item:
    command: Command
    future: Future[bytes]


_STOP = object()


class Appender:
    def __init__(
        self, *, db: Database, clock: Clock = system_clock_us, max_batch: int = 512
    ) -> None:
        self._db = db
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="journal-appender", daemon=True)
        self._thread.start()
        self.batches = 0  # counters for benchmarks and tests
        self.commands = 0

    def submit(self, command: Command) -> Future[bytes]:
        """Queue a command; the future gives its serialized response or a LedgerError."""
        future: Future[bytes] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(UnavailableError("server is shutting down"))
                return future
            self._queue.put(_Item(command, future))
        return future

    def close(self) -> None:
        """Finish everything already submitted, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._process([b for b in batch if isinstance(b, _Item)])

    def _process(self, batch: list[_Item]) -> None:
        try:
            results = self._commit(batch)
        except Exception:
            if len(batch) > 1:
                log.warning("batch_failed_retrying_singly", size=len(batch), exc_info=True)
                for item in batch:
                    self._process([item])
                return
            log.error("append_failed", exc_info=True)
            batch[0].future.set_exception(
                UnavailableError("journal: storage error, nothing was written; retry")
            )
            return
        self.batches += 1
        self.commands += len(batch)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, LedgerError):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _commit(self, batch: list[_Item]) -> list[bytes | LedgerError]:
        commands = [item.command for item in batch]
        with self._db.writer.begin() as conn:
            head = sql.lock_head(conn)
            originals = sql.load_originals(
                conn, {c.original_sequence for c in commands if isinstance(c, Reverse)}
            )
            wanted = set(PROGRAM_ACCOUNTS)
            wanted.update(c.account for c in commands if isinstance(c, Earn | Redeem))
            for o in originals.values():
                wanted.update((o.posting.from_account, o.posting.to_account))
            planner = BatchPlanner(
                head=head,
                now_us=self._clock(),
                balances=sql.load_balances(conn, wanted),
                originals=originals,
                idempotency=sql.load_idempotency(
                    conn, {(c.meta.channel_id, c.meta.idempotency_key) for c in commands}
                ),
            )
            results: list[bytes | LedgerError] = []
            for command in commands:
                try:
                    results.append(planner.apply(command))
                except LedgerError as err:
                    results.append(err)
            sql.write_batch(conn, planner)
        return results


__all__ = ["Appender", "Clock", "system_clock_us"]
