"""The equity chart: an inline SVG drawn on the server, so the page needs no charting library or script."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Final

from crypto_bot_tools.dashboard.equity import EquityPoint

__all__ = ["Plotted", "equity_svg", "plot"]

WIDTH: Final = 720
HEIGHT: Final = 240
# Room for the value labels on the left and the dates below.
LEFT: Final = 78
RIGHT: Final = 12
TOP: Final = 12
BOTTOM: Final = 28


@dataclass(frozen=True)
class Plotted:
    """One point of the series where the chart draws it (SVG user units, y down)."""

    point: EquityPoint
    equity: Decimal
    x: float
    y: float


def plot(points: Sequence[EquityPoint]) -> list[Plotted]:
    """Place each point with a known equity: time along x (evenly when all share one moment), equity along y."""
    known = [(p, p.equity) for p in points if p.equity is not None]
    if not known:
        return []
    values = [equity for _p, equity in known]
    low, high = min(values), max(values)
    if low == high:  # a flat line sits in the middle
        low, high = low - 1, high + 1
    first, last = known[0][0].at.timestamp(), known[-1][0].at.timestamp()
    span_x = WIDTH - LEFT - RIGHT
    span_y = HEIGHT - TOP - BOTTOM
    plotted = []
    for n, (point, equity) in enumerate(known):
        if last > first:
            share = (point.at.timestamp() - first) / (last - first)
        else:
            share = n / (len(known) - 1) if len(known) > 1 else 0.5
        x = LEFT + share * span_x
        y = TOP + float((high - equity) / (high - low)) * span_y
        plotted.append(Plotted(point, equity, round(x, 1), round(y, 1)))
    return plotted


def equity_svg(points: Sequence[EquityPoint], quote: str) -> str:
    """Return the chart as an ``<svg>`` element: the line, a dot per cycle with its value, the axes' ranges."""
    plotted = plot(points)
    if not plotted:
        return '<p class="empty">No equity to draw yet: no cycle has run, or a holding has no known price.</p>'
    values = [p.equity for p in plotted]
    line = " ".join(f"{p.x},{p.y}" for p in plotted)
    dots = "".join(
        f'<circle cx="{p.x}" cy="{p.y}" r="3.5" data-equity="{p.equity:.2f}">'
        f"<title>{escape(_label(p.point))}: {p.equity:,.2f} {escape(quote)}</title></circle>"
        for p in plotted
    )
    bottom = HEIGHT - BOTTOM
    axes = (
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>'
    )
    top_value = max(values)
    low_value = min(values)
    top_y = min(p.y for p in plotted)
    low_y = max(p.y for p in plotted)
    labels = (
        f'<text class="value" x="{LEFT - 6}" y="{top_y + 4}" text-anchor="end">{top_value:,.2f}</text>'
        + (
            f'<text class="value" x="{LEFT - 6}" y="{low_y + 4}" text-anchor="end">{low_value:,.2f}</text>'
            if low_y - top_y > 12
            else ""
        )
        + f'<text class="date" x="{LEFT}" y="{HEIGHT - 8}">{escape(_date(plotted[0].point.at))}</text>'
        + f'<text class="date" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{escape(_date(plotted[-1].point.at))}</text>"
    )
    title = f"equity ({escape(quote)})" if quote else "equity"
    return (
        f'<svg class="equity" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" '
        f'xmlns="http://www.w3.org/2000/svg">{axes}<polyline class="line" points="{line}"/>{dots}{labels}</svg>'
    )


def _label(point: EquityPoint) -> str:
    name = {"start": "before the first cycle", "now": "now"}.get(point.kind, point.cycle_id or "")
    return f"{name} ({_date(point.at)})"


def _date(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
