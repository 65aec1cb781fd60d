"""Closed-loop Earn or GetBalance load over grpc.aio, identical for every
server under test.

``clients`` coroutines share a pool of ``channels`` channels (each its own
TCP connection: the local subchannel pool stops gRPC from merging them).
Each client loops: build an EarnRequest with a unique idempotency key, for
an account picked at random from ``accounts``, 10 points, channel
"bench-pos"; await it; record when it started and ended. Clients start
together, run through ``warmup`` seconds, then a ``seconds`` long
measurement window, and stop issuing at the window's end.

``op`` is ``earn`` or ``balance`` (GetBalance of a random account).
``creds`` makes the channels TLS with a bearer token (the secure default);
without it they are plaintext. With ``rate`` the load is open-loop: calls
are scheduled at that many per second, shared by the clients, and latency
counts from the scheduled start (no coordinated omission).

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
from typing import Any

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

CHANNEL_ID = "bench-pos"
POINTS = 10
CALL_TIMEOUT_S = 10.0
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]

Hook = Callable[[], None]


@dataclass(frozen=True)
class Creds:
    """TLS trusting ``ca_pem``, and ``authorization: Bearer <token>``."""

    ca_pem: bytes
    token: str | None = None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        tls = grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
        if self.token is None:
            return tls
        return grpc.composite_channel_credentials(
            tls, grpc.access_token_call_credentials(self.token)
        )


def aio_channel(target: str, creds: Creds | None, options: list[tuple[str, int]]) -> Any:
    if creds is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, creds.channel_credentials(), options=options)


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


class _Pacer:
    """Open-loop schedule: call i starts at start + i / rate."""

    def __init__(self, rate: float, start: float) -> None:
        self._rate = rate
        self._start = start
        self._next = 0

    async def slot(self) -> float:
        at = self._start + self._next / self._rate
        self._next += 1
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return at


async def _client(
    stub: ledger_pb2_grpc.LedgerServiceStub,
    index: int,
    key_prefix: str,
    accounts: Sequence[str],
    window: Window,
    result: LoadResult,
    op: str,
    pacer: _Pacer | None,
) -> None:
    pick = random.Random(index).choice
    sequence = 0
    while time.perf_counter() < window.end:
        account = pick(accounts)
        started = await pacer.slot() if pacer is not None else time.perf_counter()
        try:
            if op == "balance":
                await stub.GetBalance(
                    pb.GetBalanceRequest(member_account_id=account), timeout=CALL_TIMEOUT_S
                )
            else:
                request = _earn_request(f"{key_prefix}.{index}.{sequence}", account)
                sequence += 1
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
    op: str = "earn",
    creds: Creds | None = None,
    rate: float | None = None,
) -> LoadResult:
    pool = [aio_channel(target, creds, CHANNEL_OPTIONS) for _ in range(channels)]
    try:
        stubs = [ledger_pb2_grpc.LedgerServiceStub(ch) for ch in pool]
        await asyncio.gather(*(ch.channel_ready() for ch in pool))
        now = time.perf_counter()
        window = Window(now + warmup, now + warmup + seconds)
        result = LoadResult(window_s=seconds, window_start_wall=time.time() + warmup)
        pacer = _Pacer(rate, now) if rate else None
        await asyncio.gather(
            _at(window.start, on_start),
            _at(window.end, on_end),
            *(
                _client(stubs[i % channels], i, key_prefix, accounts, window, result, op, pacer)
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
    op: str = "earn",
    creds: Creds | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Drive calls at ``target``; ``on_start``/``on_end`` run at the window's edges."""
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
            op=op,
            creds=creds,
            rate=rate,
        )
    )


async def _open_accounts(
    target: str, count: int, key_prefix: str, concurrency: int, creds: Creds | None, seed: int
) -> list[str]:
    limit = asyncio.Semaphore(concurrency)
    context = pb.ChannelContext(channel_id=CHANNEL_ID)

    async with aio_channel(target, creds, []) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def open_one(i: int) -> str:
            request = pb.OpenAccountRequest(idempotency_key=f"{key_prefix}.{i}", context=context)
            async with limit:
                reply = await stub.OpenAccount(request, timeout=CALL_TIMEOUT_S)
                account = str(reply.member_account_id)
                if seed:
                    await stub.Earn(
                        _earn_request(f"{key_prefix}.seed.{i}", account), timeout=CALL_TIMEOUT_S
                    )
            return account

        return list(await asyncio.gather(*(open_one(i) for i in range(count))))


def open_accounts(
    target: str,
    count: int,
    key_prefix: str,
    concurrency: int = 64,
    creds: Creds | None = None,
    seed: int = 0,
) -> list[str]:
    """Open ``count`` member accounts via OpenAccount (each earning ``seed``
    times once, so balance reads find points); any failure raises."""
    return asyncio.run(_open_accounts(target, count, key_prefix, concurrency, creds, seed))
