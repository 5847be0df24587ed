"""``crypto-bot alert-message``: the TradingView alert message and webhook URL for one strategy.

The message is the JSON that ``crypto_bot.domain.signals.parse_signal`` reads, with TradingView's
placeholders where TradingView fills the values when an order of the strategy fills
(https://www.tradingview.com/support/solutions/43000531021/). ``interval`` is always there, so an
alert from a chart on another timeframe is refused at intake instead of trading; ``strategy`` is
added when TradingView's ``{{ticker}}`` cannot name the config key on its own: when the key is
not the symbol's ticker (BTC/USD -> BTCUSD), or when another key trades the same symbol.

The timeframe (and the stop-loss pattern, the webhook URL) come from a deployed stack's parameters
and outputs with ``--stack``, else from template.yaml's defaults; ``--timeframe`` overrides both.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from crypto_bot.domain.config import DEFAULT_STOP_LOSS_PATTERN, StrategyConfig
from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.timeframe import Timeframe, tradingview_interval_seconds
from crypto_bot_tools import check_config

__all__ = ["AlertSetup", "alert_message", "register", "strategy_field_reason", "tradingview_interval", "ticker_of"]

# The fields of the message in the order they are printed, each with the TradingView placeholder that fills it.
PLACEHOLDERS: Final = {
    "time": "{{timenow}}",
    "ticker": "{{ticker}}",
    "order_action": "{{strategy.order.action}}",
    "order_price": "{{strategy.order.price}}",
    "order_comment": "{{strategy.order.comment}}",
    "order_id": "{{strategy.order.id}}",
    "market_position": "{{strategy.market_position}}",
    "interval": "{{interval}}",
}
TOKEN_PLACEHOLDER: Final = "<token>"  # noqa: S105 (where the secret goes, not a secret)
# What the template's WebhookUrl output (a Fn::Sub) says where only a deploy knows the value.
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]+)\}")
_UNKNOWN_AT_BUILD: Final = {"WebhookApi": "<api-id>", "AWS::Region": "<region>"}
_DAY: Final = 86400
_WEEK: Final = 7 * _DAY


@dataclass(frozen=True)
class AlertSetup:
    """Everything a trader types into TradingView's alert dialog for one strategy, and what it was read from."""

    key: str
    symbol: str
    message: dict[str, str]
    strategy_reason: str | None  # why the message names the strategy; None: the chart's ticker is the key
    timeframe: Timeframe
    interval: str  # what TradingView's {{interval}} must be on the strategy's chart
    stop_loss_pattern: str
    webhook_url: str  # with TOKEN_PLACEHOLDER where the secret goes
    token_parameter: str | None  # the SSM parameter holding the token, when known
    source: str  # "stack NAME" or "template.yaml defaults"

    def message_text(self) -> str:
        """Return the message as it is pasted into the alert's Message box."""
        return json.dumps(self.message, indent=2)


def ticker_of(symbol: str) -> str:
    """Return the TradingView ticker a symbol usually has: its base and quote run together (BTC/USD -> BTCUSD)."""
    base, quote = split_symbol(symbol)
    return f"{base}{quote}"


def strategy_field_reason(config: StrategyConfig, key: str) -> str | None:
    """Say why an alert of ``key`` must carry ``strategy``, or return None when ``{{ticker}}`` alone names it."""
    strategy = config[key]
    sharing = sorted(k for k, s in config.strategies.items() if k != key and s.symbol == strategy.symbol)
    if sharing:
        return f"{', '.join(sharing)} also trade{'s' if len(sharing) == 1 else ''} {strategy.symbol}"
    if key != ticker_of(strategy.symbol):
        return f"{key} is not the ticker of {strategy.symbol} ({ticker_of(strategy.symbol)})"
    return None


def alert_message(config: StrategyConfig, key: str, *, with_strategy: bool) -> dict[str, str]:
    """Return the alert message for ``key``: every placeholder, and ``strategy`` first when it is needed."""
    if key not in config.strategies:
        known = ", ".join(sorted(config.strategies))
        raise ConfigError(f"--strategy {key}: not a strategy of the config (known: {known})")
    if not config[key].enabled:
        raise ConfigError(f"--strategy {key}: its percentage is 0, so its alerts would be rejected; give it a share")
    return {"strategy": key, **PLACEHOLDERS} if with_strategy else dict(PLACEHOLDERS)


