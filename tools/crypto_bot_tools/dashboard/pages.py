"""The dashboard's pages as server-rendered HTML: every value from the stack is escaped here, once, on output.

Each page is a shell (:func:`page`: the header, the navigation, the kill switch on Overview) around its
content, which :mod:`~crypto_bot_tools.dashboard.app` also serves alone as a fragment that the page's script
fetches every few seconds and puts in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Final

from crypto_bot.domain.controls import ACCOUNT, Controls
from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.money import ZERO, plain
from crypto_bot.engine.records import IntentRecord
from crypto_bot_tools.dashboard.equity import EquityPoint, equity_series
from crypto_bot_tools.dashboard.reader import ExecutionView, Reading
from crypto_bot_tools.dashboard.svg import equity_svg
from crypto_bot_tools.ops.rows import CycleRow, Holdings, SignalRow

__all__ = [
    "PAGES",
    "SignalFilter",
    "confirm_page",
    "cycles_content",
    "error_page",
    "orders_content",
    "overview_content",
    "page",
    "signals_content",
]

# Path (under the prefix) and title of each page, in the navigation's order.
PAGES: Final = {"overview": ("/", "Overview"), "signals": ("/signals", "Signals"),
                "cycles": ("/cycles", "Cycles"), "orders": ("/orders", "Orders")}  # fmt: skip
EQUITY_ROWS: Final = 10  # the last points listed under the chart
CONTROL_EVENTS: Final = 5  # as `crypto-bot positions` shows them
_VERBS: Final = {"pause": "Pause", "resume": "Resume", "flatten": "Flatten"}


def h(value: object) -> str:
    """Escape a value from the stack for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def page(
    name: str,
    content: str,
    *,
    prefix: str,
    stack: str,
    query: str = "",
    refresh: float,
    notice: tuple[str, bool] | None = None,
    controls: str = "",
) -> str:
    """Return a whole page: ``content`` (refreshed from its fragment every ``refresh`` seconds) in the shell."""
    path, title = PAGES[name]
    links = "".join(
        f'<a href="{h(prefix + p or "/")}"{" aria-current=page" if key == name else ""}>{h(t)}</a>'
        for key, (p, t) in PAGES.items()
    )
    fragment = f"{prefix}/fragment/{name}" + (f"?{query}" if query else "")
    shown = ""
    if notice is not None:
        text, failed = notice
        shown = f'<p class="notice{" error" if failed else ""}" role="status">{h(text)}</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)} · crypto-bot {h(stack)}</title>"
        '<link rel="icon" href="data:,">'  # no icon: the browser asks for none
        f'<link rel="stylesheet" href="{h(prefix)}/static/dashboard.css">'
        f'<script src="{h(prefix)}/static/dashboard.js" defer></script></head><body>'
        f'<header><h1>crypto-bot <span class="stack">{h(stack)}</span></h1><nav>{links}</nav>'
        '<span id="updated" aria-live="polite"></span></header>'
        f"{shown}{controls}"
        f'<main id="content" data-fragment="{h(fragment)}" data-refresh="{int(refresh * 1000)}">{content}</main>'
        "</body></html>"
    )


def error_page(status: int, message: str) -> str:
    """Return a small page for a refused or failed request, its reason as text."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status}</title></head>'
        f'<body><h1>{status}</h1><p class="error">{h(message)}</p></body></html>'
    )


# ------------------------------------------------------------------------------------------ overview


def overview_content(
    holdings: Reading[Holdings], cycles: Reading[list[CycleRow]], signals: Reading[list[SignalRow]], now: datetime
) -> str:
    """Equity over time, cash, each strategy's position, and the pause and guard state."""
    parts = [_failed("positions", holdings), _failed("cycles", cycles), _failed("signals", signals)]
    held = holdings.value
    if held is None:
        return "".join(parts)
    quote = held.quote or _quote(cycles.value or [])
    parts.append(_controls_state(held.controls))
    points = equity_series(cycles.value or [], signals.value or [], held, now) if cycles.value is not None else []
    parts.append(_figures(held, quote, points))
    parts.append(f"<section><h2>Equity{f' ({h(quote)})' if quote else ''}</h2>{equity_svg(points, quote)}")
    parts.append(_equity_table(points) + "</section>")
    parts.append(_positions(held, quote))
    parts.extend(f'<p class="note">note: {h(note)}</p>' for note in held.notes)
    return "".join(parts)


