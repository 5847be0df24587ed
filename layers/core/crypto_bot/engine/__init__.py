"""The engine: the ports the adapters implement, the records the store keeps, and the trade cycle's steps.

It depends on the domain only, and reaches the outside worlds through :mod:`crypto_bot.engine.ports`.
"""
