"""Crash cycles (issue 14, item 7): ``loyalty-ledger serve`` (TLS, tokens)
is SIGKILLed at a random moment while client threads earn, redeem, hold,
capture and release, each call with its own idempotency key, on SQLite and
on PostgreSQL.

Each cycle records what was acknowledged (OK), refused (FAILED_PRECONDITION:
not enough points) and unknown (cut off by the kill). After the kill
``loyalty-ledger verify`` must pass on the database; after the restart every
unknown call is sent again with the same key, and then:

- every OK answer's entry is in the journal at its sequence with its hash,
  no two answers share a sequence, and the journal holds nothing else;
- what the journal held at the kill is exactly the acknowledged calls plus
  the unknown ones whose retry replayed an entry from before the kill;
- a retry of an acknowledged call replays its entry;
- every member's balance (points, held, available) is the sum of the OK
  postings, and none is negative (no overdraft).

Every third cycle runs ``serve --workers 2`` and kills the writer. Another
test kills one worker, not the writer, under load: the rest keeps serving.

``LEDGER_CRASH_CYCLES`` (default 2 per backend), ``LEDGER_CRASH_THREADS``
(default 8) and ``LEDGER_CRASH_SEED`` (default random, printed) set the run;
docs/soak.md has the long configuration. A PostgreSQL stop and start under
load is tests/test_readiness.py.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from access.principal import Role
from tests.support.postgres import PostgresCluster
from tests.support.process import run_cli
from tests.support.secure_serve import JournalRows, SecureServe, Tokens, make_certs

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("LEDGER_CRASH_CYCLES", "2"))
THREADS = int(os.environ.get("LEDGER_CRASH_THREADS", "8"))
SEED = int(os.environ.get("LEDGER_CRASH_SEED", str(random.randrange(2**32))))
MEMBERS = 4
CHANNEL = "pos-crash"
# no background sweeps (nothing but the clients' calls writes the journal),
# no per-member limit (the threads share four members on purpose)
ENV = {
    "LOYALTY_LEDGER_MEMBER_RATE": "0",
    "LOYALTY_LEDGER_SETTLE_INTERVAL": "0",
}
UNKNOWN = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)
# only these may be refused by the ledger's state: an earn or the end of an
# open hold never is
MAY_BE_REFUSED = {"redeem", "hold"}
METHODS = {
    "earn": "Earn",
    "redeem": "Redeem",
    "hold": "Hold",
    "capture": "CaptureHold",
    "release": "ReleaseHold",
}

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@dataclass(eq=False)
class Call:
    op: str
    member: str
    request: Any
    cycle: int
    points: int = 0  # asked for; a capture without points takes the whole hold
    hold: Call | None = None  # what a capture or release ends
    outcome: str = "pending"  # ok, refused, unknown
    retried: bool = False  # an unknown call sent again after the restart
    sequence: int = 0
    digest: bytes = b""
    hold_sequence: int = 0


@dataclass
class Book:
    """The clients' record of every call and what they heard back."""

    members: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    open_holds: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_call(self, rng: random.Random, cycle: int, key: str) -> Call:
        member = rng.choice(self.members)
        ctx = pb.ChannelContext(channel_id=CHANNEL, store_id=f"store-{rng.randrange(3)}")
        roll = rng.random()
        with self.lock:
            hold = (
                self.open_holds.pop(rng.randrange(len(self.open_holds)))
                if (roll >= 0.85 and self.open_holds)
                else None
            )
        if hold is not None:
            member = hold.member
            if rng.random() < 0.35:
                request = pb.ReleaseHoldRequest(
                    idempotency_key=key,
                    context=ctx,
                    member_account_id=member,
                    hold_sequence=hold.hold_sequence,
                )
                call = Call("release", member, request, cycle, hold=hold)
            else:
                whole = rng.random() < 0.5
                points = hold.points if whole else rng.randint(1, hold.points)
                request = pb.CaptureHoldRequest(
                    idempotency_key=key,
                    context=ctx,
                    member_account_id=member,
                    hold_sequence=hold.hold_sequence,
                )
                if not whole:
                    request.points = points
                call = Call("capture", member, request, cycle, points=points, hold=hold)
        elif roll < 0.55 or roll >= 0.85:
            points = rng.randint(1, 20)
            request = pb.EarnRequest(
                idempotency_key=key, context=ctx, member_account_id=member, points=points
            )
            call = Call("earn", member, request, cycle, points=points)
        elif roll < 0.73:
            points = rng.randint(1, 70)  # more than the earns bring in: races, refusals
            request = pb.RedeemRequest(
                idempotency_key=key, context=ctx, member_account_id=member, points=points
            )
            call = Call("redeem", member, request, cycle, points=points)
        else:
            points = rng.randint(1, 15)
            request = pb.HoldRequest(
                idempotency_key=key,
                context=ctx,
                member_account_id=member,
                points=points,
                minutes=600,
            )
            call = Call("hold", member, request, cycle, points=points)
        with self.lock:
            self.calls.append(call)
        return call

    def settle(self, call: Call, outcome: str, response: Any) -> None:
        """Record what the client heard back."""
        with self.lock:
            call.outcome = outcome
            if outcome == "ok":
                call.sequence = response.entry.sequence
                call.digest = bytes(response.entry.hash)
                if response.balance.available < 0 or response.balance.points < 0:
                    self.errors.append(f"{call.op} answered a negative balance: {response.balance}")
                if call.op == "hold":
                    call.hold_sequence = response.hold_sequence
                    self.open_holds.append(call)
            elif outcome == "refused" and call.hold is not None:
                self.errors.append(f"{call.op} of an open hold was refused")

    def ok(self) -> list[Call]:
        return [c for c in self.calls if c.outcome == "ok"]

    def expected(self) -> dict[str, tuple[int, int]]:
        """Each member's (points, held) from the OK calls."""
        points: defaultdict[str, int] = defaultdict(int)
        held: defaultdict[str, int] = defaultdict(int)
        for c in self.ok():
            if c.op == "earn":
                points[c.member] += c.points
            elif c.op == "redeem":
                points[c.member] -= c.points
            elif c.op == "hold":
                held[c.member] += c.points
            else:  # a capture takes its points, and either end frees the hold
                assert c.hold is not None
                held[c.member] -= c.hold.points
                if c.op == "capture":
                    points[c.member] -= c.points
        return {m: (points[m], held[m]) for m in self.members}