def _figures(held: Holdings, quote: str, points: Sequence[EquityPoint]) -> str:
    from crypto_bot_tools.charts import Point, drawdown

    unit = f" {h(quote)}" if quote else ""
    cash_share = f" ({held.cash / held.equity:.2%})" if held.cash is not None and held.equity else ""
    falls = drawdown([Point(p.at, p.equity) for p in points if p.equity is not None])
    fall = f"{falls[-1].value:.2f}% (deepest {min(f.value for f in falls):.2f}%)" if falls else "-"
    figures = [
        ("equity", "-" if held.equity is None else f"{_money(held.equity)}{unit}"),
        ("cash", "-" if held.cash is None else f"{_money(held.cash)}{unit}{cash_share}"),
        ("positions", str(len(held.positions))),
        ("drawdown", fall),
    ]
    cells = "".join(
        f'<div class="figure" id="figure-{k}"><span>{k}</span><strong>{v}</strong></div>' for k, v in figures
    )
    return f'<section class="figures">{cells}</section>'


def _equity_table(points: Sequence[EquityPoint]) -> str:
    if not points:
        return ""
    rows = [
        [
            _clock(p.at),
            {"start": "before the first cycle", "now": "now"}.get(p.kind, p.cycle_id or ""),
            _money(p.cash),
            ", ".join(f"{plain(a)} {s}" for s, a in sorted(p.holdings.items())) or "-",
            "-" if p.equity is None else _money(p.equity),
        ]
        for p in points[-EQUITY_ROWS:]
    ]
    return _table(["at (UTC)", "after", "cash", "holdings", "equity"], rows, "equity-points", numeric={2, 4})


def _positions(held: Holdings, quote: str) -> str:
    unit = f" ({quote})" if quote else ""
    drift = held.drift or {}
    rows = []
    for p in held.positions:
        base = split_symbol(p.symbol)[0] if "/" in p.symbol else p.symbol
        rows.append(
            [
                p.strategy,
                p.symbol,
                plain(p.amount),
                _money(p.cost_basis),
                "-" if p.value is None else _money(p.value),
                "-" if p.weight is None else f"{p.weight:.2%}",
                "-" if held.drift is None else plain(drift.get(base, ZERO)),
            ]
        )
    if held.cash is not None:
        weight = f"{held.cash / held.equity:.2%}" if held.equity else "-"
        rows.append([f"cash{unit}", "", "", "", _money(held.cash), weight, ""])
    table = _table(
        ["strategy", "symbol", "amount", f"cost basis{unit}", f"value{unit}", "weight", "drift"],
        rows,
        "positions",
        numeric={2, 3, 4, 5, 6},
        empty="No position: every strategy is flat.",
    )
    return f"<section><h2>Positions</h2>{table}{_drift(held)}</section>"


def _drift(held: Holdings) -> str:
    if held.drift is None:
        return ""
    balances = held.balances or {}
    rows = [
        [asset, plain(held.ledger.get(asset, ZERO)), plain(balances.get(asset, ZERO)), plain(difference)]
        for asset, difference in held.drift.items()
    ]
    if not rows:
        return ""
    return "<h3>Ledger against the balances</h3>" + _table(
        ["asset", "ledger", "balance", "drift"], rows, "drift", numeric={1, 2, 3}
    )


