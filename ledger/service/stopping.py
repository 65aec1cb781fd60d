"""A stop request that a signal handler can set safely.

``threading.Event.set`` takes a non-reentrant lock. A signal handler runs
in the main thread between two bytecodes, possibly while that thread is
inside ``Event.wait`` or ``Event.set`` holding the same lock, so a handler
calling ``set`` can deadlock the process (a second SIGTERM right after a
first is enough). ``StopFlag`` is a plain attribute: setting it from a
handler or from another thread takes no lock, and ``wait`` polls it.
"""

from __future__ import annotations

import signal
import time

POLL_S = 0.05


class StopFlag:
    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep until set or ``timeout`` seconds passed; whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._set:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(POLL_S, remaining))
        return self._set


def stop_on_signals(flag: StopFlag) -> None:
    """SIGTERM and SIGINT set ``flag`` (call from the main thread)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: flag.set())