def send(stub: ledger_pb2_grpc.LedgerServiceStub, book: Book, call: Call, **kw: Any) -> str:
    try:
        response = getattr(stub, METHODS[call.op])(call.request, timeout=10, **kw)
    except grpc.RpcError as err:
        if err.code() in UNKNOWN:
            outcome = "unknown"
        elif err.code() == grpc.StatusCode.FAILED_PRECONDITION and call.op in MAY_BE_REFUSED:
            outcome = "refused"
        else:
            with book.lock:
                book.errors.append(f"{call.op}: {err.code().name}: {err.details()}")
            outcome = "error"
        book.settle(call, outcome, None)
        return outcome
    book.settle(call, "ok", response)
    return "ok"


class Load:
    """Client threads, each on its own TCP connection. ``through_outage``:
    go on after an unknown answer (a worker died, the port still serves);
    otherwise a thread stops at its first one (the server is gone)."""

    def __init__(
        self, server: SecureServe, token: str, book: Book, cycle: int, *, through_outage: bool
    ) -> None:
        self.server, self.token, self.book, self.cycle = server, token, book, cycle
        self.through_outage = through_outage
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(THREADS)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), "a client thread hangs"

    def _run(self, index: int) -> None:
        rng = random.Random(SEED * 7919 + self.cycle * 1000 + index)
        with self.server.channel(self.token, own_connection=True) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            n = 0
            while not self.stop.is_set():
                n += 1
                call = self.book.new_call(rng, self.cycle, f"crash-{self.cycle}-{index}-{n:06d}")
                outcome = send(stub, self.book, call, wait_for_ready=self.through_outage or None)
                if outcome == "error" or (outcome == "unknown" and not self.through_outage):
                    return


