"""The account's quote currency, one rule for every command, and ``crypto-bot check-config`` before a deploy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools import check_config
from crypto_bot_tools.check_config import (
    CachedMarkets,
    config_quote,
    deploy_parameters,
    resolve_quote,
    spot_symbols,
)
from crypto_bot_tools.cli import main
from crypto_bot_tools.local.settings import LocalSettings, StackPlan
from tests.conftest import ROOT

BTC_BUY = {
    "time": "2024-08-10T02:30:02Z",
    "ticker": "BTCUSD",
    "order_action": "buy",
    "order_price": "60000",
    "order_comment": "long",
}


def write_config(path: Path, *symbols: str) -> Path:
    """Write a strategy config with one strategy per symbol, keyed as TradingView names the ticker."""
    strategies = {
        symbol.replace("/", ""): {"exchange_symbol": symbol, "base_asset": symbol.split("/")[0], "percentage": 0.1}
        for symbol in symbols
    }
    path.write_text(json.dumps(strategies), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with the repository's template.yaml and samconfig.toml, as make build runs in."""
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    shutil.copy(ROOT / "samconfig.toml", tmp_path / "samconfig.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------------------- the quote


def test_the_quote_is_the_one_every_symbol_of_the_config_quotes_in(tmp_path: Path) -> None:
    assert config_quote(write_config(tmp_path / "c.json", "BTC/USD", "ETH/USD")) == "USD"
    assert config_quote(ROOT / "strategy_config.json") == "USDT"


def test_symbols_quoting_in_several_currencies_are_refused_with_each_named(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.json", "BTC/USDT", "ETH/USD", "SOL/USDT")
    with pytest.raises(ConfigError) as raised:
        config_quote(path)
    assert str(raised.value) == (
        f"{path}: the symbols quote in 2 currencies (USD: ETH/USD; USDT: BTC/USDT, SOL/USDT); the account has one "
        "quote currency: give it with --quote, and the other symbols are refused"
    )


def test_quote_option_wins_then_the_config_then_the_fallback(tmp_path: Path) -> None:
    usd = write_config(tmp_path / "usd.json", "BTC/USD")
    assert resolve_quote(" usdc ", usd, "USDT") == "USDC"
    assert resolve_quote(None, usd, "USDT") == "USD"
    # A file that is no config has no quote: StrategyConfig.load then says what is wrong with it.
    assert resolve_quote(None, tmp_path / "missing.json", "usdt") == "USDT"


def test_replay_takes_the_quote_from_a_usd_config_without_an_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.json", "BTC/USD")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(json.dumps(BTC_BUY) + "\n", encoding="utf-8")
    assert main(["replay", str(alerts), "--config", str(config), "--json"]) == 0
    (cycle,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cycle["positions"]["BTCUSD"]["symbol"] == "BTC/USD"


def test_replay_with_a_mixed_config_and_no_quote_exits_2_naming_the_symbols(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.json", "BTC/USD", "ETH/USDT")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(json.dumps(BTC_BUY) + "\n", encoding="utf-8")
    assert main(["replay", str(alerts), "--config", str(config)]) == 2
    assert "(USD: BTC/USD; USDT: ETH/USDT)" in capsys.readouterr().err
    # With --quote the account is USD, and the USDT symbol is the one refused.
    assert main(["replay", str(alerts), "--config", str(config), "--quote", "USD"]) == 2
    assert "['ETHUSDT'].exchange_symbol: quotes in USDT, not the account's USD" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("symbols", "option", "quote"),
    [(("BTC/USD",), None, "USD"), (("BTC/USDT",), None, "USDT"), (("BTC/EUR",), "eur", "EUR")],
)
def test_the_local_stack_deploys_the_quote_of_the_option_or_the_config(
    tmp_path: Path, symbols: tuple[str, ...], option: str | None, quote: str
) -> None:
    settings = LocalSettings(
        config=write_config(tmp_path / "c.json", *symbols), quote=option, template=ROOT / "template.yaml"
    )
    plan = StackPlan.build(settings)
    assert plan.parameters["QuoteCurrency"] == quote
    assert plan.config.quote == quote


def test_the_local_stack_refuses_a_quote_the_config_does_not_quote_in(tmp_path: Path) -> None:
    settings = LocalSettings(
        config=write_config(tmp_path / "c.json", "BTC/USDT"), quote="USD", template=ROOT / "template.yaml"
    )
    with pytest.raises(ConfigError, match=r"quotes in USDT, not the account's USD"):
        StackPlan.build(settings)


# ------------------------------------------------------------------------------- the deploy's parameters


def test_the_deploy_parameters_are_samconfigs_overrides_else_the_templates_defaults(project: Path) -> None:
    (project / "samconfig.toml").write_text(
        '[prod.deploy.parameters]\nparameter_overrides = "ExchangeName=kraken QuoteCurrency=usd"\n', encoding="utf-8"
    )
    prod = deploy_parameters(project, "prod")
    assert (prod.exchange, prod.quote) == ("kraken", "USD")
    assert prod.quote_source == "samconfig.toml [prod.deploy.parameters]"
    default = deploy_parameters(project, "default")
    assert (default.exchange, default.quote, default.options) == ("binance", "USDT", {})
    assert default.quote_source == "template.yaml's QuoteCurrency default"


@pytest.mark.parametrize("config_env", ["default", "prod"])
def test_the_repositorys_defaults_trade_on_the_default_venue(
    config_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["check-config", "--config-env", config_env]) == 0
    assert capsys.readouterr().out == (
        "strategy_config.json: 3 strategies, every symbol quoted in USDT "
        f"(samconfig.toml [{config_env}.deploy.parameters]) and listed in binance's hand-kept markets list (written "
        "2026-12-01, venue_markets/binance.json)\n"
    )


# ------------------------------------------------------------------------------------ check-config


def test_a_config_in_another_quote_than_the_deploys_fails_on_one_line_with_the_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project / "strategy_config.json", "BTC/USD")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (
        "crypto-bot: strategy_config.json: ['BTCUSD'].exchange_symbol: quotes in USD, not the account's USDT "
        "(got 'BTC/USD') (the account's quote USDT is samconfig.toml [default.deploy.parameters]; for a USD "
        "account, set QuoteCurrency=USD in samconfig.toml's [default.deploy.parameters] parameter_overrides)\n"
    )


def test_a_symbol_the_venue_does_not_list_is_refused_with_its_strategy_named(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project / "strategy_config.json", "BTC/USDT", "NOPE/USDT")
    assert main(["check-config"]) == 2
    assert capsys.readouterr().err == (
        "crypto-bot: strategy_config.json: not a spot market of binance: NOPE/USDT (strategy NOPEUSDT) (checked "
        "in binance's hand-kept markets list (written 2026-12-01, venue_markets/binance.json)); "
        "if the venue lists it now, "
        "crypto-bot check-config --online confirms it\n"
    )


def test_the_exchange_and_quote_options_choose_the_venue_and_its_snapshot(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project / "strategy_config.json", "BTC/USD", "ETH/USD")
    assert main(["check-config", "--exchange", "kraken", "--quote", "usd"]) == 0
    out = capsys.readouterr().out
    assert "every symbol quoted in USD (--quote) and listed in kraken's hand-kept markets list" in out
    # Binance's spot markets have no BTC/USD (Binance.US is another venue).
    assert main(["check-config", "--exchange", "binance", "--quote", "USD"]) == 2
    assert "not a spot market of binance: BTC/USD (strategy BTCUSD); ETH/USD (strategy ETHUSD)" in (
        capsys.readouterr().err
    )


def test_a_venue_without_a_snapshot_passes_the_quote_check_and_says_the_symbols_were_not_checked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project / "strategy_config.json", "BTC/USD")
    assert main(["check-config", "--exchange", "gemini", "--quote", "USD"]) == 0
    assert capsys.readouterr().out == (
        "strategy_config.json: 1 strategies quote in USD; symbols not checked: no snapshot of gemini's markets is "
        "committed (crypto-bot check-config --online reads them)\n"
    )


def test_online_reads_the_venues_markets_with_the_deploys_exchange_options(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def markets(exchange: str, options: Any) -> frozenset[str]:
        asked.append((exchange, dict(options)))
        return frozenset({"BTC/USDT", "ORDI/USDT"})

    monkeypatch.setattr(check_config, "online_markets", markets)
    (project / "samconfig.toml").write_text(
        "[default.deploy.parameters]\nparameter_overrides = "
        '["ExchangeOptions={\\"options\\": {\\"defaultType\\": \\"spot\\"}}"]\n',
        encoding="utf-8",
    )
    write_config(project / "strategy_config.json", "BTC/USDT", "ORDI/USDT")
    # ORDI/USDT is listed by the venue but not in the committed snapshot: only --online can tell.
    assert main(["check-config"]) == 2
    capsys.readouterr()
    assert main(["check-config", "--online"]) == 0
    assert "listed in binance's markets, read now" in capsys.readouterr().out
    assert asked == [("binance", {"options": {"defaultType": "spot"}})]
    write_config(project / "strategy_config.json", "BTC/USDT", "SOL/USDT")
    assert main(["check-config", "--online"]) == 2
    assert "not a spot market of binance: SOL/USDT (strategy SOLUSDT) (checked in binance's markets, read now)\n" in (
        capsys.readouterr().err
    )


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_an_unreachable_venue_is_a_config_error_naming_it() -> None:
    # Unit tests run with sockets disabled: the venue cannot be reached.
    with pytest.raises(ConfigError, match=r"^cannot read binance's markets: "):
        check_config.online_markets("binance", {})


def test_only_active_spot_markets_count() -> None:
    markets: dict[str, dict[str, Any]] = {
        "BTC/USDT": {"spot": True, "active": True},
        "BTC/USDT:USDT": {"spot": False, "swap": True, "active": True},  # Binance's perpetual
        "LUNA/USDT": {"spot": True, "active": False},  # delisted, still in the answer
        "ETH/USDT": {"spot": True, "active": None},  # some venues do not say
    }
    assert spot_symbols(markets) == {"BTC/USDT", "ETH/USDT"}


def test_the_committed_snapshots_are_sorted_ccxt_symbols_with_their_source() -> None:
    folder = Path(check_config.__file__).with_name("venue_markets")
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["symbols"] == sorted(set(data["symbols"])), path
        assert all(symbol.count("/") == 1 and symbol == symbol.upper() for symbol in data["symbols"]), path
        snapshot = CachedMarkets.load(path.stem)
        assert snapshot is not None
        assert snapshot.source
        assert snapshot.as_of
    binance = CachedMarkets.load("binance")
    assert binance is not None
    # The recorded Binance exchangeInfo (tests/fixtures/ccxt/binance.json) agrees with the snapshot.
    recorded = json.loads((ROOT / "tests" / "fixtures" / "ccxt" / "binance.json").read_text(encoding="utf-8"))
    for market in recorded["exchange_info"]["symbols"]:
        assert f"{market['baseAsset']}/{market['quoteAsset']}" in binance.symbols


def test_a_protective_stop_is_refused_for_a_venue_without_stop_orders_and_passes_on_binance(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 14: a venue without native spot stops gets a refusal at config time, not a silent gap.
    entry = {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": 0.2, "protective_stop": {"percent": 0.05}}
    (project / "strategy_config.json").write_text(json.dumps({"BTCUSD": entry}))
    assert main(["check-config", "--exchange", "kraken", "--quote", "USD"]) == 2
    assert capsys.readouterr().err == (
        "crypto-bot: strategy_config.json: protective_stop is set for BTCUSD, but kraken has no spot stop orders "
        "this bot can place (crypto_bot.adapters.ccxt.exchange, supports_stop_orders): remove it, or trade on a "
        "venue that has them\n"
    )
    usdt = {**entry, "exchange_symbol": "BTC/USDT"}
    (project / "strategy_config.json").write_text(json.dumps({"BTCUSDT": usdt}))
    assert main(["check-config", "--exchange", "binance"]) == 0
