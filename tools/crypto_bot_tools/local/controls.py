"""``POST /_local/controls``: the kill switch on the local stack, as ``crypto-bot pause|resume|flatten`` sends it.

The body is ``{"command": "pause"|"resume"|"flatten", "strategy": KEY or null, "reason": TEXT, "by": WHO}``.
The command is applied to the local table under the record's version
(:func:`crypto_bot_tools.ops.controls.apply_command`) and, when it changed something, published to the
stack's ``NotificationsTopic`` as a deployed stack's operator would publish it, and logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError, StoreError
from crypto_bot_tools.local.log import stamp
from crypto_bot_tools.ops.controls import COMMANDS, apply_command, check_strategy

__all__ = ["apply_request"]

_FIELDS: Final = ("command", "strategy", "reason", "by")


def apply_request(
    request: object, *, stack: Any, config: StrategyConfig, config_source: str, log: Callable[[str], None]
) -> tuple[int, dict[str, Any]]:
    """Check the request, apply it and notify; return the HTTP status and the JSON answer (400 names the field)."""
    try:
        command, strategy, reason, by = _read(request, config, config_source)
    except ConfigError as e:
        return 400, {"error": str(e)}
    from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
    from crypto_bot.adapters.aws.notify import publish

    store = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb"))
    change = apply_command(store, command, strategy=strategy, by=by, reason=reason, at=datetime.now(UTC))
    if change.changed:
        subject, message = change.notification()
        try:
            publish(stack.client("sns"), stack.resource("NotificationsTopic"), subject, message)
        except StoreError as e:
            change = replace(change, notification_error=f"{type(e).__name__}: {e}")
        note = f" (not notified: {change.notification_error})" if change.notification_error else ""
        log(f"{stamp()} controls: {subject}{note}")
    return 200, change.to_json()


def _read(request: object, config: StrategyConfig, config_source: str) -> tuple[str, str | None, str, str]:
    if not isinstance(request, Mapping):
        raise ConfigError(f"the body must be a JSON object with {', '.join(_FIELDS)}, got {request!r}")
    unknown = sorted(set(request) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{unknown[0]} {request[unknown[0]]!r}: not a field (use {', '.join(_FIELDS)})")
    command = request.get("command")
    if command not in COMMANDS:
        raise ConfigError(f"command {command!r}: must be one of {', '.join(COMMANDS)}")
    strategy = request.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        raise ConfigError(f"strategy {strategy!r}: must be a strategy key (a string) or null for the whole account")
    check_strategy(strategy, config.strategies, "strategy", config_source)
    reason = request.get("reason") or ""
    if not isinstance(reason, str):
        raise ConfigError(f"reason {reason!r}: must be a string")
    if command == "resume" and reason:
        raise ConfigError(f"reason {reason!r}: resume takes no reason (the record keeps who resumed and when)")
    by = request.get("by")
    if not isinstance(by, str) or not by.strip():
        raise ConfigError(f"by {by!r}: say who gives the command (crypto-bot sends user@local)")
    return str(command), strategy, reason, by.strip()