def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


def _open_members(stub: ledger_pb2_grpc.LedgerServiceStub, book: Book) -> None:
    for i in range(MEMBERS):
        book.members.append(
            stub.OpenAccount(
                pb.OpenAccountRequest(
                    idempotency_key=f"crash-open-{i:04d}",
                    context=pb.ChannelContext(channel_id=CHANNEL),
                ),
                timeout=10,
            ).member_account_id
        )


def _resolve(stub: ledger_pb2_grpc.LedgerServiceStub, book: Book, cycle: int) -> list[Call]:
    """Send every unknown call of ``cycle`` again, with its key."""
    unknown = [c for c in book.calls if c.cycle == cycle and c.outcome == "unknown"]
    for call in unknown:
        call.retried = True
        assert send(stub, book, call, wait_for_ready=True) in ("ok", "refused"), book.errors
    return unknown


def _replay_some(
    stub: ledger_pb2_grpc.LedgerServiceStub, book: Book, rng: random.Random, n: int = 10
) -> None:
    """A retry of an acknowledged call answers its entry again, adds none."""
    acked = [c for c in book.ok() if not c.retried]
    for call in rng.sample(acked, min(n, len(acked))):
        response = getattr(stub, METHODS[call.op])(call.request, timeout=10)
        assert (response.entry.sequence, bytes(response.entry.hash)) == (call.sequence, call.digest)


def _check(stub: ledger_pb2_grpc.LedgerServiceStub, book: Book, journal: JournalRows) -> None:
    assert book.errors == []
    rows = journal.hashes()
    ok = book.ok()
    sequences = [c.sequence for c in ok]
    assert len(set(sequences)) == len(sequences), "two answers name one entry"
    missing = [(c.op, c.sequence) for c in ok if rows.get(c.sequence) != c.digest]
    assert missing == [], "acknowledged entries not in the journal (or with another hash)"
    assert len(rows) == len(ok), "the journal holds entries nobody was answered for"
    for member, (points, held) in book.expected().items():
        balance = stub.GetBalance(pb.GetBalanceRequest(member_account_id=member)).balance
        assert (balance.points, balance.held, balance.available) == (points, held, points - held)
        assert points - held >= 0 and held >= 0, "overdraft"


