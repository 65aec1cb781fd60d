"""Property-based: random sequences of earn, purchase (pending), hold,
capture, release, redeem, reverse, transfer, clock moves (expiry, maturing,
hold timeouts) and replays, against the real server over the wire. After
every step:

- no member has negative available, pending or held points;
- all accounts sum to zero;
- a member's stored sub-accounts (live lots, pending, held) sum to the
  balance GetBalance reports, and available + pending + held = total;
- a replayed request returns the first response byte for byte and
  appends nothing;
- a refused request appends nothing;
- the journal verifies (hash chain, every kind's shape, balances).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)
from loyalty.ledger.v1 import ledger_pb2 as pb

from ledger.storage.schema import accounts
from tests.conftest import ctx, entry_owner, head_sequence, key
from tests.support.program import DAY_US, MINUTE_US, ProgramServer

pytestmark = pytest.mark.slow


class LedgerMachine(RuleBasedStateMachine):
    members = Bundle("members")
    holds = Bundle("holds")
    reversible = Bundle("reversible")

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        tmp = Path(self._dir.name)
        self.ps = ProgramServer(f"sqlite:///{tmp / 'ledger.db'}", tmp)
        self.sent: list[tuple[object, object, bytes]] = []  # (method, request, response)

    def teardown(self) -> None:
        self.ps.close()
        self._dir.cleanup()

    # -- helpers ---------------------------------------------------------------

    def _call(self, method, request):  # type: ignore[no-untyped-def]
        """Call; on success remember it for replays; on a refusal check
        that nothing was appended. Returns the response or None."""
        before = head_sequence(self.ps.server)
        try:
            response = method(request)
        except grpc.RpcError as err:
            assert err.code() in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.INVALID_ARGUMENT,
            ), (err.code(), err.details())
            assert head_sequence(self.ps.server) == before, "a refused request left a trace"
            return None
        self.sent.append((method, request, response.SerializeToString(deterministic=True)))
        return response

    # -- rules -----------------------------------------------------------------

    @rule(target=members)
    def open_member(self) -> str:
        return self.ps.open()

    @rule(target=reversible, member=members, points=st.integers(1, 500))
    def earn(self, member: str, points: int):  # type: ignore[no-untyped-def]
        request = pb.EarnRequest(
            idempotency_key=key("earn"), context=ctx(), member_account_id=member, points=points
        )
        done = self._call(self.ps.stub.Earn, request)
        return done.entry.sequence if done else multiple()

    @rule(
        target=reversible,
        member=members,
        minor=st.integers(0, 100_000),
        categories=st.sets(st.sampled_from(["appliance", "coffee", "shoes"]), max_size=2),
    )
    def purchase(self, member: str, minor: int, categories: set[str]):  # type: ignore[no-untyped-def]
        request = pb.EarnRequest(
            idempotency_key=key("buy"),
            context=ctx(),
            member_account_id=member,
            purchase=pb.Money(minor_units=minor, currency_code="EUR"),
            categories=sorted(categories),
        )
        done = self._call(self.ps.stub.Earn, request)
        return done.entry.sequence if done else multiple()

    @rule(target=reversible, member=members, points=st.integers(1, 400))
    def redeem(self, member: str, points: int):  # type: ignore[no-untyped-def]
        request = pb.RedeemRequest(
            idempotency_key=key("redeem"), context=ctx(), member_account_id=member, points=points
        )
        done = self._call(self.ps.stub.Redeem, request)
        return done.entry.sequence if done else multiple()

    @rule(target=holds, member=members, points=st.integers(1, 300), minutes=st.integers(0, 120))
    def hold(self, member: str, points: int, minutes: int):  # type: ignore[no-untyped-def]
        request = pb.HoldRequest(
            idempotency_key=key("hold"),
            context=ctx("app-test"),
            member_account_id=member,
            points=points,
            minutes=minutes,
        )
        done = self._call(self.ps.stub.Hold, request)
        return (member, done.hold_sequence) if done else multiple()

    @rule(target=reversible, hold=consumes(holds), points=st.none() | st.integers(1, 300))
    def capture(self, hold: tuple[str, int], points: int | None):  # type: ignore[no-untyped-def]
        request = pb.CaptureHoldRequest(
            idempotency_key=key("cap"),
            context=ctx(),
            hold_sequence=hold[1],
            member_account_id=hold[0],
        )
        if points is not None:
            request.points = points
        done = self._call(self.ps.stub.CaptureHold, request)
        return done.entry.sequence if done else multiple()

    @rule(hold=consumes(holds))
    def release(self, hold: tuple[str, int]) -> None:
        request = pb.ReleaseHoldRequest(
            idempotency_key=key("rel"),
            context=ctx(),
            hold_sequence=hold[1],
            member_account_id=hold[0],
        )
        self._call(self.ps.stub.ReleaseHold, request)

    @rule(original=reversible, points=st.none() | st.integers(1, 300))
    def reverse(self, original: int, points: int | None) -> None:
        request = pb.ReverseRequest(
            idempotency_key=key("rev"),
            context=ctx(),
            original_sequence=original,
            member_account_id=entry_owner(self.ps.stub, original),
        )
        if points is not None:
            request.points = points
        self._call(self.ps.stub.Reverse, request)

    @rule(sender=members, receiver=members, points=st.integers(1, 300))
    def transfer(self, sender: str, receiver: str, points: int) -> None:
        request = pb.TransferRequest(
            idempotency_key=key("tr"),
            context=ctx("app-test"),
            member_account_id=sender,
            to_member_account_id=receiver,
            points=points,
        )
        self._call(self.ps.stub.Transfer, request)

    @rule(
        step=st.sampled_from(
            [10 * MINUTE_US, 2 * 60 * MINUTE_US, 31 * DAY_US, 200 * DAY_US, 370 * DAY_US]
        )
    )
    def advance(self, step: int) -> None:
        self.ps.advance(step)  # moves the clock and sweeps (timeouts, maturing, expiry)

    @rule(
        member=members,
        ops=st.lists(
            st.tuples(
                st.sampled_from(["earn", "redeem"]), st.integers(1, 300), st.integers(1, 600)
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def replay_offline(self, member: str, ops: list[tuple[str, int, int]]) -> None:
        """A store's queue, sent twice: the second time changes nothing."""
        now_s = self.ps.clock() // 1_000_000
        items = []
        for op, points, minutes_ago in ops:
            request = (pb.EarnRequest if op == "earn" else pb.RedeemRequest)(
                idempotency_key=key("offline"),
                context=ctx("pos-test", store_id="store-test-1"),
                member_account_id=member,
                points=points,
            )
            items.append(
                pb.ReplayItem(
                    occurred_at=Timestamp(seconds=now_s - 60 * minutes_ago), **{op: request}
                )
            )
        batch = pb.ReplayOfflineRequest(items=items)
        first = self.ps.stub.ReplayOffline(batch)
        assert [r.index for r in first.results] == list(range(len(items)))
        for r in first.results:  # applied, or refused for want of points
            assert r.code in (0, grpc.StatusCode.FAILED_PRECONDITION.value[0]), r.message
        before = head_sequence(self.ps.server)
        again = self.ps.stub.ReplayOffline(batch)
        newly = 0
        for a, b in zip(first.results, again.results, strict=True):
            if a.code == 0:  # an applied item answers with its first response
                assert a.SerializeToString(deterministic=True) == b.SerializeToString(
                    deterministic=True
                )
            elif b.code == 0:  # a refused item left no trace: it is decided afresh
                newly += 1
        # nothing applied the first time was applied again
        assert head_sequence(self.ps.server) == before + newly

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        method, request, first = data.draw(st.sampled_from(self.sent))
        before = head_sequence(self.ps.server)
        again = method(request)
        assert again.SerializeToString(deterministic=True) == first
        assert head_sequence(self.ps.server) == before

    # -- invariants --------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        self.ps.server.settle_now()  # what the sweep would post by now
        assert self.ps.server.db is not None
        with self.ps.server.db.reader.connect() as conn:
            rows = conn.execute(sa.select(accounts.c.owner, accounts.c.balance)).all()
        assert sum(balance for _, balance in rows) == 0
        stored: dict[str, int] = {}
        for owner, balance in rows:
            if owner:
                assert balance >= 0
                stored[owner] = stored.get(owner, 0) + balance
        for member, total in stored.items():
            b = self.ps.balance(member)
            assert min(b.available, b.pending, b.held) >= 0
            assert b.points == b.available + b.pending + b.held == total
        self.ps.verify()


TestLedgerProperties = LedgerMachine.TestCase
TestLedgerProperties.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
