"""Token buckets in memory shared by the worker processes of one server.

With ``serve --workers N`` a caller's calls land on whichever worker the
kernel gave its connection, so buckets kept per process would let every
principal and every member make N times their limit. The buckets live in
one table in shared memory instead: a ``memfd`` the writer creates and
every worker inherits (no name anywhere, gone with the last process).

The table is open addressing over ``SLOTS`` slots of (key digest, tokens,
time, time it is full again). A key's digest is 8 bytes of BLAKE2b over
its scope and key, keyed with a random key the writer made for this table
(so nobody outside can find ids that collide with a victim's); 0 marks a
free slot. A key probes ``PROBE`` slots from its home. When all of them
hold other keys, the bucket that is full again soonest (best: one that is
already full, which loses nothing) is taken over, and its key comes back
with a full bucket: like the per-process limiter's bound, this errs
towards allowing a call, never towards refusing one. A refused call still
updates its bucket, so a throttled key is the last one to be taken over.
Every take holds a
POSIX record lock on the table (``lockf``; per process, so the workers
exclude each other) for a few microseconds. Times are CLOCK_MONOTONIC,
which all processes of a machine share.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import secrets
import struct
import threading
from collections.abc import Callable

SLOTS = 1 << 18  # 262,144 keys at 32 bytes: 8 MiB
PROBE = 8
_HEADER = 64  # the digest key, then padding
_KEY_BYTES = 32
_SLOT = struct.Struct("<Qddd")  # digest, tokens, at, full again at
Change = Callable[[float | None, float], tuple[float, float, float]]


class SharedBuckets:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, _HEADER + SLOTS * _SLOT.size)
        self._key = bytes(self._map[:_KEY_BYTES])
        self._lock = threading.Lock()  # threads of one process (lockf does not exclude them)

    @classmethod
    def create(cls) -> SharedBuckets:
        """A new, empty table with a fresh digest key (in the writer, before
        the workers start)."""
        fd = os.memfd_create("loyalty-ledger-buckets", os.MFD_CLOEXEC)
        os.ftruncate(fd, _HEADER + SLOTS * _SLOT.size)
        os.pwrite(fd, secrets.token_bytes(_KEY_BYTES), 0)
        return cls(fd)

    def digest(self, scope: str, key: str) -> int:
        raw = hashlib.blake2b(f"{scope}\x00{key}".encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(raw, "little") or 1

    def update(self, digest: int, change: Change) -> None:
        """Run ``change(tokens, at) -> (tokens, at, full_at)`` on the key's
        bucket under the lock and store what it returns; ``tokens`` is None
        for a key not in the table (a full bucket)."""
        home = digest % SLOTS
        with self._lock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                slot, tokens, at = self._find(home, digest)
                new_tokens, new_at, full_at = change(tokens, at)
                _SLOT.pack_into(
                    self._map, _HEADER + slot * _SLOT.size, digest, new_tokens, new_at, full_at
                )
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _find(self, home: int, digest: int) -> tuple[int, float | None, float]:
        soonest, soonest_full = home, float("inf")
        for step in range(PROBE):
            slot = (home + step) % SLOTS
            found, tokens, at, full_at = _SLOT.unpack_from(self._map, _HEADER + slot * _SLOT.size)
            if found == digest:
                return slot, tokens, at
            if found == 0:
                return slot, None, 0.0
            if full_at < soonest_full:
                soonest, soonest_full = slot, full_at
        return soonest, None, 0.0

    def close(self) -> None:
        self._map.close()