def _controls_state(controls: Controls | None) -> str:
    """The pause and guard state, as `crypto-bot positions` shows it (said in a sentence when nothing holds)."""
    if controls is None:
        return '<section id="controls-state"><h2>Pause and guards</h2><p>Not read from this stack.</p></section>'
    rows: list[list[str]] = []
    if controls.paused:
        rows.append(["account", "paused", _clock(controls.paused.at), controls.paused.by, controls.paused.reason])
    for key, hold in sorted(controls.paused_strategies.items()):
        rows.append([key, "paused", _clock(hold.at), hold.by, hold.reason])
    if controls.account_trip:
        trip = controls.account_trip
        rows.append(["account", "guard tripped", _clock(trip.at), "", trip.reason])
    for key, hold in sorted(controls.strategy_trips.items()):
        rows.append([key, "guard tripped", _clock(hold.at), "", hold.reason])
    for key, hold in sorted(controls.cooldowns.items()):
        rows.append([key, f"cooldown until {_clock(hold.at)}", "", "", hold.reason])
    if controls.flatten:
        scope = ", ".join(controls.flatten.strategies) if controls.flatten.strategies is not None else "account"
        rows.append([scope, "flatten requested", _clock(controls.flatten.at), controls.flatten.by,
                     "the next cycle sells these positions"])  # fmt: skip
    if rows:
        state = '<p class="state held">Entries are held back.</p>' + _table(
            ["scope", "state", "since (UTC)", "by", "why"], rows, "holds"
        )
    else:
        state = '<p class="state running">Running: nothing holds entries back.</p>'
    events = ""
    if controls.events:
        shown = controls.events[-CONTROL_EVENTS:]
        events = "<h3>Last changes</h3>" + _table(
            ["at (UTC)", "scope", "what", "detail"],
            [[_clock(e.at), "account" if e.scope == ACCOUNT else e.scope, e.what, e.detail] for e in shown],
            "control-events",
        )
    return f'<section id="controls-state"><h2>Pause and guards</h2>{state}{events}</section>'


def controls_form(*, prefix: str, token: str, strategies: Iterable[str]) -> str:
    """The kill switch: pause, resume or flatten the account or one strategy, each confirmed before it is sent."""
    options = '<option value="">the whole account</option>' + "".join(
        f'<option value="{h(key)}">{h(key)}</option>' for key in sorted(set(strategies))
    )
    buttons = "".join(
        f'<button type="submit" name="command" value="{command}" class="{command}">{verb}</button>'
        for command, verb in _VERBS.items()
    )
    return (
        f'<section class="kill-switch"><h2>Kill switch</h2><form method="post" action="{h(prefix)}/control" '
        'data-confirm="yes">'
        f'<input type="hidden" name="csrf" value="{h(token)}"><input type="hidden" name="confirmed" value="">'
        f'<label>scope <select name="strategy">{options}</select></label>'
        '<label>reason <input name="reason" maxlength="300" placeholder="kept in the record and notified"></label>'
        f'{buttons}</form><p class="hint">Pause: entries are ignored; exits and stop losses still run. Flatten: '
        "pause, then a cycle now sells the positions. Resume: entries are taken again.</p></section>"
    )


def confirm_page(command: str, strategy: str, reason: str, *, prefix: str, token: str, stack: str) -> str:
    """The confirmation form a control without JavaScript's confirm() gets before anything is done."""
    scope = "the whole account" if not strategy else f"strategy {strategy}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>Confirm · crypto-bot {h(stack)}</title><link rel="stylesheet" href="{h(prefix)}/static/dashboard.css">'
        f"</head><body><main><h1>{h(_VERBS[command])} {h(scope)}?</h1>"
        f'<form method="post" action="{h(prefix)}/control"><input type="hidden" name="csrf" value="{h(token)}">'
        f'<input type="hidden" name="confirmed" value="yes"><input type="hidden" name="command" value="{h(command)}">'
        f'<input type="hidden" name="strategy" value="{h(strategy)}"><input type="hidden" name="reason" '
        f'value="{h(reason)}"><button type="submit">{h(_VERBS[command])}</button> '
        f'<a href="{h(prefix or "/")}">Cancel</a></form></main></body></html>'
    )


# ------------------------------------------------------------------------------------------ signals


@dataclass(frozen=True)
class SignalFilter:
    """Which signals the Signals page lists: ``strategy`` and ``status`` as the query parameters give them."""

    strategy: str = ""
    status: str = ""
    problems: list[str] = field(default_factory=list)

    def keeps(self, row: SignalRow) -> bool:
        """Say whether the row passes the filter."""
        return (not self.strategy or row.strategy == self.strategy) and (not self.status or row.status == self.status)

    def query(self) -> str:
        """The filter as a query string (without ``?``)."""
        import urllib.parse

        return urllib.parse.urlencode({k: v for k, v in (("strategy", self.strategy), ("status", self.status)) if v})

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> SignalFilter:
        """Read ``strategy`` and ``status`` from the query; an unknown status is named and ignored."""
        from crypto_bot.domain.allocation import SignalStatus

        strategy = query.get("strategy", "").strip()
        status = query.get("status", "").strip().lower()
        known = [s.value for s in SignalStatus]
        problems = []
        if status and status not in known:
            problems.append(f"status {status!r}: not a signal status; use one of {', '.join(known)}")
            status = ""
        return cls(strategy, status, problems)


