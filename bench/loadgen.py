"""Closed-loop Earn load over grpc.aio, identical for every server under test.

``clients`` coroutines share a pool of ``channels`` channels (each its own
TCP connection: the local subchannel pool stops gRPC from merging them).
Each client loops: build an EarnRequest with a unique idempotency key, for
an account picked at random from ``accounts``, 10 points, channel
"bench-pos"; await it; record when it started and ended. Clients start
together, run through ``warmup`` seconds, then a ``seconds`` long
measurement window, and stop issuing at the window's end.

Only calls that complete OK inside the window count towards throughput and
latency. Every non-OK status, at any time, is counted in ``errors``;
``ok_total`` counts every OK call (warm-up and tail included), which is what
the journal must hold afterwards.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

CHANNEL_ID = "bench-pos"
POINTS = 10
CALL_TIMEOUT_S = 10.0
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]

Hook = Callable[[], None]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 1]; NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@dataclass
class LoadResult:
    window_s: float
    window_start_wall: float  # time.time() at the window's start, to match server logs
    latencies_ms: list[float] = field(default_factory=list)  # OK calls ending in the window
    ok_total: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def calls(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.calls / self.window_s

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


@dataclass(frozen=True)
class Window:
    start: float  # time.perf_counter()
    end: float


def _earn_request(key: str, account: str) -> pb.EarnRequest:
    return pb.EarnRequest(
        idempotency_key=key,
        context=pb.ChannelContext(channel_id=CHANNEL_ID),
        member_account_id=account,
        points=POINTS,
    )


async def _client(
    stub: ledger_pb2_grpc.LedgerServiceStub,
    index: int,
    key_prefix: str,
    accounts: Sequence[str],
    window: Window,
    result: LoadResult,
) -> None:
    pick = random.Random(index).choice
    sequence = 0
    while time.perf_counter() < window.end:
        request = _earn_request(f"{key_prefix}.{index}.{sequence}", pick(accounts))
        sequence += 1
        started = time.perf_counter()
        try:
            await stub.Earn(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            result.errors[err.code().name] += 1
            continue
        ended = time.perf_counter()
        result.ok_total += 1
        if window.start <= ended <= window.end:
            result.latencies_ms.append((ended - started) * 1000)


async def _at(moment: float, hook: Hook | None) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))
    if hook is not None:
        hook()


async def _run(
    target: str,
    *,
    clients: int,
    channels: int,
    warmup: float,
    seconds: float,
    accounts: Sequence[str],
    key_prefix: str,
    on_start: Hook | None,
    on_end: Hook | None,
) -> LoadResult:
    pool = [grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) for _ in range(channels)]
    try:
        stubs = [ledger_pb2_grpc.LedgerServiceStub(ch) for ch in pool]
        now = time.perf_counter()
        window = Window(now + warmup, now + warmup + seconds)
        result = LoadResult(window_s=seconds, window_start_wall=time.time() + warmup)
        await asyncio.gather(
            _at(window.start, on_start),
            _at(window.end, on_end),
            *(
                _client(stubs[i % channels], i, key_prefix, accounts, window, result)
                for i in range(clients)
            ),
        )
        return result
    finally:
        await asyncio.gather(*(ch.close() for ch in pool))


def run_load(
    target: str,
    *,
    clients: int,
    channels: int,
    warmup: float,
    seconds: float,
    accounts: Sequence[str],
    key_prefix: str,
    on_start: Hook | None = None,
    on_end: Hook | None = None,
) -> LoadResult:
    """Drive Earn calls at ``target``; ``on_start``/``on_end`` run at the window's edges."""
    return asyncio.run(
        _run(
            target,
            clients=clients,
            channels=max(1, min(channels, clients)),
            warmup=warmup,
            seconds=seconds,
            accounts=accounts,
            key_prefix=key_prefix,
            on_start=on_start,
            on_end=on_end,
        )
    )


async def _open_accounts(target: str, count: int, key_prefix: str, concurrency: int) -> list[str]:
    limit = asyncio.Semaphore(concurrency)
    context = pb.ChannelContext(channel_id=CHANNEL_ID)

    async with grpc.aio.insecure_channel(target) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def open_one(i: int) -> str:
            request = pb.OpenAccountRequest(idempotency_key=f"{key_prefix}.{i}", context=context)
            async with limit:
                reply = await stub.OpenAccount(request, timeout=CALL_TIMEOUT_S)
            return str(reply.member_account_id)

        return list(await asyncio.gather(*(open_one(i) for i in range(count))))


def open_accounts(target: str, count: int, key_prefix: str, concurrency: int = 64) -> list[str]:
    """Open ``count`` member accounts via OpenAccount; any failure raises."""
    return asyncio.run(_open_accounts(target, count, key_prefix, concurrency))
