"""Lambda handler: send one order intent to the exchange, at most once (crypto_bot.entrypoints.steps.place_order)."""

from crypto_bot.entrypoints.handler import step_handler

lambda_handler = step_handler("place_order")