def signals_content(signals: Reading[list[SignalRow]], wanted: SignalFilter, *, prefix: str) -> str:
    """Every alert, newest first, with its status and reason, refused ones included; filtered by ``wanted``."""
    from crypto_bot.domain.allocation import SignalStatus

    parts = [_failed("signals", signals)]
    parts.extend(f'<p class="error">{h(problem)}</p>' for problem in wanted.problems)
    rows = signals.value or []
    strategies = sorted({r.strategy for r in rows if r.strategy} | ({wanted.strategy} - {""}))
    strategy_options = '<option value="">every strategy</option>' + "".join(
        f'<option value="{h(s)}"{" selected" if s == wanted.strategy else ""}>{h(s)}</option>' for s in strategies
    )
    status_options = '<option value="">every status</option>' + "".join(
        f'<option value="{s.value}"{" selected" if s.value == wanted.status else ""}>{s.value}</option>'
        for s in SignalStatus
    )
    parts.append(
        f'<form class="filters" method="get" action="{h(prefix)}/signals">'
        f'<label>strategy <select name="strategy">{strategy_options}</select></label>'
        f'<label>status <select name="status">{status_options}</select></label>'
        '<button type="submit">Filter</button></form>'
    )
    kept = [r for r in reversed(rows) if wanted.keeps(r)]
    table_rows = [
        [
            _clock(r.queued_at or r.received_at),
            _clock(r.time),
            r.ticker,
            r.strategy,
            r.action,
            r.price,
            _Status(r.status),
            r.reason,
            r.id,
        ]
        for r in kept
    ]
    parts.append(f'<p class="count">{len(kept)} of {len(rows)} signal{"s" if len(rows) != 1 else ""}</p>')
    parts.append(
        _table(
            ["received (UTC)", "alert time (UTC)", "ticker", "strategy", "action", "price", "status", "reason", "id"],
            table_rows,
            "signals",
            numeric={5},
            empty="No signal matches.",
        )
    )
    return "".join(parts)


# ------------------------------------------------------------------------------------------ cycles


def cycles_content(executions: Reading[list[ExecutionView]], cycles: Reading[list[CycleRow]]) -> str:
    """Each execution, newest first: status, timing, the states it entered, and its cycle's orders."""
    parts = [_failed("executions", executions), _failed("cycles", cycles)]
    by_id = {row.record.cycle_id: row for row in cycles.value or []}
    views = executions.value or []
    if executions.value is not None and not views:
        parts.append('<p class="empty">No execution yet.</p>')
    for view in views:
        row = view.row
        took = f"{(row.stopped - row.started).total_seconds():.1f} s" if row.started and row.stopped else ""
        link = (
            f' <a class="console" href="{h(row.url)}" target="_blank" rel="noopener noreferrer">'
            "Step Functions console</a>"
            if row.url
            else ""
        )
        head = (
            f'<h3><span class="execution-name">{h(row.name)}</span> {_Status(row.status).html()}{link}</h3>'
            f'<p class="timing">started {h(_clock(row.started) or "-")} · stopped {h(_clock(row.stopped) or "-")}'
            f"{f' · took {h(took)}' if took else ''}</p>"
        )
        body = ""
        if view.path is None:
            body = f'<p class="error">States not read: {h(view.path_error or "")}</p>'
        else:
            steps = "".join(f"<li>{h(s.name)}{_state_time(s.entered, s.exited)}</li>" for s in view.path.states)
            body = f'<ol class="states">{steps}</ol>'
            if view.path.error:
                body += f'<p class="error">{h(view.path.error)}</p>'
            cycle = by_id.get(view.path.cycle_id or "")
            if view.path.cycle_id:
                body += f'<p class="cycle-id">cycle {h(view.path.cycle_id)}</p>'
            if cycle is not None:
                body += _orders_table(cycle.intents, f"orders-{row.name}", brief=True)
        parts.append(f'<article class="execution" data-status="{h(row.status)}">{head}{body}</article>')
    return "".join(parts)


