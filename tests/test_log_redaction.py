"""Log lines never carry personal values: personal keys are redacted and
exception text that quotes personal data is withheld."""

from __future__ import annotations

import io

import orjson
import structlog

from ledger import logging as ledger_logging


def _lines(emit) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    ledger_logging.configure("debug", stream=out)  # type: ignore[arg-type]
    try:
        emit(structlog.get_logger("test"))
    finally:
        ledger_logging.configure("info")
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_personal_keys_are_redacted() -> None:
    (line,) = _lines(
        lambda log: log.info("x", name="Test Person", phone="+8613800138000", request_id="r1")
    )
    assert line["name"] == line["phone"] == "[redacted]"
    assert line["request_id"] == "r1"


def test_exception_quoting_personal_data_is_withheld() -> None:
    def emit(log) -> None:  # type: ignore[no-untyped-def]
        try:
            raise ValueError("bad row for test.person@example.invalid")
        except ValueError:
            log.exception("failed")

    (line,) = _lines(emit)
    assert "example.invalid" not in orjson.dumps(line).decode()
    assert line["exception"] == "[withheld: exception text contains email]"


def test_plain_exception_is_kept() -> None:
    def emit(log) -> None:  # type: ignore[no-untyped-def]
        try:
            raise RuntimeError("disk full")
        except RuntimeError:
            log.exception("failed")

    (line,) = _lines(emit)
    assert "disk full" in str(line["exception"])
