"""Lambda handler: plan one phase of the cycle from fresh balances (crypto_bot.aws.steps.plan)."""

from crypto_bot.aws.handler import step_handler

lambda_handler = step_handler("plan")
