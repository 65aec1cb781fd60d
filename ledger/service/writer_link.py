"""The local channel between worker processes and the writer process.

With ``serve --workers N`` (ledger/service/workers.py), N worker processes
do the per-call work (TLS, HTTP/2, authentication, validation, reads,
serialization) and one writer process owns the appender: the journal's
single-writer work (plan, append, grow the trees, commit) runs on a core of
its own instead of sharing a GIL with gRPC.

Each worker talks to the writer over one end of a ``socketpair`` that the
writer created and the worker inherited: no name on the filesystem or in
the abstract namespace, so no other process can connect. A worker's end
is ``RemoteAppender``, with the interface of ``Appender`` that handlers
already use (``append``, ``record`` and their blocking forms), so the
servicers do not know which side of a process boundary the journal is on.

Frames: 4-byte big-endian length, then a pickle (both ends are this
program, so pickle is safe here: it never carries input from outside the
two processes, only commands the worker built from validated requests).

- worker -> writer: a list of ``(request id, command or None, access record
  or None)``. Everything a worker's event loop queued in one iteration
  goes in one frame (one pickle, one write).
  Request id 0 carries nothing: the worker's notice that it is serving.
- writer -> worker: a list of ``(request id, response bytes or error)``:
  the outcomes of one group commit for that worker, sent once the commit
  is durable.

If the writer goes away, every waiting call fails with UNAVAILABLE (a
retry with the same idempotency key is safe: a replay returns the first
answer if it had committed) and the worker stops taking calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import pickle
import socket
import struct
from collections.abc import Callable
from typing import Any

import structlog

from audit.decisions import AccessDecision
from ledger.appender import Appender, Outcome
from ledger.commands import Command
from ledger.errors import LedgerError, UnavailableError

log = structlog.get_logger(__name__)

_LENGTH = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024  # a frame longer than this means the stream is corrupt
Request = tuple[int, Command | None, AccessDecision | None]
BLOCKING_TIMEOUT_S = 60.0  # a blocking caller (a thread) waits at most this long
READY = 0  # request id of a worker's "I am serving" notice (real ids start at 1)


def _encode_outcome(result: Outcome) -> Any:
    """Errors travel as (class, args, attributes): LedgerError subclasses
    take other constructor arguments than their args, so the default
    exception pickling cannot rebuild them."""
    if isinstance(result, LedgerError):
        return ("err", type(result), result.args, dict(vars(result)))
    return result


def _decode_outcome(value: Any) -> bytes | LedgerError:
    if isinstance(value, tuple) and value and value[0] == "err":
        _, cls, args, state = value
        if not (isinstance(cls, type) and issubclass(cls, LedgerError)):
            return UnavailableError("writer: an undecodable answer")
        error: LedgerError = cls.__new__(cls)
        error.args = args
        error.__dict__.update(state)
        return error
    return bytes(value)


class _FrameProtocol(asyncio.Protocol):
    """Length-prefixed frames in both directions; writes queued in one
    event-loop iteration go out together."""

    def __init__(
        self,
        on_frame: Callable[[Any], None],
        on_lost: Callable[[], None],
        on_unsendable: Callable[[Any, Exception], None] | None = None,
    ) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._on_unsendable = on_unsendable
        self._buffer = bytearray()
        self._outbox: list[Any] = []
        self._scheduled = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if length > MAX_FRAME:
                log.error("writer_link_corrupt", length=length)
                assert self.transport is not None
                self.transport.close()
                return
            if len(buffer) - offset - 4 < length:
                break
            frame = bytes(buffer[offset + 4 : offset + 4 + length])
            offset += 4 + length
            self._on_frame(pickle.loads(frame))
        if offset:
            del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost()

    def send(self, item: Any) -> None:
        """Queue ``item``; the queue goes out as one frame at the end of this
        event-loop iteration."""
        self._outbox.append(item)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def send_now(self, items: list[Any]) -> None:
        self._write(items)

    def _flush(self) -> None:
        self._scheduled = False
        items, self._outbox = self._outbox, []
        if items:
            self._write(items)

    def _write(self, items: list[Any]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a bug: some item does not pickle; send the others
            sendable = []
            for item in items:
                try:
                    pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as err:
                    log.error("writer_link_unpicklable", kind=type(item[1]).__name__)
                    if self._on_unsendable is not None:
                        self._on_unsendable(item, err)
                    continue
                sendable.append(item)
            data = pickle.dumps(sendable, protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.write(_LENGTH.pack(len(data)) + data)


class RemoteAppender:
    """A worker's handle on the writer's appender (same interface as
    ``Appender`` for what handlers use)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._protocol: _FrameProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost = asyncio.Event()
        self._closing = False

    async def connect(self, sock: socket.socket) -> None:
        """Take over ``sock`` (this worker's end of the socketpair)."""
        self._loop = asyncio.get_running_loop()
        _, protocol = await self._loop.create_unix_connection(
            lambda: _FrameProtocol(self._answers, self._writer_gone, self._unsendable), sock=sock
        )
        self._protocol = protocol

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self.lost.is_set()

    def _answers(self, answers: list[tuple[int, Any]]) -> None:
        for request_id, value in answers:
            future = self._waiting.pop(request_id, None)
            if future is None or future.done():  # the caller gave up (deadline)
                continue
            result = _decode_outcome(value)
            if isinstance(result, LedgerError):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _unsendable(self, item: Request, error: Exception) -> None:
        future = self._waiting.pop(item[0], None)
        if future is not None and not future.done():
            future.set_exception(RuntimeError(f"writer link: cannot send the command: {error}"))

    def _writer_gone(self) -> None:
        if not self.lost.is_set() and not self._closing:
            log.error("writer_link_lost", waiting=len(self._waiting))
        self.lost.set()
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(
                    UnavailableError(
                        "journal: the writer process is gone; retry with the same "
                        "idempotency_key (a replay returns the result if it was committed)"
                    )
                )

    async def _call(self, command: Command | None, record: AccessDecision | None) -> bytes:
        if not self.connected:
            raise UnavailableError("journal: the writer process is not reachable; retry later")
        assert self._loop is not None and self._protocol is not None
        request_id = next(self._ids)
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[request_id] = future
        self._protocol.send((request_id, command, record))
        try:
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def append(self, command: Command, record: AccessDecision | None = None) -> bytes:
        return await self._call(command, record)

    async def record(self, decision: AccessDecision) -> None:
        await self._call(None, decision)

    def append_blocking(self, command: Command) -> bytes:
        return self._blocking(self._call(command, None))

    def record_blocking(self, decision: AccessDecision) -> None:
        self._blocking(self._call(None, decision))

    def _blocking(self, call: Any) -> bytes:
        """From a thread other than the event loop's (e.g. break-glass
        events written from a handler's worker thread)."""
        assert self._loop is not None
        future: concurrent.futures.Future[bytes] = asyncio.run_coroutine_threadsafe(
            call, self._loop
        )
        try:
            return future.result(BLOCKING_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise UnavailableError("journal: the writer did not answer in time; retry") from None

    def announce_ready(self) -> None:
        """Tell the writer this worker is serving (request id 0), from any thread."""
        assert self._loop is not None and self._protocol is not None
        protocol = self._protocol
        self._loop.call_soon_threadsafe(protocol.send_now, [(READY, None, None)])

    def close(self) -> None:
        self._closing = True
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()


class WriterEnd:
    """The writer's side of one worker's link: requests go to the appender,
    each group commit's outcomes come back in one frame."""

    def __init__(
        self,
        appender: Appender,
        name: str,
        prepare: Callable[[Command], None] | None = None,
    ) -> None:
        self._appender = appender
        self._name = name
        self._prepare = prepare  # gives an arriving command what it needs of this process
        self._protocol: _FrameProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = asyncio.Event()
        self.on_ready: Callable[[], None] | None = None  # the worker said it is serving

    async def serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        _, protocol = await self._loop.create_unix_connection(
            lambda: _FrameProtocol(self._requests, self.closed.set, self._unsendable), sock=sock
        )
        self._protocol = protocol

    def _requests(self, requests: list[Request]) -> None:
        assert self._loop is not None
        for request_id, command, record in requests:
            if request_id == READY:
                if self.on_ready is not None:
                    self.on_ready()
                continue
            try:
                if command is not None and self._prepare is not None:
                    self._prepare(command)
                self._appender.submit(command, record, self._loop, self._deliver, request_id)
            except LedgerError as err:  # shutting down: nothing was queued
                self._deliver([(request_id, err)])
            except Exception:  # a bug: this request fails alone, the link stays up
                log.exception("writer_link_request_failed", worker=self._name)
                self._deliver([(request_id, UnavailableError("journal: the request failed"))])

    def _unsendable(self, item: tuple[int, Any], error: Exception) -> None:
        """An outcome that does not pickle (a bug): its caller gets an error
        instead of waiting for its deadline."""
        assert self._protocol is not None
        failed = UnavailableError("journal: the answer could not be sent; retry with the same key")
        self._protocol.send_now([(item[0], _encode_outcome(failed))])

    def _deliver(self, outcomes: list[tuple[int, Outcome]]) -> None:
        """On the writer's event loop, once a group commit is durable."""
        if self._protocol is None:
            return
        self._protocol.send_now([(i, _encode_outcome(r)) for i, r in outcomes])

    def close(self) -> None:
        """On the event loop: close the link."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Close the link and wait until the loop has let go of its socket."""
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), timeout)
