"""`crypto-bot local` and `crypto-bot demo`: options checked before anything starts, and the demo's steps."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from crypto_bot_tools.cli import main
from crypto_bot_tools.local.cli import DEMO_EXTRA_ALERTS, demo_steps
from crypto_bot_tools.local.server import LocalServer, LocalSettings
from tests.conftest import ROOT, load_event

README_ALERTS = load_event("alerts/readme_example.jsonl")


def test_demo_runs_the_readme_cycles_then_a_buy_and_its_stop_loss() -> None:
    steps = demo_steps(README_ALERTS)

    assert [len(step.alerts) for step in steps] == [1, 1, 2, 2, 2, 1, 1]
    assert [step.urgent for step in steps] == [False] * 6 + [True]
    assert [a for step in steps[:5] for a in step.alerts] == README_ALERTS
    assert [a for step in steps[5:] for a in step.alerts] == list(DEMO_EXTRA_ALERTS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--allow", "not-a-cidr"], "--allow 'not-a-cidr'"),
        (["--schedule", "cron(1 0/8 * * *)"], "expected 6 fields"),
        (["--prices", "no-such-prices.csv"], "expected live:EXCHANGE or an existing CSV file"),
        (["--prices", "live:"], "name the ccxt exchange"),
        (["--config", "no-such-config.json"], "no-such-config.json"),
        (["--cash", "lots"], "--cash 'lots': not a number"),
        (["--cycle-every", "0"], "--cycle-every 0"),
        (["--max-signal-age", "-5"], "--max-signal-age -5"),
        (["--template", "no-such-template.yaml"], "template no-such-template.yaml not found"),
        (
            ["--stop-loss-pattern", "stop.*"],
            "--stop-loss-pattern 'stop.*': lower-case letters, digits and _ (blanks and - inside), optionally \\b at "
            "either end, e.g. \\bstop or \\bsl\\b; it matches any case",
        ),
        (["--stop-loss-pattern", "Stop"], "--stop-loss-pattern 'Stop': lower-case letters"),
        (["--max-price-jump", "0"], "--max-price-jump '0': must be a fraction above 0"),
        (["--max-price-jump", "half"], "--max-price-jump 'half': not a number"),
    ],
)
def test_bad_local_options_are_refused_with_exit_code_2_before_anything_starts(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["local", "--config", str(ROOT / "strategy_config.json"), *arguments])

    assert code == 2
    assert message in capsys.readouterr().err


def test_stop_loss_pattern_and_price_band_reach_the_template_and_the_functions() -> None:
    settings = LocalSettings(
        config=ROOT / "strategy_config.json",
        template=ROOT / "template.yaml",
        stop_loss_pattern=r"\bsl\b",
        max_price_jump=Decimal("0.2"),
    )

    server = LocalServer(settings, log=lambda _line: None)

    # The one StopLossPattern parameter drives the webhook's routing and the core's STOP_LOSS_PATTERN.
    assert server.parameters["StopLossPattern"] == r"\bsl\b"
    assert server.plan.environment["MAX_PRICE_JUMP"] == "0.2"


def test_without_the_options_the_template_and_the_core_keep_their_defaults() -> None:
    server = LocalServer(
        LocalSettings(config=ROOT / "strategy_config.json", template=ROOT / "template.yaml"), log=lambda _line: None
    )

    assert "StopLossPattern" not in server.parameters  # the template's Default, \bstop
    assert "MAX_PRICE_JUMP" not in server.plan.environment


def test_cycle_every_and_schedule_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["local", "--cycle-every", "5", "--schedule", "cron(1 0/8 * * ? *)"])

    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_csv_prices_file_is_read_and_checked_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("when,symbol,price\n2024-08-10T00:00:00Z,BTC/USD,60000\n", encoding="utf-8")

    code = main(["local", "--config", str(ROOT / "strategy_config.json"), "--prices", str(prices)])

    assert code == 2
    assert "missing columns ['time']" in capsys.readouterr().err


def test_the_cli_does_not_load_aws_libraries_until_local_runs() -> None:
    code = (
        "import sys, crypto_bot_tools.cli as cli; cli.build_parser();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'moto', 'boto3', 'botocore', 'yaml', 'airspeed'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "[]"
