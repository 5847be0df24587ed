"""Lambda handler: give every signal a terminal status and notify (crypto_bot.entrypoints.steps.finalize)."""

from crypto_bot.entrypoints.handler import step_handler

lambda_handler = step_handler("finalize")