def _state_time(entered: datetime | None, exited: datetime | None) -> str:
    if entered is None:
        return ""
    if exited is None:
        return f' <span class="when">{h(_clock(entered))}</span>'
    return f' <span class="when">{(exited - entered).total_seconds():.2f} s</span>'


# ------------------------------------------------------------------------------------------ orders


def orders_content(cycles: Reading[list[CycleRow]]) -> str:
    """Every order of each cycle, newest cycle first: its fills, fees and chase attempts."""
    parts = [_failed("cycles", cycles)]
    rows = cycles.value or []
    with_orders = [row for row in reversed(rows) if row.intents]
    if cycles.value is not None and not with_orders:
        parts.append('<p class="empty">No order yet.</p>')
    for row in with_orders:
        record = row.record
        kind = "stop-loss cycle" if record.urgent else "cycle"
        parts.append(
            f'<section class="cycle-orders"><h3>{kind} {h(record.cycle_id)} <span class="when">'
            f"{h(_clock(record.at))} UTC · {h(record.status)}</span></h3>"
            f"{_orders_table(row.intents, f'orders-{record.cycle_id}', brief=False)}</section>"
        )
    return "".join(parts)


def _orders_table(intents: Sequence[IntentRecord], table_id: str, *, brief: bool) -> str:
    rows = []
    for r in intents:
        average = _money(r.cost / r.filled) if r.filled else "-"
        fees = ", ".join(f"{plain(cost)} {currency}" for currency, cost in _fees(r).items()) or "-"
        row: list[object] = [
            r.intent.strategy,
            f"{r.intent.side.value} {r.intent.symbol}",
            r.intent.purpose.value,
            plain(r.intent.amount),
            plain(r.filled),
            average,
            _money(r.cost),
            fees,
            str(r.attempt + 1),
            _Status(r.status.value),
            r.reason,
        ]
        if not brief:
            row.insert(10, "; ".join(
                f"#{n + 1} {o.client_order_id or o.id}: {o.status.value}, {plain(o.filled)} of {plain(o.amount)} "
                f"at {plain(o.price)}" for n, o in enumerate(r.orders)) or "-")  # fmt: skip
        rows.append(row)
    headers = ["strategy", "order", "purpose", "amount", "filled", "avg price", "cost", "fees", "attempts", "status"]
    if not brief:
        headers.append("each attempt")
    headers.append("reason")
    return _table(headers, rows, table_id, numeric={3, 4, 5, 6, 8}, empty="No order.")


def _fees(record: IntentRecord) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for fee in record.fees:
        totals[fee.currency] = totals.get(fee.currency, ZERO) + fee.cost
    return totals


# ------------------------------------------------------------------------------------------ pieces


@dataclass(frozen=True)
class _Status:
    """A status cell, styled by its value."""

    value: str

    def html(self) -> str:
        return f'<span class="status status-{h(self.value.lower())}">{h(self.value)}</span>'


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    table_id: str,
    *,
    numeric: set[int] | None = None,
    empty: str = "",
) -> str:
    if not rows and empty:
        return f'<p class="empty" id="{h(table_id)}">{h(empty)}</p>'
    numeric = numeric or set()
    head = "".join(f"<th{' class=num' if n in numeric else ''}>{h(t)}</th>" for n, t in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if n in numeric else ''}>{c.html() if isinstance(c, _Status) else h(c)}</td>"
            for n, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{h(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _failed(what: str, reading: Reading[object]) -> str:
    if reading.error is None:
        return ""
    return f'<p class="error" role="alert">Could not read the {h(what)}: {h(reading.error)}</p>'


def _quote(cycles: Sequence[CycleRow]) -> str:
    for row in cycles:
        for record in row.intents:
            return split_symbol(record.intent.symbol)[1]
    return ""


def _clock(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if moment else ""


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"
