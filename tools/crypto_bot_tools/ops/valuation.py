"""The ledger valued at last prices and compared with the account's balances."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from crypto_bot.domain.config import StrategyConfig
from crypto_bot_tools.ops.rows import Holdings, PositionRow

if TYPE_CHECKING:
    from crypto_bot.domain.ledger import Ledger
    from crypto_bot.domain.orders import Balance

__all__ = ["holdings"]


def holdings(
    config: StrategyConfig,
    ledger: Ledger,
    balances: Mapping[str, Balance] | None,
    prices: Mapping[str, Decimal] | None,
) -> Holdings:
    """Value the ledger's long positions and compare the ledger with the balances.

    ``balances`` None skips cash, equity, weights and drift; ``prices`` None skips
    values. A symbol missing from ``prices`` leaves that position's value unknown.
    """
    from crypto_bot.domain.orders import Balance
    from crypto_bot_tools.cycle import PositionView, equity_and_positions

    notes: list[str] = []
    longs = ledger.long_positions()
    missing = sorted({p.symbol for p in longs} - set(prices or {})) if prices is not None else []
    cash = equity = None
    views: dict[str, PositionView] = {}
    if balances is not None and prices is not None and not missing:
        cash, equity, views = equity_and_positions(config, ledger, balances, prices)
    elif balances is not None:
        cash = balances.get(config.quote, Balance()).total
    rows = []
    for position in longs:
        view = views.get(position.strategy)
        value = None
        if view is not None:
            value = view.value
        elif prices is not None and position.symbol in prices:
            value = position.amount * prices[position.symbol]
        rows.append(
            PositionRow(
                strategy=position.strategy,
                symbol=position.symbol,
                amount=position.amount,
                cost_basis=position.cost_basis,
                value=value,
                weight=view.weight if view is not None else None,
            )
        )
    if missing:
        notes.append(f"equity and weights need the price of {', '.join(missing)}: not shown")
    if config.strategies:
        unknown = sorted(p.strategy for p in longs if config.get(p.strategy) is None)
        if unknown:
            notes.append(f"{', '.join(unknown)} hold a position but are not in the strategy config")
    return Holdings(
        quote=config.quote,
        positions=rows,
        cash=cash,
        equity=equity,
        balances=None if balances is None else {a: b.total for a, b in sorted(balances.items()) if b.total},
        ledger=ledger.amounts_by_asset(),
        drift=None if balances is None else ledger.drift(balances),
        notes=notes,
    )
