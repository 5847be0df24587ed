"""The equity chart: an inline SVG drawn on the server, so the page needs no charting library or script.

Two panels share the time axis: equity, with a marker at each cycle that traded (up for a cycle that
bought, down for one that only sold), and below it the drawdown, each point's fall below the running peak
in percent, as ``crypto-bot replay --plot`` draws it (:func:`crypto_bot_tools.charts.drawdown`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Final

from crypto_bot_tools.charts import Point, drawdown
from crypto_bot_tools.dashboard.equity import EquityPoint

__all__ = ["Plotted", "equity_svg", "plot"]

WIDTH: Final = 720
HEIGHT: Final = 310
# Room for the value labels on the left; the equity panel, then the drawdown panel, then the dates.
LEFT: Final = 78
RIGHT: Final = 12
TOP: Final = 12
MAIN_BOTTOM: Final = 200
DRAWDOWN_TOP: Final = 218
DRAWDOWN_BOTTOM: Final = 278
DATES: Final = 300
SHALLOWEST: Final = Decimal(-1)  # the drawdown panel spans at least 1%, so a flat curve is not drawn as a cliff


@dataclass(frozen=True)
class Plotted:
    """One point of the series where the chart draws it (SVG user units, y down), with its drawdown."""

    point: EquityPoint
    equity: Decimal
    drawdown: Decimal  # percent below the running peak: zero or negative
    x: float
    y: float
    drawdown_y: float


def plot(points: Sequence[EquityPoint]) -> list[Plotted]:
    """Place each point with a known equity: time along x (evenly when all share one moment), equity along y."""
    known = [(p, p.equity) for p in points if p.equity is not None]
    if not known:
        return []
    values = [equity for _p, equity in known]
    low, high = min(values), max(values)
    if low == high:  # a flat line sits in the middle
        low, high = low - 1, high + 1
    falls = drawdown([Point(p.at, equity) for p, equity in known])
    deepest = min([SHALLOWEST, *(f.value for f in falls)])
    first, last = known[0][0].at.timestamp(), known[-1][0].at.timestamp()
    span_x = WIDTH - LEFT - RIGHT
    plotted = []
    for n, ((point, equity), fall) in enumerate(zip(known, falls, strict=True)):
        if last > first:
            share = (point.at.timestamp() - first) / (last - first)
        else:
            share = n / (len(known) - 1) if len(known) > 1 else 0.5
        x = LEFT + share * span_x
        y = TOP + float((high - equity) / (high - low)) * (MAIN_BOTTOM - TOP)
        drawdown_y = DRAWDOWN_TOP + float(fall.value / deepest) * (DRAWDOWN_BOTTOM - DRAWDOWN_TOP)
        plotted.append(Plotted(point, equity, fall.value, round(x, 1), round(y, 1), round(drawdown_y, 1)))
    return plotted


def equity_svg(points: Sequence[EquityPoint], quote: str) -> str:
    """Return the chart as an ``<svg>`` element: the equity line with a dot per point and a marker per trading
    cycle, the drawdown panel, and the value and date ranges."""
    plotted = plot(points)
    if not plotted:
        return '<p class="empty">No equity to draw yet: no cycle has run, or a holding has no known price.</p>'
    unit = f" {escape(quote)}" if quote else ""
    line = " ".join(f"{p.x},{p.y}" for p in plotted)
    dots = "".join(
        f'<circle cx="{p.x}" cy="{p.y}" r="3.5" data-equity="{p.equity:.2f}">'
        f"<title>{escape(_label(p.point))}: {p.equity:,.2f}{unit}</title></circle>"
        for p in plotted
    )
    markers = "".join(_marker(p) for p in plotted if p.point.trades)
    fall = " ".join(f"{p.x},{p.drawdown_y}" for p in plotted)
    area = f"{plotted[0].x},{DRAWDOWN_TOP} {fall} {plotted[-1].x},{DRAWDOWN_TOP}"
    deepest = min(p.drawdown for p in plotted)
    axes = "".join(
        f'<line class="axis" x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>'
        for top, bottom in ((TOP, MAIN_BOTTOM), (DRAWDOWN_TOP, DRAWDOWN_BOTTOM))
    )
    top_y, low_y = min(p.y for p in plotted), max(p.y for p in plotted)
    labels = (
        f'<text class="value" x="{LEFT - 6}" y="{top_y + 4}" text-anchor="end">{max(p.equity for p in plotted):,.2f}'
        "</text>"
        + (
            f'<text class="value" x="{LEFT - 6}" y="{low_y + 4}" text-anchor="end">'
            f"{min(p.equity for p in plotted):,.2f}</text>"
            if low_y - top_y > 12
            else ""
        )
        + f'<text class="value" x="{LEFT - 6}" y="{DRAWDOWN_TOP + 4}" text-anchor="end">0%</text>'
        + f'<text class="value" x="{LEFT - 6}" y="{DRAWDOWN_BOTTOM}" text-anchor="end">drawdown</text>'
        + f'<text class="date" x="{LEFT}" y="{DATES}">{escape(_date(plotted[0].point.at))}</text>'
        + f'<text class="date" x="{WIDTH - RIGHT}" y="{DATES}" text-anchor="end">'
        f"{escape(_date(plotted[-1].point.at))}</text>"
    )
    title = f"equity ({escape(quote)}) and drawdown" if quote else "equity and drawdown"
    return (
        f'<svg class="equity" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" '
        f'data-max-drawdown="{deepest:.2f}" xmlns="http://www.w3.org/2000/svg">{axes}'
        f'<polyline class="line" points="{line}"/>{dots}{markers}'
        f'<polygon class="drawdown" points="{area}"/>{labels}</svg>'
    )


def _marker(p: Plotted) -> str:
    """A triangle above the cycle's point: up when the cycle bought, down when it only sold."""
    bought = any(trade.startswith("buy ") for trade in p.point.trades)
    tip, base = (p.y - 16, p.y - 8) if bought else (p.y - 8, p.y - 16)
    shape = f"{p.x},{tip} {p.x - 5},{base} {p.x + 5},{base}"
    kind = "entry" if bought else "exit"
    return (
        f'<polygon class="marker {kind}" points="{shape}"><title>{escape("; ".join(p.point.trades))}</title></polygon>'
    )


def _label(point: EquityPoint) -> str:
    name = {"start": "before the first cycle", "now": "now"}.get(point.kind, point.cycle_id or "")
    return f"{name} ({_date(point.at)})"


def _date(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