def _verify(data: Path, url: str) -> int:
    out = run_cli("verify", "--data-dir", str(data), "--database-url", url, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("ok: "))
    return int(line.split()[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_cycles_under_load(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    print(f"LEDGER_CRASH_SEED={SEED}")  # shown with a failure: reproduces the choices
    url = _url(backend, request, tmp_path)
    data = tmp_path / "data"
    certs = make_certs(tmp_path / "certs")
    token = Tokens(data, channel=CHANNEL)(Role.CHANNEL)
    rng = random.Random(SEED)
    book = Book()
    journal = JournalRows(url)
    stats: Counter[str] = Counter()
    before_kill = kill_top = 0
    try:
        for cycle in range(CYCLES + 1):
            last = cycle == CYCLES
            workers = "2" if cycle % 3 == 1 and not last else "0"
            server = SecureServe(
                data_dir=data,
                certs=certs,
                database_url=url,
                log_path=tmp_path / f"serve-{cycle}.log",
                env={**ENV, "LOYALTY_LEDGER_WORKERS": workers},
            )
            try:
                server.wait_serving()
                with server.channel(token) as channel:
                    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
                    if cycle == 0:
                        _open_members(stub, book)
                    else:  # the cut-off calls of the cycle before, with their keys
                        retried = _resolve(stub, book, cycle - 1)
                        replayed = [
                            c for c in retried if c.outcome == "ok" and c.sequence <= kill_top
                        ]
                        acked = [c for c in book.ok() if c.cycle == cycle - 1 and not c.retried]
                        # the journal at the kill: what was answered, and what
                        # was committed but cut off before its answer
                        assert before_kill + len(acked) + len(replayed) == kill_top
                        stats["unknown"] += len(retried)
                        stats["retried: replayed"] += len(replayed)
                        stats["retried: applied now"] += sum(
                            c.outcome == "ok" and c.sequence > kill_top for c in retried
                        )
                        stats["retried: refused"] += sum(c.outcome == "refused" for c in retried)
                        _replay_some(stub, book, rng)
                    _check(stub, book, journal)
                if last:
                    assert server.terminate() == 0
                    break
                before_kill = journal.count()
                load = Load(server, token, book, cycle, through_outage=False)
                load.start()
                first = len(book.ok())
                _until(
                    lambda first=first: len(book.ok()) > first or book.errors, 20, "a first answer"
                )
                time.sleep(rng.uniform(0.0, 1.5))
                pids = server.worker_pids()
                server.proc.send_signal(signal.SIGKILL)  # the writer, with workers
                server.proc.wait(10)
                stats["kills"] += 1
                stats[f"kills with {workers} workers"] += 1
                # a worker whose writer is gone exits by itself
                _until(
                    lambda pids=pids: not any(Path(f"/proc/{p}").exists() for p in pids),
                    15,
                    "workers exit",
                )
                load.join()
                assert book.errors == []
            finally:
                server.kill()
            rows, kill_top = journal.head()
            assert rows == kill_top  # no gap, nothing twice
            assert _verify(data, url) == rows  # the chain verifies after every kill
        assert _verify(data, url) == len(book.ok())
    finally:
        journal.dispose()
    ok = book.ok()
    stats["calls"] = len(book.calls)
    stats["acknowledged"] = sum(not c.retried for c in ok)
    stats["refused"] = sum(c.outcome == "refused" and not c.retried for c in book.calls)
    stats["entries"] = len(ok)
    for op in METHODS:
        stats[f"ok {op}"] = sum(c.op == op for c in ok)
    print(f"\ncrash cycles [{backend}] seed={SEED} cycles={CYCLES} threads={THREADS}")
    for name, value in sorted(stats.items()):
        print(f"  {name}: {value}")
    assert stats["acknowledged"] > 0 and stats["kills"] == CYCLES


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_worker_is_replaced_while_the_rest_serves(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    print(f"LEDGER_CRASH_SEED={SEED}")
    url = _url(backend, request, tmp_path)
    data = tmp_path / "data"
    token = Tokens(data, channel=CHANNEL)(Role.CHANNEL)
    rng = random.Random(SEED)
    book = Book()
    journal = JournalRows(url)
    server = SecureServe(
        data_dir=data,
        certs=make_certs(tmp_path / "certs"),
        database_url=url,
        log_path=tmp_path / "serve.log",
        env={**ENV, "LOYALTY_LEDGER_WORKERS": "2"},
    )
    try:
        server.wait_serving()
        with server.channel(token) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            _open_members(stub, book)
            workers = server.worker_pids()
            assert len(workers) == 2
            load = Load(server, token, book, 0, through_outage=True)
            load.start()
            _until(lambda: len(book.ok()) >= 20 or book.errors, 20, "load")
            time.sleep(rng.uniform(0.0, 1.0))
            victim = rng.choice(workers)
            os.kill(victim, signal.SIGKILL)
            at_kill = len(book.ok())
            _until(
                lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
                15,
                "a replacement worker",
            )
            _until(lambda: len(book.ok()) >= at_kill + 100 or book.errors, 20, "serving on")
            load.join()
            assert server.proc.poll() is None  # the writer never stopped
            survivor = next(p for p in workers if p != victim)
            assert survivor in server.worker_pids()  # nor did the other worker
            retried = _resolve(stub, book, 0)
            _replay_some(stub, book, rng)
            _check(stub, book, journal)
        assert server.terminate() == 0
    finally:
        server.kill()
        journal.dispose()
    assert "worker_died" in (tmp_path / "serve.log").read_text()
    assert _verify(data, url) == len(book.ok())
    acked = sum(not c.retried for c in book.ok())
    print(
        f"\nworker kill [{backend}] seed={SEED}: {len(book.calls)} calls, {acked} acknowledged "
        f"({len(book.ok()) - at_kill} after the kill), {len(retried)} unknown and retried"
    )
