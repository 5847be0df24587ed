"""Lambda handler: drain the alert queues and open the cycle (crypto_bot.entrypoints.steps.collect)."""

from crypto_bot.entrypoints.handler import step_handler

lambda_handler = step_handler("collect")
