"""A ledger server with a program file and a clock the test moves."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rewards.v1 import rewards_pb2_grpc

from ledger.config import Limits, ServerConfig
from ledger.program.config import load_program
from ledger.server import LedgerServer
from ledger.verify import verify_database
from ledger.verify_vouchers import verify_vouchers
from tests.conftest import ctx, entry_owner, key

PROGRAM = textwrap.dedent(
    """
    version = 1
    program_id = "test-program"
    currency = "EUR"

    [expiry]
    policy = "months"
    months = 12

    [pending.categories]
    appliance = 30

    [holds]
    default_minutes = 30
    max_minutes = 120

    [earn.base_rate]
    none = 1

    [[earn.multipliers]]
    id = "coffee-x2"
    category = "coffee"
    factor = 2

    [[earn.campaigns]]
    id = "black-friday"
    starts = 2026-11-27T00:00:00Z
    ends = 2026-11-28T00:00:00Z
    factor = 3

    [[earn.follow_ups]]
    id = "after-appliance"
    after_category = "appliance"
    within_hours = 24
    bonus_points = 200

    [[partners]]
    id = "hotel-test"
    points_per_unit_in = 10
    units_per_point_out = "0.01"
    """
)

START = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000


class Clock:
    def __init__(self, start: dt.datetime = START) -> None:
        self.now_us = int(start.timestamp()) * 1_000_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, us: int) -> None:
        self.now_us += us

    def set(self, moment: dt.datetime) -> None:
        self.now_us = int(moment.timestamp()) * 1_000_000


class ProgramServer:
    """The ledger with the test program, its clock, and a plaintext stub."""

    def __init__(
        self, db_url: str, tmp_path: Path, program: str = PROGRAM, start: dt.datetime = START
    ) -> None:
        path = tmp_path / "program.toml"
        path.write_text(program)
        self.clock = Clock(start)
        config = ServerConfig(
            data_dir=tmp_path,
            database_url=db_url,
            listen="127.0.0.1:0",
            limits=Limits(max_points_per_entry=1_000_000),
            auth="none",
            plaintext=True,
            program=load_program(path),
            settle_interval=0,  # the test settles after moving the clock
            checkpoint_interval=0,
        )
        self.server = LedgerServer(config, clock=self.clock)
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.rewards = rewards_pb2_grpc.RewardServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=1)

    def advance(self, us: int) -> int:
        """Move the clock and run the sweep; returns members settled."""
        self.clock.advance(us)
        return self.server.settle_now()

    # -- calls ---------------------------------------------------------------

    def open(self) -> str:
        return self.stub.OpenAccount(
            pb.OpenAccountRequest(idempotency_key=key("open"), context=ctx())
        ).member_account_id

    def earn(self, account: str, points: int = 0, **kw: object) -> pb.EarnResponse:
        channel = str(kw.pop("channel", "pos-test"))
        return self.stub.Earn(
            pb.EarnRequest(
                idempotency_key=key("earn"),
                context=ctx(channel),
                member_account_id=account,
                points=points,
                **kw,
            )
        )

    def purchase(
        self, account: str, minor: int, *categories: str, points: int = 0
    ) -> pb.EarnResponse:
        return self.earn(
            account,
            points,
            purchase=pb.Money(minor_units=minor, currency_code="EUR"),
            categories=list(categories),
        )

    def redeem(self, account: str, points: int) -> pb.RedeemResponse:
        return self.stub.Redeem(
            pb.RedeemRequest(
                idempotency_key=key("redeem"),
                context=ctx(),
                member_account_id=account,
                points=points,
            )
        )

    def hold(self, account: str, points: int, minutes: int = 0, channel: str = "pos-test"):
        return self.stub.Hold(
            pb.HoldRequest(
                idempotency_key=key("hold"),
                context=ctx(channel),
                member_account_id=account,
                points=points,
                minutes=minutes,
            )
        )

    def capture(self, member: str, hold: int, points: int | None = None, channel: str = "pos-test"):
        request = pb.CaptureHoldRequest(
            idempotency_key=key("capture"),
            context=ctx(channel),
            hold_sequence=hold,
            member_account_id=member,
        )
        if points is not None:
            request.points = points
        return self.stub.CaptureHold(request)

    def release(self, member: str, hold: int, channel: str = "pos-test"):
        return self.stub.ReleaseHold(
            pb.ReleaseHoldRequest(
                idempotency_key=key("release"),
                context=ctx(channel),
                hold_sequence=hold,
                member_account_id=member,
            )
        )

    def reverse(self, original: int, points: int | None = None) -> pb.ReverseResponse:
        request = pb.ReverseRequest(
            idempotency_key=key("reverse"),
            context=ctx(),
            original_sequence=original,
            member_account_id=entry_owner(self.stub, original),
        )
        if points is not None:
            request.points = points
        return self.stub.Reverse(request)

    def balance(self, account: str) -> pb.Balance:
        return self.stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance

    def verify(self) -> None:
        assert self.server.db is not None
        result = verify_database(self.server.db)
        assert result, [str(p) for p in result.problems]
        _, voucher_problems = verify_vouchers(self.server.db)  # the voucher tables too
        assert voucher_problems == [], [str(p) for p in voucher_problems]
