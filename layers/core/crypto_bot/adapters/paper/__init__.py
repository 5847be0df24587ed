"""The paper exchange: a venue emulated in memory for dry runs, replay and tests."""
