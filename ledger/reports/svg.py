"""Small, deterministic SVG charts for the HTML reports.

Pure functions returning an inline ``<svg>`` element as a string, meant to be
embedded in an HTML page: no scripts, no external references, no fonts to
fetch. Every chart is ``role="img"`` with a ``<title>`` and a ``<desc>`` that
lists the data (for screen readers), has axis labels and value labels, and
escapes all text. The same input always gives the same bytes.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK = "#1f2933"
MUTED = "#52606d"
GRID = "#d9e2ec"
BAR = "#2f5d8a"
PALETTE = ("#2f5d8a", "#b42318", "#b54708", "#067647", "#6941c6", "#475467")
DESC_ITEMS = 60  # data points spelled out in <desc>


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(x: float) -> str:
    """A coordinate, rounded to 0.1 and written without a trailing .0."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _fmt(value: int) -> str:
    return f"{value:,}"


def _ident(title: str, ident: str | None) -> str:
    base = ident if ident is not None else title
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return "chart-" + (slug or "untitled")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def nice_scale(value: int, max_ticks: int = 5) -> tuple[int, int]:
    """(step, top) of an axis from 0 that shows ``value``: the step is 1, 2 or
    5 times a power of ten, and there are at most ``max_ticks`` steps."""
    value = max(value, 1)
    power = 1
    while True:
        for mult in (1, 2, 5):
            step = mult * power
            steps = math.ceil(value / step)
            if steps <= max_ticks:
                return step, steps * step
        power *= 10


def _open(ident: str, title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg class="chart" role="img" aria-labelledby="{ident}-title {ident}-desc"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' font-family="{_e(FONT)}" font-size="12" fill="{INK}">',
        f'<title id="{ident}-title">{_e(title)}</title>',
        f'<desc id="{ident}-desc">{_e(desc)}</desc>',
        f'<text class="chart-title" x="0" y="16" font-size="14" font-weight="600">'
        f"{_e(title)}</text>",
    ]


def _describe(kind: str, parts: Sequence[str]) -> str:
    shown = list(parts[:DESC_ITEMS])
    if len(parts) > DESC_ITEMS:
        shown.append(f"and {len(parts) - DESC_ITEMS} more")
    return f"{kind}: " + ("; ".join(shown) if shown else "no data") + "."


def _empty(lines: list[str], width: int, y: float) -> str:
    lines.append(
        f'<text class="no-data" x="{_n(width / 2)}" y="{_n(y)}" text-anchor="middle"'
        f' fill="{MUTED}">No data for this period</text>'
    )
    lines.append("</svg>")
    return "\n".join(lines)


def bar_chart(
    title: str,
    items: list[tuple[str, int]],
    *,
    fields: Sequence[str | None] | None = None,
    value_label: str = "count",
    category_label: str = "",
    width: int = 640,
    color: str = BAR,
    ident: str | None = None,
    label_chars: int = 26,
) -> str:
    """Horizontal bars, one per ``(label, value)``, in the given order.

    ``fields`` (parallel to ``items``) puts ``data-field="<path>"`` on each
    value label, so the number can be traced back to the report."""
    ident = _ident(title, ident)
    desc = _describe("Bar chart", [f"{label}: {_fmt(value)}" for label, value in items])
    top, row, bar_h, bottom = 32, 28, 18, 46
    left, right = 24 + 7 * min(label_chars, max((len(lbl) for lbl, _ in items), default=8)), 64
    plot_w = width - left - right
    height = top + max(len(items), 1) * row + bottom
    lines = _open(ident, title, desc, width, height)
    if not items:
        return _empty(lines, width, top + row * 0.7)

    step, axis_top = nice_scale(max(value for _, value in items))
    plot_bottom = top + len(items) * row
    for tick in range(0, axis_top + 1, step):
        x = left + plot_w * tick / axis_top
        lines.append(
            f'<line x1="{_n(x)}" y1="{top}" x2="{_n(x)}" y2="{plot_bottom}"'
            f' stroke="{GRID}" stroke-width="1"/>'
        )
        lines.append(
            f'<text class="tick" x="{_n(x)}" y="{plot_bottom + 14}" text-anchor="middle"'
            f' font-size="10" fill="{MUTED}">{_fmt(tick)}</text>'
        )
    for i, (label, value) in enumerate(items):
        y = top + i * row + (row - bar_h) / 2
        w = plot_w * value / axis_top
        if value > 0:
            w = max(w, 1.0)
        field = fields[i] if fields is not None and i < len(fields) else None
        data = f' data-field="{_e(field)}"' if field else ""
        shown = _clip(label, label_chars)
        full = f"<title>{_e(label)}</title>" if shown != label else ""  # clipped: tooltip
        lines.append(
            f'<text class="category" x="{left - 8}" y="{_n(y + bar_h - 5)}" text-anchor="end">'
            f"{full}{_e(shown)}</text>"
        )
        lines.append(
            f'<rect x="{left}" y="{_n(y)}" width="{_n(w)}" height="{bar_h}" fill="{_e(color)}">'
            f"<title>{_e(label)}: {_fmt(value)}</title></rect>"
        )
        lines.append(
            f'<text class="value" x="{_n(left + w + 6)}" y="{_n(y + bar_h - 5)}"'
            f' font-size="11"{data}>{_fmt(value)}</text>'
        )
    lines.append(
        f'<line x1="{left}" y1="{plot_bottom}" x2="{left + plot_w}" y2="{plot_bottom}"'
        f' stroke="{MUTED}" stroke-width="1"/>'
    )
    lines.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{plot_bottom}"'
        f' stroke="{MUTED}" stroke-width="1"/>'
    )
    lines.append(
        f'<text class="axis-label" x="{_n(left + plot_w / 2)}" y="{height - 8}"'
        f' text-anchor="middle" fill="{MUTED}">{_e(value_label)}</text>'
    )
    if category_label:
        lines.append(
            f'<text class="axis-label" x="0" y="{top - 4}" font-size="11"'
            f' fill="{MUTED}">{_e(category_label)}</text>'
        )
    lines.append("</svg>")
    return "\n".join(lines)


