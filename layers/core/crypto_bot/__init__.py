"""crypto_bot: turn TradingView strategy alerts into correctly sized exchange orders.

The domain core (signals, config, markets, allocation, sizing, ledger, cycle) is pure
Python with exact ``Decimal`` money and imports neither boto3 nor ccxt. The outside
worlds are reached through the ports in :mod:`crypto_bot.ports`, implemented by the
adapters in :mod:`crypto_bot.exchanges`.
"""

__version__ = "0.1.0"
