"""The dashboard in a real browser: Debian's chromium, headless, driven by Selenium through its chromedriver.

One `crypto-bot local` subprocess (test_local_stack.py's) runs the README scenario for the whole module; the
browser reads its pages under ``/dashboard`` as a person would, and each test asserts what is on the screen.
A screenshot of each page goes to .build/screenshots/ (kept as the run's artifacts); with
``DASHBOARD_README_SCREENSHOT=PATH`` the Overview's after the fourth cycle is also copied there (``make screenshots``).

Without /usr/bin/chromedriver these tests are skipped with the command that installs it, except under CI
(``CI=true``), where they fail: the gate cannot pass without them.
"""

from __future__ import annotations

import getpass
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from crypto_bot.domain.money import plain
from crypto_bot_tools.local.cli import demo_steps
from tests.conftest import ROOT, AlertClock
from tests.e2e.test_local_stack import README_ALERTS, Local, expected_cycles, start_local, stop_local

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMEDRIVER: Final = Path("/usr/bin/chromedriver")
SCREENSHOTS: Final = ROOT / ".build" / "screenshots"
WAIT: Final = 30.0  # seconds for the page's own refresh (every 2 s on the local stack) to show a change
BY: Final = f"{getpass.getuser()}@local"  # who the local stack records a control as
REJECTED: Final = "<script>document.title='pwned'</script>"


