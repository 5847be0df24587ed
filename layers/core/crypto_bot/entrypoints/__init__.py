"""Entrypoints: what the Lambda handlers call.

Settings, the composition root, the step functions behind the state machine, and the webhook authorizer.
"""
