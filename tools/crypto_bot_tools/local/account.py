"""The account the local stack trades on: the paper exchange's (its state in the table), or a ccxt venue's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crypto_bot.domain.errors import ConfigError, CryptoBotError, StoreConflict
from crypto_bot_tools.local.log import stamp
from crypto_bot_tools.local.settings import StackPlan

__all__ = ["Account", "check_live_prices"]


def check_live_prices(plan: StackPlan) -> None:
    """Fail at start, clearly, when live prices cannot be read (no network, unknown exchange)."""
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange
    from crypto_bot.engine.retry import NO_RETRY

    name = plan.parameters["ExchangeName"]
    symbol = plan.config.symbols()[0]
    try:
        CcxtExchange(name, retry=NO_RETRY, options=plan.settings.exchange_options).fetch_last_price(symbol)
    except CryptoBotError as e:
        raise ConfigError(
            f"--prices live:{name}: cannot read the {symbol} ticker ({type(e).__name__}: {e}); "
            "live prices need network access to the exchange"
        ) from e


class Account:
    """Read the balances and prices the stack is valued at, and put CSV prices into the paper account."""

    def __init__(self, plan: StackPlan, stack: Any, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.stack = stack
        self.log = log
        self._venue_client: Any = None

    def balances_and_prices(self) -> tuple[Mapping[str, Any], dict[str, Decimal]]:
        """Return the account's balances and the prices it is valued at: the paper account's, or the venue's."""
        if self.plan.settings.exchange is None:
            paper = self._paper()
            return paper.fetch_balances(), dict(paper.prices)
        venue = self._venue()
        return venue.fetch_balances(), {symbol: venue.fetch_last_price(symbol) for symbol in self.plan.config.symbols()}

    def seed_csv_prices(self) -> None:
        """Put the CSV's prices at this moment into the paper account before a cycle (see README: Local stack)."""
        from crypto_bot.adapters.aws.paper_state import PaperStateStore
        from crypto_bot.adapters.paper.exchange import PaperExchange

        plan = self.plan
        states = PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb"))
        now = datetime.now(UTC)
        for _attempt in range(3):
            state, version = states.load()
            exchange = (
                PaperExchange(balances={plan.config.quote: plan.settings.cash})
                if state is None
                else PaperExchange.from_state(state)
            )
            for symbol in plan.config.symbols():
                price = plan.csv_prices.at(symbol, now)
                if price is not None:
                    exchange.load_markets([symbol])
                    exchange.set_price(symbol, price)
            try:
                states.save(exchange.to_state(), version)
                return
            except StoreConflict:
                continue  # a step saved meanwhile: read it again
        self.log(f"{stamp()} prices: the paper account kept changing; CSV prices not applied this time")

    def _paper(self) -> Any:
        from crypto_bot.adapters.aws.paper_state import PaperStateStore
        from crypto_bot.adapters.paper.exchange import PaperExchange

        state, _version = PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb")).load()
        if state is None:  # no cycle has traded yet: the account a first cycle would open
            return PaperExchange(balances={self.plan.config.quote: self.plan.settings.cash})
        return PaperExchange.from_state(state)

    def _venue(self) -> Any:
        """Return the ccxt venue the stack trades on (``--exchange``), built once, with the stack's options."""
        if self._venue_client is None:
            from crypto_bot.adapters.ccxt.exchange import CcxtExchange

            settings = self.plan.settings
            key = settings.api_key or {}
            self._venue_client = CcxtExchange(
                self.plan.parameters["ExchangeName"],
                api_key=key.get("apiKey"),
                secret=key.get("secret"),
                password=key.get("password"),
                sandbox=settings.sandbox,
                options=settings.exchange_options,
            )
        return self._venue_client
