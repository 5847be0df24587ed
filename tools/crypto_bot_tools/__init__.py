"""crypto_bot_tools: the ``crypto-bot`` command and everything else that never runs in Lambda.

The CLI, replay, the TradingView import, the report, the cost estimator, the ops commands and the local stack.
The Lambda layer (:mod:`crypto_bot`) never imports this package (tests/unit/test_architecture.py).
"""
