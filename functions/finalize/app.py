"""Lambda handler: give every signal a terminal status and notify (crypto_bot.aws.steps.finalize)."""

from crypto_bot.aws.handler import step_handler

lambda_handler = step_handler("finalize")
