"""Lambda handler: book fills, chase or give up on a phase's orders (crypto_bot.aws.steps.reconcile)."""

from crypto_bot.aws.handler import step_handler

lambda_handler = step_handler("reconcile")
