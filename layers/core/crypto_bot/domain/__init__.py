"""The domain: exact Decimal money, markets, orders, signals, the config, and the allocation, sizing and ledger rules.

Pure: no I/O, no vendor SDK, no environment (tests/unit/test_architecture.py).
"""
