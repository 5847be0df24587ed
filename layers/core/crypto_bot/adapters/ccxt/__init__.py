"""The ccxt adapter: a real venue behind the Exchange port."""
