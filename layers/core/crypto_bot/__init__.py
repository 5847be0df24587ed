"""crypto_bot: turn TradingView strategy alerts into correctly sized exchange orders. This package is the Lambda layer.

Its layers, each importing only those before it (tests/unit/test_architecture.py):

- :mod:`crypto_bot.domain`: pure rules with exact ``Decimal`` money; no I/O, no vendor SDK;
- :mod:`crypto_bot.engine`: the ports, the records and the trade cycle's steps;
- :mod:`crypto_bot.adapters`: ccxt venues, the paper exchange, and AWS (DynamoDB, SQS, SNS);
- :mod:`crypto_bot.entrypoints`: settings, the composition root and the Lambda handlers' steps.

The tools (the ``crypto-bot`` command, replay, the local stack) are the separate package ``crypto_bot_tools``.
"""

__version__ = "0.1.0"
