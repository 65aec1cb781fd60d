"""Token buckets, with an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from access.ratelimit import Rate, RateLimitedError, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(per_second=2, burst=3), scope="member_account_id", clock=clock)
    for _ in range(3):
        limiter.take("mbr_a")
    with pytest.raises(RateLimitedError) as err:
        limiter.take("mbr_a")
    assert err.value.retry_after == pytest.approx(0.5)
    assert str(err.value).startswith("member_account_id: too many calls")
    limiter.take("mbr_b")  # other keys are independent
    clock.now += 0.5
    limiter.take("mbr_a")  # one token back after 1/rate seconds
    with pytest.raises(RateLimitedError):
        limiter.take("mbr_a")
    clock.now += 60
    for _ in range(3):  # never more than the burst, however long the pause
        limiter.take("mbr_a")
    with pytest.raises(RateLimitedError):
        limiter.take("mbr_a")


def test_zero_rate_disables() -> None:
    limiter = RateLimiter(Rate(per_second=0, burst=0), scope="principal")
    assert not limiter.enabled
    for _ in range(1000):
        limiter.take("pos-1")


def test_bounded_memory_forgets_least_recent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(per_second=1, burst=1), scope="principal", clock=clock, max_keys=2)
    limiter.take("a")
    limiter.take("b")
    limiter.take("c")  # "a" is dropped...
    limiter.take("a")  # ...and comes back full
    with pytest.raises(RateLimitedError):
        limiter.take("c")


def test_member_limit_over_the_wire(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """RESOURCE_EXHAUSTED with RetryInfo, nothing written, other members unaffected."""
    import grpc
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    from loyalty.ledger.v1 import ledger_pb2 as pb
    from loyalty.ledger.v1 import ledger_pb2_grpc

    from access.ratelimit import Rate
    from ledger.config import ServerConfig
    from ledger.server import LedgerServer
    from tests.conftest import ctx, head_sequence, key, open_account

    config = ServerConfig(
        data_dir=tmp_path,
        database_url=db_url,
        listen="127.0.0.1:0",
        member_rate=Rate(0.01, 3),
        auth="none",
        plaintext=True,
    )
    server = LedgerServer(config)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            one, two = open_account(stub), open_account(stub)

            def earn(account: str) -> None:
                stub.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(), context=ctx(), member_account_id=account, points=1
                    )
                )

            for _ in range(3):
                earn(one)
            seq = head_sequence(server)
            with pytest.raises(grpc.RpcError) as err:
                earn(one)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert err.value.details().startswith("member_account_id: too many calls")
            status = rpc_status.from_call(err.value)
            retry = error_details_pb2.RetryInfo()
            assert status is not None and status.details[0].Unpack(retry)
            assert retry.retry_delay.seconds > 0
            assert head_sequence(server) == seq
            earn(two)  # another member is not held back
    finally:
        server.stop(grace=1)


def test_shared_buckets_are_keyed_per_table_and_seen_alike_by_every_process() -> None:
    import os

    from access.shared_buckets import SharedBuckets

    one, other = SharedBuckets.create(), SharedBuckets.create()
    assert one.digest("member_account_id", "mbr_x") != other.digest("member_account_id", "mbr_x")
    # a worker opens the inherited descriptor: same key, same buckets
    again = SharedBuckets(os.dup(one.fd))
    assert again.digest("member_account_id", "mbr_x") == one.digest("member_account_id", "mbr_x")
    now = [100.0]
    rate = Rate(per_second=1, burst=2)
    a = RateLimiter(rate, scope="member_account_id", clock=lambda: now[0], shared=one)
    b = RateLimiter(rate, scope="member_account_id", clock=lambda: now[0], shared=again)
    a.take("mbr_x")
    b.take("mbr_x")
    with pytest.raises(RateLimitedError):
        a.take("mbr_x")
    with pytest.raises(RateLimitedError):
        b.take("mbr_x")
    now[0] += 1.0
    b.take("mbr_x")  # one token back, for both
    with pytest.raises(RateLimitedError):
        a.take("mbr_x")
