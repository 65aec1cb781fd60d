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

import logging
import sys
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


def configure(level: str = "info", stream: BinaryIO | None = None) -> None:
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