def stacked_bars(
    title: str,
    buckets: list[tuple[str, dict[str, int]]],
    series: list[str],
    *,
    colors: Mapping[str, str] | None = None,
    x_label: str = "",
    y_label: str = "count",
    width: int = 720,
    height: int = 300,
    ident: str | None = None,
) -> str:
    """Vertical bars, one per ``(bucket label, {series: value})``, each
    stacking ``series`` from the bottom in the given order (e.g. accesses
    per hour, allowed and denied).

    Bars wide enough carry their total on top; narrower ones leave that to
    the tallest bar and to the ``<title>`` tooltip of every segment. The
    legend shows each series' total over all buckets."""
    ident = _ident(title, ident)
    colors = dict(colors or {})
    for i, name in enumerate(series):
        colors.setdefault(name, PALETTE[i % len(PALETTE)])
    totals = {name: sum(values.get(name, 0) for _, values in buckets) for name in series}
    desc = _describe(
        "Stacked bar chart of " + ", ".join(series),
        [
            f"{label}: " + ", ".join(f"{name} {_fmt(values.get(name, 0))}" for name in series)
            for label, values in buckets
        ],
    )
    lines = _open(ident, title, desc, width, height)

    # legend: one swatch and total per series, under the title
    x = 0.0
    for name in series:
        lines.append(
            f'<rect x="{_n(x)}" y="26" width="10" height="10" fill="{_e(colors[name])}"/>'
            f'<text class="legend" x="{_n(x + 14)}" y="35" font-size="11">'
            f"{_e(name)} ({_fmt(totals[name])})</text>"
        )
        x += 14 + 7 * (len(name) + len(_fmt(totals[name])) + 3) + 12

    left, right, top, bottom = 60, 12, 60, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    plot_bottom = top + plot_h
    if not buckets:
        return _empty(lines, width, top + plot_h / 2)

    stack_totals = [sum(values.get(name, 0) for name in series) for _, values in buckets]
    peak = max(stack_totals)
    step, axis_top = nice_scale(peak)
    for tick in range(0, axis_top + 1, step):
        y = plot_bottom - plot_h * tick / axis_top
        lines.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{left + plot_w}" y2="{_n(y)}"'
            f' stroke="{GRID}" stroke-width="1"/>'
        )
        lines.append(
            f'<text class="tick" x="{left - 6}" y="{_n(y + 4)}" text-anchor="end"'
            f' font-size="10" fill="{MUTED}">{_fmt(tick)}</text>'
        )

    n = len(buckets)
    slot = plot_w / n
    bar_w = max(slot * 0.72, 1.0)
    wide = slot >= 30
    label_every = max(1, math.ceil(n / max(1, plot_w // 96)))
    peak_index = stack_totals.index(peak)
    for i, (label, values) in enumerate(buckets):
        x0 = left + i * slot + (slot - bar_w) / 2
        y = float(plot_bottom)
        lines.append(f'<g class="bar"><title>{_e(label)}: {_fmt(stack_totals[i])}</title>')
        for name in series:
            value = values.get(name, 0)
            if value <= 0:
                continue
            h = plot_h * value / axis_top
            y -= h
            lines.append(
                f'<rect x="{_n(x0)}" y="{_n(y)}" width="{_n(bar_w)}" height="{_n(h)}"'
                f' fill="{_e(colors[name])}"><title>{_e(label)}: {_e(name)}'
                f" {_fmt(value)}</title></rect>"
            )
        lines.append("</g>")
        if stack_totals[i] > 0 and (wide or i == peak_index):
            lines.append(
                f'<text class="value" x="{_n(x0 + bar_w / 2)}" y="{_n(y - 4)}"'
                f' text-anchor="middle" font-size="10">{_fmt(stack_totals[i])}</text>'
            )
        if i % label_every == 0:
            lines.append(
                f'<text class="tick" x="{_n(x0 + bar_w / 2)}" y="{plot_bottom + 15}"'
                f' text-anchor="middle" font-size="10" fill="{MUTED}">{_e(label)}</text>'
            )
    lines.append(
        f'<line x1="{left}" y1="{plot_bottom}" x2="{left + plot_w}" y2="{plot_bottom}"'
        f' stroke="{MUTED}" stroke-width="1"/>'
    )
    lines.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{plot_bottom}"'
        f' stroke="{MUTED}" stroke-width="1"/>'
    )
    if x_label:
        lines.append(
            f'<text class="axis-label" x="{_n(left + plot_w / 2)}" y="{height - 10}"'
            f' text-anchor="middle" fill="{MUTED}">{_e(x_label)}</text>'
        )
    mid = top + plot_h / 2
    lines.append(
        f'<text class="axis-label" x="14" y="{_n(mid)}" text-anchor="middle" fill="{MUTED}"'
        f' transform="rotate(-90 14 {_n(mid)})">{_e(y_label)}</text>'
    )
    lines.append("</svg>")
    return "\n".join(lines)
