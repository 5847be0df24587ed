"""Adapters: the outside worlds behind the engine's ports (ccxt venues, the paper exchange, AWS)."""
