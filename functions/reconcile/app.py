"""Lambda handler: book fills, chase or give up on a phase's orders (crypto_bot.entrypoints.steps.reconcile)."""

from crypto_bot.entrypoints.handler import step_handler

lambda_handler = step_handler("reconcile")
