"""Charts as inline SVG for reports that must open offline and travel as an email attachment: no script, no CDN,
no font download. Each chart is one ``<svg role="img">`` with a ``<title>`` and ``<desc>`` (what a screen reader
says) and sizes itself to its container through ``viewBox``.

A chart library was weighed and left out: the two charts the daily report needs (bars against a target, a line
against a target) are ~100 lines of plain strings, every text is escaped here, and the report's lock stays as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ROW = 24  # height of one bar row
LABEL_WIDTH = 130
PALETTE = {"ok": "#2f855a", "warn": "#c05621", "bad": "#c53030", "neutral": "#2b6cb0"}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    tone: str = "neutral"  # a PALETTE key


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.1f}"
    return f"{text}{unit}"


def _frame(title: str, desc: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" class="chart" font-family="system-ui, sans-serif" '
        f'font-size="12">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{''.join(body)}</svg>"
    )


def bar_chart(
    title: str,
    desc: str,
    bars: Sequence[Bar],
    *,
    unit: str = "",
    target: float | None = None,
    scale: float = 0,
    width: int = 480,
) -> str:
    """Horizontal bars, one row each, the value written at the bar's end; ``target`` draws a dashed line.
    ``scale`` is the value of a full-width bar (default: the largest value, or the target if larger); ``width``
    the drawing's width in its own units (about the pixels it is shown at, so its text reads at 12 px)."""
    plot = width - LABEL_WIDTH - 60
    top = max([scale, target or 0, *(b.value for b in bars)]) or 1.0
    height = 20 + ROW * max(len(bars), 1) + 10
    body: list[str] = []
    if not bars:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#4a5568">no data</text>')
    for index, bar in enumerate(bars):
        y = 20 + index * ROW
        length = max(plot * max(bar.value, 0) / top, 1)
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 16}" text-anchor="end" fill="#1a202c">{escape(bar.label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{length:.1f}" height="{ROW - 8}" rx="3" '
            f'fill="{PALETTE.get(bar.tone, PALETTE["neutral"])}"><title>{escape(bar.label)}: '
            f"{escape(_fmt(bar.value, unit))}</title></rect>"
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 16}" fill="#1a202c">'
            f"{escape(_fmt(bar.value, unit))}</text>"
        )
    if target is not None:
        x = LABEL_WIDTH + plot * target / top
        body.append(
            f'<line x1="{x:.1f}" y1="12" x2="{x:.1f}" y2="{height - 6}" stroke="#c53030" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="10" text-anchor="middle" fill="#c53030">target {escape(_fmt(target, unit))}</text>'
        )
    return _frame(title, desc, width, height, body)


def line_chart(
    title: str,
    desc: str,
    points: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    target: float | None = None,
    width: int = 1000,
) -> str:
    """A line over labelled points (left to right, e.g. hours), a dot per point; ``target`` draws a dashed line."""
    height, left, right, top_pad, bottom = 220, 56, 16, 16, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = max([target or 0, *(v for _, v in points)]) * 1.1 or 1.0
    body = [
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - right}" y2="{top_pad + plot_h}" stroke="#a0aec0"/>',
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" fill="#4a5568">{escape(_fmt(top, unit))}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" fill="#4a5568">0</text>',
    ]
    if not points:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#4a5568">no data</text>')
    step = plot_w / max(len(points) - 1, 1)
    xy = [(left + i * step, top_pad + plot_h - plot_h * v / top) for i, (_, v) in enumerate(points)]
    if len(xy) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        body.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE["neutral"]}" stroke-width="2"/>')
    for (label, value), (x, y) in zip(points, xy, strict=True):
        over = target is not None and value > target
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{PALETTE["bad" if over else "neutral"]}">'
            f"<title>{escape(label)}: {escape(_fmt(value, unit))}</title></circle>"
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#4a5568">{escape(label)}</text>'
        )
    if target is not None:
        y = top_pad + plot_h - plot_h * target / top
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#c53030" '
            f'stroke-dasharray="4 3"/><text x="{width - right}" y="{y - 4:.1f}" text-anchor="end" '
            f'fill="#c53030">target {escape(_fmt(target, unit))}</text>'
        )
    return _frame(title, desc, width, height, body)