def _missing_browser() -> str | None:
    """Say what keeps the browser tests from running here, or return None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            return f"{path} is missing: make browser (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    missing = _missing_browser()
    if missing and os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{missing}. CI runs the dashboard's browser tests.", pytrace=False)
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    started = start_local(tmp_path_factory.mktemp("dashboard") / "local.log")
    try:
        yield started
    finally:
        stop_local(started)


def _url(stack: Local, page: str = "") -> str:
    return f"{str(stack.http.base_url).rstrip('/')}/dashboard/{page}"


def _screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def _table(driver: Any, table_id: str) -> list[list[str]]:
    """The cells of a table as shown, read in one go (the page's refresh may replace it between two reads)."""
    script = (
        "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)]"
        ".map(r => [...r.cells].map(c => c.innerText.trim()));"
    )
    rows: list[list[str]] = driver.execute_script(script, table_id)
    return rows


def _executions(driver: Any) -> list[dict[str, Any]]:
    """Each execution of the Cycles page as shown: its text and the states it lists, read in one go."""
    script = (
        "return [...document.querySelectorAll('article.execution')].map(a => ({text: a.innerText, "
        "states: [...a.querySelectorAll('ol.states li')].map(l => l.textContent)}));"
    )
    found: list[dict[str, Any]] = driver.execute_script(script)
    return found


def _wait_for(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(_driver: Any) -> Any:
        try:
            return condition()
        except StaleElementReferenceException:  # the refresh replaced the element while it was read
            return False

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(check, message=f"the page never showed {what}")


def test_overview_shows_the_positions_after_each_cycle_without_a_reload(driver: Any, stack: Local) -> None:
    driver.get(_url(stack))
    assert driver.title.startswith("Overview")
    driver.execute_script("window.loadedOnce = true;")  # gone if the page were loaded again
    steps = [step for step in demo_steps(README_ALERTS) if not step.urgent][:5]
    dated = AlertClock()
    for number, (step, replayed) in enumerate(zip(steps, expected_cycles(README_ALERTS), strict=True), start=1):
        for alert in dated(step.alerts):
            assert stack.post_alert(alert).status_code == 200
        stack.cycle()
        expected = [
            [key, p.symbol, plain(p.amount), f"{p.cost_basis:,.2f}", f"{p.value:,.2f}", f"{p.weight:.2%}", "0"]
            for key, p in sorted(replayed.positions.items())
        ] + [["cash (USDT)", "", "", "", f"{replayed.cash:,.2f}", f"{replayed.cash / replayed.equity:.2%}", ""]]
        _wait_for(driver, lambda expected=expected: _table(driver, "positions") == expected, f"step {number}")
        equity = driver.find_element("id", "figure-equity").text
        assert equity == f"equity\n{replayed.equity:,.2f} USDT", f"step {number}"
        if number == 4:  # BTC and SOL held: the Overview README shows
            path = _screenshot(driver, "overview-holding")
            target = os.environ.get("DASHBOARD_README_SCREENSHOT")
            if target:
                shutil.copyfile(path, ROOT / target)
    assert driver.execute_script("return window.loadedOnce === true;")
    # The equity series: the start, one point per cycle, now; each cycle's equity as replay has it.
    points = _table(driver, "equity-points")
    shown = [row[4] for row in points if row[1].startswith("manual-")]
    assert shown[-4:] == [f"{c.equity:,.2f}" for c in expected_cycles(README_ALERTS)][-4:]
    dots = driver.find_elements("css selector", "svg.equity circle")
    assert len(dots) == 7  # the start, five cycles, now
    assert "Running: nothing holds entries back." in driver.find_element("id", "controls-state").text
    _screenshot(driver, "overview")


def test_signals_page_shows_a_rejected_alert_with_its_reason_as_text(driver: Any, stack: Local) -> None:
    answer = stack.post_alert(REJECTED, content_type="text/plain")
    assert answer.status_code == 200
    stack.cycle()

    driver.get(_url(stack, "signals?status=rejected"))

    # The dashboard keeps the stack's answers a second: the page's own refresh brings the new alert.
    rows = _wait_for(driver, lambda: _table(driver, "signals"), "the rejected alert")
    assert [(row[6], row[8]) for row in rows] == [("rejected", answer.json()["id"])]
    assert rows[0][7] == f"body: is not JSON (Expecting value) (got '{REJECTED}')"
    assert driver.title.startswith("Signals")  # the script in the reason did not run
    assert "1 of " in driver.find_element("css selector", "p.count").text
    _screenshot(driver, "signals")
    driver.get(_url(stack, "signals?strategy=BTCUSDT"))
    strategies = {row[3] for row in _table(driver, "signals")}
    assert strategies == {"BTCUSDT"}


def test_cycles_page_shows_each_execution_with_its_states_and_orders(driver: Any, stack: Local) -> None:
    driver.get(_url(stack, "cycles"))

    # The README's five cycles and the rejected alert's.
    executions = _wait_for(driver, lambda: _six(_executions(driver)), "six executions")
    newest, first = executions[0], executions[-1]
    assert first["states"][:3] == ["Collect", "HasPendingSignals", "AcquireLock"]
    assert "PlaceOrders" in first["states"]
    assert first["states"][-1] == "CycleDone"
    assert "SUCCEEDED" in first["text"]
    assert "buy BTC/USDT" in first["text"]  # the first cycle's order
    # The rejected alert's cycle had nothing to trade.
    assert newest["states"] == ["Collect", "HasPendingSignals", "NothingToDo"]
    _screenshot(driver, "cycles")


def _six(found: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return found if len(found) == 6 else None


def test_orders_page_lists_every_order_with_its_fills_and_attempts(driver: Any, stack: Local) -> None:
    driver.get(_url(stack, "orders"))

    sections = driver.find_elements("css selector", "section.cycle-orders")
    expected = [c for c in expected_cycles(README_ALERTS) if c.report.results]
    assert len(sections) == len(expected)
    orders = sum(len(s.find_elements("css selector", "tbody tr")) for s in sections)
    assert orders == sum(len(c.report.results) for c in expected)
    assert "#1 cb" in sections[-1].text  # the attempt's client order id
    _screenshot(driver, "orders")


def test_a_cancelled_flatten_sends_nothing_and_a_confirmed_pause_shows_as_paused(driver: Any, stack: Local) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(_url(stack))
    driver.execute_script("window.stayed = true;")
    driver.find_element("css selector", "button.flatten").click()
    cancelled = WebDriverWait(driver, WAIT).until(expected_conditions.alert_is_present())
    assert cancelled.text == "Flatten the whole account?"
    cancelled.dismiss()
    # Nothing is sent: the same page, and nothing asked of the stack.
    assert driver.execute_script("return window.stayed === true;")
    assert stack.state()["controls"]["flatten"] is None

    driver.find_element("name", "reason").send_keys("checking the dashboard")
    driver.find_element("css selector", "button.pause").click()
    alert = WebDriverWait(driver, WAIT).until(expected_conditions.alert_is_present())
    assert alert.text == "Pause the whole account?"
    alert.accept()

    _wait_for(driver, lambda: "Paused the whole account" in driver.find_element("css selector", ".notice").text,
              "the pause's sentence")  # fmt: skip
    holds = _table(driver, "holds")
    why = f"paused by the operator ({BY}: checking the dashboard)"
    assert [(row[0], row[1], row[3], row[4]) for row in holds] == [("account", "paused", BY, why)]
    assert stack.state()["controls"]["paused"]["by"] == BY
    _screenshot(driver, "paused")
    # The stack's log has the control, not the polls and reads that refresh the pages every 2 s.
    log = stack.log.read_text(errors="replace")
    assert " POST /dashboard/control 303 " in log
    assert " POST /_local/controls 200 " in log
    assert "/dashboard/fragment/" not in log
    assert "GET /_local/cycles" not in log
