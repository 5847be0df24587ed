"""Lambda handler: plan one phase of the cycle from fresh balances (crypto_bot.entrypoints.steps.plan)."""

from crypto_bot.entrypoints.handler import step_handler

lambda_handler = step_handler("plan")
