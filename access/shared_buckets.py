"""Token buckets in memory shared by the worker processes of one server.

With ``serve --workers N`` a caller's calls land on whichever worker the
kernel gave its connection, so buckets kept per process would let every
principal and every member make N times their limit. The buckets live in
one table in shared memory instead: a ``memfd`` the writer creates and
every worker inherits (no name anywhere, gone with the last process).

The table is open addressing over ``SLOTS`` slots of (key digest, tokens,
time). A key's digest is the first 8 bytes of BLAKE2b over its scope and
key (never 0, which marks a free slot); a key probes ``PROBE`` slots from
its home. When all of them hold other keys, the one refilled longest ago
is taken over, and its key comes back with a full bucket: like the
per-process limiter's least-recently-used bound, this only ever errs
towards allowing a call, never towards refusing one. Every take holds a
POSIX record lock on the table (``lockf``; per process, so the workers
exclude each other) for a few microseconds. Times are CLOCK_MONOTONIC,
which all processes of a machine share.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading

SLOTS = 1 << 18  # 262,144 keys at 24 bytes: 6 MiB
PROBE = 8
_SLOT = struct.Struct("<Qdd")  # digest, tokens, at


class SharedBuckets:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, SLOTS * _SLOT.size)
        self._lock = threading.Lock()  # threads of one process (lockf does not exclude them)

    @classmethod
    def create(cls) -> SharedBuckets:
        """A new, empty table (in the writer, before the workers start)."""
        fd = os.memfd_create("loyalty-ledger-buckets", os.MFD_CLOEXEC)
        os.ftruncate(fd, SLOTS * _SLOT.size)
        return cls(fd)

    @staticmethod
    def digest(scope: str, key: str) -> int:
        raw = hashlib.blake2b(f"{scope}\x00{key}".encode(), digest_size=8).digest()
        return int.from_bytes(raw, "little") or 1

    def update(self, digest: int, change: object) -> None:
        """Run ``change(tokens, at) -> (tokens, at)`` on the key's bucket
        under the lock; ``tokens`` is None for a key not in the table (a
        full bucket). ``change`` may raise to leave the bucket as it was."""
        home = digest % SLOTS
        with self._lock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                slot, tokens, at = self._find(home, digest)
                new_tokens, new_at = change(tokens, at)  # type: ignore[operator]
                _SLOT.pack_into(self._map, slot * _SLOT.size, digest, new_tokens, new_at)
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _find(self, home: int, digest: int) -> tuple[int, float | None, float]:
        oldest, oldest_at = home, float("inf")
        for step in range(PROBE):
            slot = (home + step) % SLOTS
            found, tokens, at = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if found == digest:
                return slot, tokens, at
            if found == 0:
                return slot, None, 0.0
            if at < oldest_at:
                oldest, oldest_at = slot, at
        return oldest, None, 0.0

    def close(self) -> None:
        self._map.close()
