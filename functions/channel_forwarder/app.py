"""Lambda handler: post each notification of the topic to the chat channels (crypto_bot.entrypoints.forwarder)."""

from crypto_bot.entrypoints.forwarder import forwarder_handler

lambda_handler = forwarder_handler()
