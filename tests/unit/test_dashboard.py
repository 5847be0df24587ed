"""The dashboard's pages, routes and checks, on a hand-written fake Source (no server, no socket).

What a page shows is asserted on its HTML: escaping of the stack's data, the Signals filters, the equity
series and its chart, the checks against cross-site requests on the controls, and a failing source.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.domain.controls import Controls, pause
from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.orders import Fee, OrderIntent, Purpose, Side
from crypto_bot.engine.records import CycleRecord, IntentRecord, IntentStatus, Phase
from crypto_bot_tools.cli import main
from crypto_bot_tools.dashboard import svg
from crypto_bot_tools.dashboard.app import Dashboard, Request, Response, allowed_hosts
from crypto_bot_tools.dashboard.equity import EquityPoint, equity_series
from crypto_bot_tools.dashboard.reader import Reading, StackReader
from crypto_bot_tools.ops.controls import ControlsChange
from crypto_bot_tools.ops.rows import (
    CycleOutcome,
    CycleRow,
    ExecutionPath,
    ExecutionRow,
    Holdings,
    PositionRow,
    SignalRow,
    StateVisit,
)

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
HOST = "127.0.0.1:8050"
SCRIPT = "<script>alert('x')</script>"


def signal(
    key: str, strategy: str, status: str, *, price: str = "60000", reason: str = "", at: datetime = T0
) -> SignalRow:
    return SignalRow(
        id=f"id-{key}", strategy=strategy, action="buy", status=status, reason=reason, dedupe_key=key,
        received_at=at, time=at, ticker=strategy, price=price,
    )  # fmt: skip


def intent(
    cycle: str, strategy: str, side: Side, filled: str, cost: str, *, fees: tuple[Fee, ...] = ()
) -> IntentRecord:
    symbol = f"{strategy.removesuffix('USDT')}/USDT"
    order = OrderIntent(
        intent_id=f"{cycle}-{strategy}", cycle_id=cycle, strategy=strategy, symbol=symbol, side=side,
        purpose=Purpose.ENTRY if side is Side.BUY else Purpose.EXIT, amount=D(filled), limit_price=D(1),
        notional=D(cost),
    )  # fmt: skip
    phase = Phase.ENTRIES if side is Side.BUY else Phase.EXITS
    return IntentRecord(order, phase, IntentStatus.FILLED, filled=D(filled), cost=D(cost), fees=list(fees))


def cycle(cycle_id: str, at: datetime, keys: list[str], intents: list[IntentRecord]) -> CycleRow:
    return CycleRow(CycleRecord(cycle_id, at, urgent=False, status="done", signal_keys=keys), intents)


# Two cycles: BTC bought at 60000 (a 6 USDT fee) after an alert at 61000, then sold at 66000, its alert's price.
CYCLES = [
    cycle("c1", T0, ["k1"], [intent("c1", "BTCUSDT", Side.BUY, "0.1", "6000", fees=(Fee(D(6), "USDT"),))]),
    cycle("c2", T0 + timedelta(hours=8), ["k2"], [intent("c2", "BTCUSDT", Side.SELL, "0.1", "6600")]),
]
SIGNALS = [
    signal("k1", "BTCUSDT", "filled", price="61000"),
    signal("k2", "BTCUSDT", "filled", price="66000", at=T0 + timedelta(hours=8)),
]
FLAT = Holdings(quote="USDT", positions=[], cash=D("10594"), equity=D("10594"), balances={}, ledger={}, drift={})


@dataclass
class FakeSource:
    """A stack as the Source protocol answers, recording the controls it is asked for."""

    holdings_answer: Holdings = field(default_factory=lambda: FLAT)
    signal_rows: list[SignalRow] = field(default_factory=lambda: list(SIGNALS))
    cycle_rows: list[CycleRow] = field(default_factory=lambda: list(CYCLES))
    failing: str = ""  # the method that raises ConfigError
    controls: list[tuple[str, str | None, str]] = field(default_factory=list)
    cycles_started: int = 0

    def _fail(self, name: str) -> None:
        if self.failing == name:
            raise ConfigError(f"cannot reach crypto-bot local at http://127.0.0.1:1 ({name})")

    def signals(self, limit: int) -> list[SignalRow]:
        self._fail("signals")
        return self.signal_rows[-limit:]

    def holdings(self, config_path: Path | None, *, with_prices: bool, with_balances: bool) -> Holdings:
        self._fail("holdings")
        return self.holdings_answer

    def executions(self, limit: int) -> list[ExecutionRow]:
        self._fail("executions")
        started = T0 + timedelta(hours=8)
        return [ExecutionRow("e2", "SUCCEEDED", started, started + timedelta(seconds=3), "arn:e2", "https://x/e2")]

    def execution_path(self, name: str) -> ExecutionPath:
        return ExecutionPath(name, [StateVisit("Collect", T0, T0 + timedelta(seconds=1)), StateVisit(SCRIPT)], "c2")

    def cycles(self, limit: int) -> list[CycleRow]:
        self._fail("cycles")
        return self.cycle_rows[-limit:]

    def cycle(self, console: Any, *, follow: bool, poll: float, timeout: float | None) -> CycleOutcome:
        assert follow is False
        self.cycles_started += 1
        return CycleOutcome("RUNNING", followed=False)

    def apply_control(
        self, command: str, *, strategy: str | None, reason: str, config_path: Path | None
    ) -> ControlsChange:
        self.controls.append((command, strategy, reason))
        after = pause(Controls(), by="me@local", reason=reason, at=T0, strategy=strategy)
        return ControlsChange(command, strategy, "me@local", reason, T0, True, f"Did {command}.", after)


def dashboard(source: FakeSource, *, prefix: str = "") -> Dashboard:
    reader = StackReader(source, ttl=0)
    return Dashboard(reader, stack="test", hosts=allowed_hosts("127.0.0.1", 8050), prefix=prefix, token="tok3n",
                     clock=lambda: T0 + timedelta(days=1))  # fmt: skip


def get(board: Dashboard, target: str, **headers: str) -> Response:
    return board.handle(Request("GET", target, {"host": HOST, **headers}))


def post(board: Dashboard, form: Mapping[str, str], **headers: str) -> Response:
    sent = {"host": HOST, "origin": f"http://{HOST}", **headers}
    body = urllib.parse.urlencode(form).encode()
    return board.handle(Request("POST", "/control", {k: v for k, v in sent.items() if v}, body))


def text(response: Response) -> str:
    return response.body.decode()


# ------------------------------------------------------------------------------------------ escaping


def test_an_alert_reason_with_a_script_shows_as_text() -> None:
    rows = [signal("k9", "", "rejected", reason=f"body: is not JSON (got {SCRIPT!r})")]
    html = text(get(dashboard(FakeSource(signal_rows=rows)), "/signals"))

    assert "<script>alert" not in html
    assert "body: is not JSON (got &quot;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;)" in html


def test_a_strategy_name_cannot_leave_its_attribute() -> None:
    name = '"><img src=x onerror=alert(1)>'
    html = text(get(dashboard(FakeSource(signal_rows=[signal("k1", name, "filled")])), "/signals"))

    assert "<img" not in html
    assert 'value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in html


def test_a_state_name_is_escaped_on_the_cycles_page() -> None:
    html = text(get(dashboard(FakeSource()), "/fragment/cycles"))

    assert "<li>&lt;script&gt;" in html
    assert 'href="https://x/e2"' in html  # the Step Functions console link


# ------------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(
    ("query", "kept"),
    [("", ["k3", "k2", "k1"]), ("status=rejected", ["k3"]), ("strategy=BTCUSDT", ["k2", "k1"]),
     ("strategy=BTCUSDT&status=rejected", []), ("status=REJECTED", ["k3"])],
)  # fmt: skip
def test_signals_page_keeps_the_strategy_and_status_asked_for(query: str, kept: list[str]) -> None:
    rows = [*SIGNALS, signal("k3", "", "rejected", reason="body: is not JSON")]
    html = text(get(dashboard(FakeSource(signal_rows=rows)), f"/fragment/signals?{query}"))

    assert [key for key in ("k3", "k2", "k1") if f"<td>id-{key}</td>" in html] == kept


def test_an_unknown_status_is_named_and_not_applied() -> None:
    html = text(get(dashboard(FakeSource()), "/signals?status=lost"))

    assert "status &#x27;lost&#x27;: not a signal status; use one of" in html
    assert "<td>id-k1</td>" in html


def test_the_page_polls_its_fragment_with_the_same_filter() -> None:
    html = text(get(dashboard(FakeSource(), prefix="/dashboard"), "/dashboard/signals?status=filled&strategy=BTCUSDT"))

    assert 'data-fragment="/dashboard/fragment/signals?strategy=BTCUSDT&amp;status=filled"' in html


# ------------------------------------------------------------------------------------------ equity


def test_equity_series_undoes_each_later_cycle_from_the_account_now() -> None:
    points = equity_series(CYCLES, SIGNALS, FLAT, T0 + timedelta(days=1))

    assert [(p.kind, p.cycle_id, p.cash, dict(p.holdings), p.equity) for p in points] == [
        ("start", None, D("10000"), {}, D("10000")),
        # 6000 and a 6 USDT fee paid; the position marked at its alert's 61000, not at its fill.
        ("cycle", "c1", D("3994"), {"BTC/USDT": D("0.1")}, D("10094.0")),
        ("cycle", "c2", D("10594"), {}, D("10594")),
        ("now", None, D("10594"), {}, D("10594")),
    ]


def test_a_holding_without_a_known_price_leaves_that_point_without_equity() -> None:
    # The buy's alert is unknown (not among the signals read) and the fill has no price either.
    bought = [cycle("c1", T0, ["gone"], [intent("c1", "BTCUSDT", Side.BUY, "0", "0")])]
    held = Holdings("USDT", [PositionRow("BTCUSDT", "BTC/USDT", D("0.1"), D("6000"), None, None)], D("4000"),
                    None, None, {}, None)  # fmt: skip
    points = equity_series(bought, [], held, T0)

    assert [(p.kind, p.equity) for p in points] == [("start", None), ("cycle", None)]
    assert svg.plot(points) == []


def test_the_chart_places_time_along_x_and_equity_along_y() -> None:
    points = equity_series(CYCLES, SIGNALS, FLAT, T0 + timedelta(days=1))
    plotted = svg.plot(points)

    assert [p.equity for p in plotted] == [D("10000"), D("10094.0"), D("10594"), D("10594")]
    assert plotted[0].x == svg.LEFT  # the start and the first cycle share a moment
    assert plotted[-1].x == svg.WIDTH - svg.RIGHT
    assert plotted[2].x == pytest.approx(svg.LEFT + (svg.WIDTH - svg.LEFT - svg.RIGHT) / 3, abs=0.1)
    assert plotted[2].y == svg.TOP  # the highest equity at the top
    assert plotted[0].y == svg.MAIN_BOTTOM  # the lowest at the bottom
    assert [p.drawdown for p in plotted] == [0, 0, 0, 0]  # each a new high
    assert {p.drawdown_y for p in plotted} == {svg.DRAWDOWN_TOP}


def test_the_drawdown_panel_shows_the_fall_below_the_running_peak() -> None:
    values = ["100", "120", "90", "120"]
    points = [EquityPoint(T0 + timedelta(hours=n), "cycle", f"c{n}", D(0), {}, D(v)) for n, v in enumerate(values)]
    plotted = svg.plot(points)

    assert [p.drawdown for p in plotted] == [0, 0, D(-25), 0]  # 90 is 25% below the peak of 120
    assert [p.drawdown_y for p in plotted] == [
        svg.DRAWDOWN_TOP,
        svg.DRAWDOWN_TOP,
        svg.DRAWDOWN_BOTTOM,
        svg.DRAWDOWN_TOP,
    ]
    assert 'data-max-drawdown="-25.00"' in svg.equity_svg(points, "USDT")


def test_each_cycle_that_traded_has_a_marker_naming_its_orders() -> None:
    drawn = svg.equity_svg(equity_series(CYCLES, SIGNALS, FLAT, T0 + timedelta(days=1)), "USDT")

    entry, exit_ = re.findall(r'<polygon class="marker (\w+)" points="[^"]*"><title>([^<]*)</title>', drawn)
    assert entry == ("entry", "buy 0.1 BTC/USDT (entry)")
    assert exit_ == ("exit", "sell 0.1 BTC/USDT (exit)")


def test_overview_says_the_drawdown_now_and_the_deepest() -> None:
    # Between the buy and the sale, an alert (ignored) at 50000 marks the position down: 8994 below 10094.
    fell = cycle("c2", T0 + timedelta(hours=4), ["k9"], [])
    rows = [CYCLES[0], fell, replace(CYCLES[1], record=replace(CYCLES[1].record, at=T0 + timedelta(hours=8)))]
    signals = [*SIGNALS, signal("k9", "BTCUSDT", "ignored", price="50000", at=T0 + timedelta(hours=4))]
    html = text(get(dashboard(FakeSource(cycle_rows=rows, signal_rows=signals)), "/fragment/overview"))

    assert "<td class=num>8,994.00</td>" in html
    assert "<strong>0.00% (deepest -10.90%)</strong>" in html


def test_the_chart_is_inline_svg_with_each_point_and_its_value() -> None:
    points = [EquityPoint(T0, "cycle", "c<1>", D(5), {}, D("10000")), EquityPoint(T0, "now", None, D(5), {}, None)]
    drawn = svg.equity_svg(points, "USDT")

    assert drawn.startswith('<svg class="equity"')
    assert drawn.count("<circle") == 1
    assert 'data-equity="10000.00"' in drawn
    assert "c&lt;1&gt;" in drawn


def test_overview_shows_cash_positions_controls_and_the_chart() -> None:
    held = Holdings(
        quote="USDT",
        positions=[PositionRow("BTCUSDT", "BTC/USDT", D("0.1"), D("6000"), D("6600"), D("0.6"))],
        cash=D("4400"), equity=D("11000"), balances={"BTC": D("0.1"), "USDT": D("4400")},
        ledger={"BTC": D("0.1")}, drift={"BTC": D(0)},
        controls=pause(Controls(), by="me@local", reason=SCRIPT, at=T0),
    )  # fmt: skip
    html = text(get(dashboard(FakeSource(holdings_answer=held, cycle_rows=CYCLES[:1])), "/"))

    assert "<td>BTCUSDT</td><td>BTC/USDT</td><td class=num>0.1</td><td class=num>6,000.00</td>" in html
    assert "<td class=num>6,600.00</td><td class=num>60.00%</td><td class=num>0</td>" in html
    assert "<strong>4,400.00 USDT (40.00%)</strong>" in html
    assert "<strong>0.00% (deepest 0.00%)</strong>" in html
    assert "Entries are held back." in html
    assert "paused by the operator (me@local: &lt;script&gt;" in html
    assert "<svg" in html
    assert 'name="csrf" value="tok3n"' in html


# ------------------------------------------------------------------------------------------ a failing source


@pytest.mark.parametrize("failing", ["holdings", "signals", "cycles", "executions"])
def test_a_failing_source_is_said_on_the_page_not_as_a_traceback(failing: str) -> None:
    board = dashboard(FakeSource(failing=failing))
    for page in ("/", "/signals", "/cycles", "/orders"):
        response = get(board, page)
        assert response.status == 200
        assert "Traceback" not in text(response)
    shown = "".join(text(get(board, page)) for page in ("/", "/signals", "/cycles", "/orders"))
    assert f"ConfigError: cannot reach crypto-bot local at http://127.0.0.1:1 ({failing})" in shown


# ------------------------------------------------------------------------------------------ controls


CONFIRMED = {"csrf": "tok3n", "command": "pause", "strategy": "", "reason": "too volatile", "confirmed": "yes"}


def test_a_confirmed_pause_from_the_page_is_applied_and_said() -> None:
    source = FakeSource()
    board = dashboard(source)

    response = post(board, CONFIRMED)

    assert response.status == 303
    assert source.controls == [("pause", None, "too volatile")]
    location = response.headers["Location"]
    assert location.startswith("/?notice=")
    assert '<p class="notice" role="status">Did pause.</p>' in text(get(board, location))


def test_a_control_not_yet_confirmed_asks_first_and_does_nothing() -> None:
    source = FakeSource()

    response = post(dashboard(source), {**CONFIRMED, "confirmed": "", "strategy": "BTCUSDT"})

    assert response.status == 200
    assert "<h1>Pause strategy BTCUSDT?</h1>" in text(response)
    assert 'name="confirmed" value="yes"' in text(response)
    assert source.controls == []


def test_flatten_also_starts_a_cycle_as_the_cli_does() -> None:
    source = FakeSource()

    post(dashboard(source), {**CONFIRMED, "command": "flatten"})

    assert (source.controls, source.cycles_started) == ([("flatten", None, "too volatile")], 1)


def test_resume_sends_no_reason() -> None:
    source = FakeSource()

    post(dashboard(source), {**CONFIRMED, "command": "resume"})

    assert source.controls == [("resume", None, "")]


@pytest.mark.parametrize(
    ("form", "headers", "why"),
    [
        ({k: v for k, v in CONFIRMED.items() if k != "csrf"}, {}, "csrf: missing"),
        ({**CONFIRMED, "csrf": "guessed"}, {}, "csrf: not this server&#x27;s token"),
        (CONFIRMED, {"origin": "http://evil.example"}, "Origin &#x27;http://evil.example&#x27;"),
        (CONFIRMED, {"origin": "null"}, "Origin &#x27;null&#x27;"),
        (CONFIRMED, {"origin": "", "referer": "http://evil.example/page"}, "Referer &#x27;http://evil.example/page"),
        (CONFIRMED, {"origin": ""}, "no Origin, and Referer &#x27;&#x27;"),
        (CONFIRMED, {"host": "evil.example:8050", "origin": "http://evil.example:8050"}, "Host &#x27;evil.example"),
    ],
    ids=["no-token", "wrong-token", "other-origin", "null-origin", "other-referer", "no-origin", "rebound-host"],
)
def test_a_cross_site_control_is_refused_403_naming_why(
    form: dict[str, str], headers: dict[str, str], why: str
) -> None:
    source = FakeSource()

    response = post(dashboard(source), form, **headers)

    assert response.status == 403
    assert why in text(response)
    assert source.controls == []


def test_the_same_origin_referer_stands_in_for_a_missing_origin() -> None:
    source = FakeSource()

    response = post(dashboard(source), CONFIRMED, origin="", referer=f"http://{HOST}/")

    assert response.status == 303
    assert len(source.controls) == 1


def test_a_control_is_post_only_and_pages_get_only() -> None:
    board = dashboard(FakeSource())

    assert get(board, "/control?command=pause&csrf=tok3n").status == 405
    assert board.handle(Request("POST", "/", {"host": HOST})).status == 405


def test_a_page_under_another_host_name_is_refused() -> None:
    response = get(dashboard(FakeSource()), "/", host="attacker.example:8050")

    assert response.status == 403
    assert "this dashboard answers only to" in text(response)


def test_the_pages_may_not_be_framed_and_load_only_their_own_files() -> None:
    headers = get(dashboard(FakeSource()), "/").headers

    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


def test_allowed_hosts_of_a_loopback_and_of_an_open_bind() -> None:
    assert allowed_hosts("127.0.0.1", 8050) == {"127.0.0.1:8050", "localhost:8050", "[::1]:8050"}
    assert allowed_hosts("0.0.0.0", 8050) is None  # noqa: S104 (what --host 0.0.0.0 asks for)
    assert allowed_hosts("192.168.1.5", 80) == {"192.168.1.5:80"}


# ------------------------------------------------------------------------------------------ files and the CLI


@pytest.mark.parametrize(("name", "kind"), [("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")])
def test_the_static_files_ship_in_the_package(name: str, kind: str) -> None:
    response = get(dashboard(FakeSource(), prefix="/dashboard"), f"/dashboard/static/{name}")

    assert response.status == 200
    assert response.content_type.startswith(kind)
    assert len(response.body) > 500


@pytest.mark.parametrize("target", ["/static/../app.py", "/static/app.py", "/nowhere", "/fragment/nowhere"])
def test_anything_else_is_404(target: str) -> None:
    assert get(dashboard(FakeSource()), target).status == 404


def test_the_reader_keeps_an_answer_for_its_ttl_and_forgets_after_a_control() -> None:
    source = FakeSource()
    ticks = [0.0]
    reader = StackReader(source, ttl=5, clock=lambda: ticks[0])
    first = reader.signals()
    source.signal_rows = []
    assert reader.signals() is first
    ticks[0] = 6.0
    assert reader.signals() == Reading([])


def test_the_cycles_may_be_kept_longer_than_the_rest() -> None:
    source = FakeSource()
    ticks = [0.0]
    reader = StackReader(source, ttl=5, cycles_ttl=30, clock=lambda: ticks[0])
    cycles, signals = reader.cycles(), reader.signals()
    ticks[0] = 10.0
    assert reader.cycles() is cycles
    assert reader.signals() is not signals
    ticks[0] = 31.0
    assert reader.cycles() is not cycles


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--port", "http"], "'http' is not a port number"), (["--port", "70000"], "'70000' must be in 0-65535")],
)
def test_a_bad_port_exits_2_naming_it(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dashboard", "--local", "http://127.0.0.1:3000", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_stack_exits_2_before_serving(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from contextlib import contextmanager

    from crypto_bot_tools.ops import commands

    @contextmanager
    def unreachable(*_args: Any) -> Any:
        yield FakeSource(failing="signals")

    monkeypatch.setattr(commands, "open_source", unreachable)

    assert main(["dashboard", "--local", "http://127.0.0.1:1"]) == 2
    assert "cannot reach crypto-bot local at http://127.0.0.1:1" in capsys.readouterr().err
