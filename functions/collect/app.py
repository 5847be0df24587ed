"""Lambda handler: drain the alert queues and open the cycle (crypto_bot.aws.steps.collect)."""

from crypto_bot.aws.handler import step_handler

lambda_handler = step_handler("collect")
