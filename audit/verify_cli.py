"""The report ``loyalty-ledger audit verify`` prints (docs/verification.md §10.5).

``run_verify`` verifies a bundle with the auditor's keys and writes a
human-readable report: one block per log, then one line per problem
("log journal, sequence 17: hash: ..."), then a final line that is exactly
"OK" or "FAILED: <n> problem(s)". Exit status: 0 clean, 1 problems found,
2 the bundle could not be read at all (missing file, no header) or a
trusted key does not parse. Pure: no import from ledger/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from audit.bundle_verify import BundleResult, LogSummary, verify_bundle

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNREADABLE = 2


def _time(created_us: int | None) -> str:
    if created_us is None:
        return "unknown"
    try:
        moment = datetime.fromtimestamp(created_us / 1_000_000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{created_us} us"
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _log_block(name: str, summary: LogSummary) -> list[str]:
    latest = summary.latest_checkpoint
    last = summary.size
    first = summary.first_sequence
    entries = f"{summary.entries}" + (f" (sequences {first}..{last})" if summary.entries else "")
    if summary.previous_size is None:
        state = "saved" if summary.state_saved else "none"
    else:
        verb = "updated" if summary.state_saved else "not updated"
        state = f"previously verified size {summary.previous_size}, {verb}"
    lines = [
        f"log {name} (origin {summary.origin})",
        f"  entries: {entries}",
        f"  size: {summary.size}",
        f"  root: {summary.root.hex() or 'unknown (unusable start line)'}",
        f"  checkpoints verified: {summary.checkpoints_verified}",
        f"  latest checkpoint: {f'size {latest.size}' if latest else 'none'}",
    ]
    if latest is not None and latest.size < summary.size:
        lines.append(f"  entries after the latest checkpoint: {summary.size - latest.size}")
    if summary.cosigned_by:
        lines.append(f"  cosigned by: {', '.join(summary.cosigned_by)}")
    lines.append(f"  state: {state}")
    return lines


def format_report(bundle: Path, result: BundleResult) -> list[str]:
    lines = [f"bundle {bundle} (created {_time(result.created_us)})"]
    for name, summary in result.logs.items():
        lines += _log_block(name, summary)
    lines += [str(p) for p in result.problems]
    n = len(result.problems)
    lines.append("OK" if result else f"FAILED: {n} problem(s)")
    return lines


def run_verify(
    bundle: Path,
    keys: list[str],
    state_dir: Path | None,
    out: TextIO,
    witness_keys: list[str] | None = None,
    min_witnesses: int | None = None,
) -> int:
    """Verifies ``bundle`` and writes the report to ``out``; returns the exit status."""
    witnesses = witness_keys or []
    need = (1 if witnesses else 0) if min_witnesses is None else min_witnesses
    try:
        result = verify_bundle(bundle, keys, state_dir, witnesses, need)
    except ValueError as exc:
        out.write(f"cannot verify: {exc}\nFAILED: 1 problem(s)\n")
        return EXIT_UNREADABLE
    out.write("".join(line + "\n" for line in format_report(bundle, result)))
    if not result.readable:
        return EXIT_UNREADABLE
    return EXIT_OK if result else EXIT_PROBLEMS