def stop_comment_example(pattern: str) -> str:
    """Return a comment that ``pattern`` (a StopLossPattern, template.yaml's small regex language) marks as a stop."""
    word = pattern.replace("\\b", "")
    return "Stop loss" if word == "stop" else word


def tradingview_interval(timeframe: Timeframe) -> str:
    """Return what TradingView's ``{{interval}}`` says on a chart of ``timeframe``: minutes, else days or weeks."""
    seconds = timeframe.seconds
    if seconds % _WEEK == 0:
        text = f"{seconds // _WEEK}W"
    elif seconds % _DAY == 0:
        text = f"{seconds // _DAY}D"
    else:
        text = str(seconds // 60)
    if tradingview_interval_seconds(text) != seconds:  # the intake check must read back what is printed here
        raise ConfigError(f"timeframe {timeframe.label} has no TradingView chart interval")
    return text


def config_quote(path: Path) -> str:
    """Return the quote currency every symbol of the config at ``path`` shares (check-config's rule).

    A ConfigError when the symbols quote in several currencies, or when the file gives none.
    """
    quote = check_config.config_quote(path)
    if quote is None:
        raise ConfigError(f"{path}: no quote currency can be read from its symbols; pass --quote")
    return quote


def setup_from_template(
    config: StrategyConfig, key: str, template: dict[str, Any], *, timeframe: Timeframe | None = None
) -> AlertSetup:
    """Build the alert setup from template.yaml's parameter defaults (nothing deployed is read)."""
    parameters = template.get("Parameters", {})
    stage = _default(parameters, "Stage", "dev")
    token_parameter = parameters.get("WebhookTokenParameterName", {}).get("Default")
    url = _template_webhook_url(template, {"Stage": stage})
    return _setup(
        config,
        key,
        timeframe=timeframe or _parse_timeframe(_default(parameters, "Timeframe", ""), "template.yaml Timeframe"),
        stop_loss_pattern=_default(parameters, "StopLossPattern", DEFAULT_STOP_LOSS_PATTERN),
        webhook_url=url,
        token_parameter=token_parameter if isinstance(token_parameter, str) else None,
        source="template.yaml defaults",
    )


def setup_from_stack(
    config: StrategyConfig,
    key: str,
    outputs: dict[str, str],
    parameters: dict[str, str],
    name: str,
    *,
    timeframe: Timeframe | None = None,
) -> AlertSetup:
    """Build the alert setup from a deployed stack's Outputs and Parameters."""
    url = outputs.get("WebhookUrl")
    if not url:
        raise ConfigError(f"stack {name} has no output WebhookUrl: deploy the current template.yaml (make deploy)")
    if "Timeframe" not in parameters and timeframe is None:
        raise ConfigError(f"stack {name} has no parameter Timeframe: is it a crypto-bot stack?")
    return _setup(
        config,
        key,
        timeframe=timeframe or _parse_timeframe(parameters["Timeframe"], f"stack {name} Timeframe"),
        stop_loss_pattern=parameters.get("StopLossPattern", DEFAULT_STOP_LOSS_PATTERN),
        webhook_url=f"{url}?token={TOKEN_PLACEHOLDER}",
        token_parameter=parameters.get("WebhookTokenParameterName"),
        source=f"stack {name}",
    )


def _setup(
    config: StrategyConfig,
    key: str,
    *,
    timeframe: Timeframe,
    stop_loss_pattern: str,
    webhook_url: str,
    token_parameter: str | None,
    source: str,
) -> AlertSetup:
    if key not in config.strategies:
        alert_message(config, key, with_strategy=False)  # raises, naming the known keys
    reason = strategy_field_reason(config, key)
    return AlertSetup(
        key=key,
        symbol=config[key].symbol,
        message=alert_message(config, key, with_strategy=reason is not None),
        strategy_reason=reason,
        timeframe=timeframe,
        interval=tradingview_interval(timeframe),
        stop_loss_pattern=stop_loss_pattern,
        webhook_url=webhook_url,
        token_parameter=token_parameter,
        source=source,
    )


def _default(parameters: dict[str, Any], name: str, fallback: str) -> str:
    value = parameters.get(name, {}).get("Default", fallback)
    return value if isinstance(value, str) else fallback


def _parse_timeframe(text: str, what: str) -> Timeframe:
    try:
        return Timeframe.parse(text)
    except ValueError as e:
        raise ConfigError(f"{what}: {e}; pass --timeframe") from None


def _template_webhook_url(template: dict[str, Any], known: dict[str, str]) -> str:
    """Render the template's WebhookUrl output, naming in <angle brackets> what only a deploy knows."""
    value = template.get("Outputs", {}).get("WebhookUrl", {}).get("Value")
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise ConfigError("template.yaml has no WebhookUrl output to take the webhook URL from")
    values = {**_UNKNOWN_AT_BUILD, **known}
    return _SUB_VARIABLE.sub(lambda m: values.get(m.group(1), f"<{m.group(1)}>"), text) + f"?token={TOKEN_PLACEHOLDER}"


# ------------------------------------------------------------------------------ the command


def register(commands: Any) -> None:
    """Add ``crypto-bot alert-message`` to the command line."""
    parser = commands.add_parser(
        "alert-message",
        help="print the TradingView alert message and webhook URL for one strategy",
        description="Print the message to paste into a TradingView strategy alert for one strategy of the config, "
        "the webhook URL (with <token> where the secret goes) and what the chart must be.",
    )
    parser.add_argument("--strategy", required=True, metavar="KEY", help="the strategy's key in the config")
    parser.add_argument("--config", type=Path, default=Path("strategy_config.json"), help="strategy config JSON")
    parser.add_argument("--quote", help="the account's quote currency (default: the stack's, else the config's)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", metavar="NAME", help="read the timeframe and webhook URL from this deployed stack")
    where.add_argument("--timeframe", help="the stack's timeframe (default: template.yaml's Timeframe)")
    parser.add_argument("--region", help="the stack's AWS region (default: the AWS CLI's)")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"), help="template for the defaults")
    parser.add_argument("--message-only", action="store_true", help="print the message alone (to copy it)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the alert setup the options ask for; return the exit code."""
    timeframe = _parse_timeframe(args.timeframe, "--timeframe") if args.timeframe else None
    if args.stack:
        from crypto_bot_tools.ops.stack import aws_errors, boto3_session, stack_resources

        with aws_errors():
            stack = stack_resources(boto3_session(args.region)("cloudformation"), args.stack)
        quote = (args.quote or stack.parameters.get("QuoteCurrency") or config_quote(args.config)).upper()
        config = StrategyConfig.load(args.config, quote)
        setup = setup_from_stack(
            config, args.strategy, dict(stack.outputs), dict(stack.parameters), stack.name, timeframe=timeframe
        )
    else:
        from crypto_bot_tools.local.template import TemplateError, load_template

        config = StrategyConfig.load(args.config, (args.quote or config_quote(args.config)).upper())
        try:
            template = load_template(args.template)
        except (OSError, TemplateError) as e:
            raise ConfigError(f"cannot read {args.template} for the defaults ({e}): pass --stack or --timeframe") from e
        setup = setup_from_template(config, args.strategy, template, timeframe=timeframe)
    print(setup.message_text() if args.message_only else describe(setup))
    return 0


def describe(setup: AlertSetup) -> str:
    """Return the setup as the trader reads it with TradingView's alert dialog open."""
    if setup.strategy_reason is None:
        chart = (
            f"the {setup.key} chart: TradingView fills {{{{ticker}}}} with the chart's symbol without its exchange "
            f"prefix, and it must be {setup.key}"
        )
    else:
        chart = (
            f'a chart of {setup.symbol}; the message carries "strategy": "{setup.key}" because '
            f"{setup.strategy_reason}, so the ticker does not decide the strategy"
        )
    token = (
        f"the value of the SSM parameter {setup.token_parameter} (aws ssm get-parameter --with-decryption "
        f"--name {setup.token_parameter} --query Parameter.Value --output text)"
        if setup.token_parameter
        else "the webhook token you stored in SSM"
    )
    lines = [
        f"Alert message for {setup.key} ({setup.symbol}), from {setup.source}:",
        "",
        setup.message_text(),
        "",
        f"Webhook URL:  {setup.webhook_url}",
        f"              {TOKEN_PLACEHOLDER} is {token}",
        "",
        "In TradingView's Create Alert dialog:",
        f"  - Condition: the strategy, on {chart}",
        f"  - the chart's timeframe: {setup.timeframe.label} ({{{{interval}}}} is then {setup.interval}; "
        "an alert from another timeframe is refused)",
        '  - "Order fills only", the message above in Message, the webhook URL under Notifications',
        f"  - stop fills: the stop leg's comment must match {setup.stop_loss_pattern} "
        f'(case-insensitive), e.g. strategy.exit(..., comment_loss="{stop_comment_example(setup.stop_loss_pattern)}")',
    ]
    return "\n".join(lines)
