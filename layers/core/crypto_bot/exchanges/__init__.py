"""Exchange adapters: ccxt for real venues, paper for dry runs."""
