"""Structured JSON logs (structlog), one object per line on stderr.

Events are key-value fields; values are ids, codes and counts, never
personal data. Two processors make sure of it, whatever a caller passes:

- ``redact_personal`` replaces the value of any key that names a personal
  field (``name``, ``phone``, ``email``, ``profile``, ...) with
  ``"[redacted]"``;
- exception text (which can quote values) is scanned with the personal-data
  detectors of access/detectors.py and withheld when one fires.

``configure`` is idempotent.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO

import orjson
import structlog

from access.detectors import MAX_SCAN_CHARS, scan

REDACTED = "[redacted]"
PERSONAL_KEYS = frozenset(
    {
        "name",
        "phone",
        "email",
        "birth_date",
        "postal_address",
        "profile",
        "custom",
        "value",
        "values",
    }
)


def redact_personal(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in PERSONAL_KEYS & event_dict.keys():
        event_dict[key] = REDACTED
    text = event_dict.get("exception")
    if isinstance(text, str):
        if len(text) >= MAX_SCAN_CHARS:  # keep the tail: the error itself is last
            text = "[...] " + text[-(MAX_SCAN_CHARS - 8) :]
            event_dict["exception"] = text
        findings = scan(text, field="exception")
        if findings:
            detectors = ", ".join(sorted({f.detector for f in findings}))
            event_dict["exception"] = f"[withheld: exception text contains {detectors}]"
    return event_dict


class _Stderr:
    """stderr as it is when a line is written (not when logging was set up),
    so a replaced stream (a test's capture, a daemon's redirect) is used."""

    def write(self, data: bytes) -> None:
        sys.stderr.buffer.write(data)

    def flush(self) -> None:
        sys.stderr.buffer.flush()


class CallLog:
    """The one line per call, written without structlog's processor chain
    and buffered: on a server doing thousands of calls a second, formatting
    each line through the chain and writing it with its own syscall cost as
    much as authenticating the call. The line is the same JSON object the
    chain would write (sorted keys, ``level``, ISO ``timestamp``); its
    fields are fixed ids, codes and durations, never personal data, so the
    redaction step has nothing to do. Lines go out when 64 KiB have
    gathered, when ``flush`` is called (servers call it every quarter
    second and at stop) and at exit."""

    LIMIT = 64 * 1024

    def __init__(self) -> None:
        self.enabled = True
        self.static: dict[str, Any] = {}  # fields of every line (a worker's index)
        self._buffer = bytearray()
        self._stream: BinaryIO | None = None
        self._second = -1
        self._stamp = b""

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return f"{self._stamp.decode()}.{int((now - second) * 1_000_000):06d}Z"

    def line(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.static:
            fields.update(self.static)
        fields["event"] = "rpc"
        fields["level"] = "info"
        fields["timestamp"] = self._timestamp(time.time())
        self._buffer += orjson.dumps(
            fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
        )
        if len(self._buffer) >= self.LIMIT:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        stream = self._stream or sys.stderr.buffer
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):  # stderr closed: nothing to log to
            pass


CALLS = CallLog()
atexit.register(CALLS.flush)


def configure(level: str = "info", stream: BinaryIO | None = None) -> None:
    CALLS.flush()
    CALLS.enabled = logging.getLevelName(level.upper()) <= logging.INFO
    CALLS._stream = stream
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal,
            # orjson: a third of the cost of json.dumps, on a line per call
            structlog.processors.JSONRenderer(serializer=orjson.dumps, option=orjson.OPT_SORT_KEYS),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.BytesLoggerFactory(file=stream or _Stderr()),  # type: ignore[arg-type]
        # one log line per call: keep the hot path short
        cache_logger_on_first_use=True,
    )
