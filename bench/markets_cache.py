"""The markets cache: the exchange requests of a cold start's market load, without and with the table."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from bench.dynamodb_units import units
from bench.settings import FIXTURES, progress


class _FakeBinance:
    """ccxt's ``fetch`` for Binance, answering the market download from the recorded fixture; counts requests."""

    def __init__(self, client: Any) -> None:
        data = json.loads((FIXTURES / "binance.json").read_text(encoding="utf-8"))
        self.routes: dict[str, Any] = {
            "/api/v3/exchangeInfo": data["exchange_info"],
            "/sapi/v1/capital/config/getall": [],
            "/sapi/v1/margin/allPairs": [],
            "/sapi/v1/margin/isolated/allPairs": [],
        }
        self.requests: list[str] = []
        self.bytes = 0
        client.fetch = self

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        from urllib.parse import urlsplit

        path = urlsplit(url).path
        self.requests.append(f"{method} {path}")
        if path not in self.routes:
            raise AssertionError(f"unexpected request {method} {url}")
        payload = self.routes[path]
        self.bytes += len(json.dumps(payload))
        return payload


def markets_cache() -> dict[str, Any]:
    """Count the exchange requests of a cold start's market load without and with the table cache."""
    import boto3
    from moto import mock_aws

    from crypto_bot.adapters.aws.markets_cache import CacheOutcome, prime_from_table
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange

    symbols = ["BTC/USDT", "ETH/BTC"]

    def cold_exchange() -> tuple[CcxtExchange, _FakeBinance]:
        # A fake key: the fake HTTP layer answers everything, and ccxt only needs one to sign.
        options = {"enableRateLimit": False}
        exchange = CcxtExchange("binance", api_key="bench", secret="bench", options=options)  # noqa: S106
        return exchange, _FakeBinance(exchange.client)

    without, http = cold_exchange()
    without.load_markets(symbols)
    no_cache: dict[str, Any] = {
        "http_requests": len(http.requests),
        "response_bytes": http.bytes,
        "requests": http.requests,
    }

    with _fake_aws(), mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="bench",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        first, first_http = cold_exchange()
        first_db = _CountingDynamoDB(client)
        miss = prime_from_table(first, "bench", first_db, symbols)
        first.load_markets(symbols)
        second, second_http = cold_exchange()
        second_db = _CountingDynamoDB(client)
        hit = prime_from_table(second, "bench", second_db, symbols)
        second.load_markets(symbols)
        item = client.get_item(TableName="bench", Key={"pk": {"S": "MARKETS#binance"}, "sk": {"S": "MARKETS"}})
        item_bytes = len(item["Item"]["markets"]["B"])
    if miss is not CacheOutcome.REFRESHED or hit is not CacheOutcome.HIT:
        raise RuntimeError(f"markets cache: expected a refresh then a hit, got {miss} then {hit}")
    result = {
        "symbols": symbols,
        "without_cache": {**no_cache, "dynamodb_calls": 0},  # no table: the adapter alone, as before the cache
        "first_cold_start": {
            "outcome": miss.value,
            "http_requests": len(first_http.requests),
            "dynamodb_calls": len(first_db.calls),
            "dynamodb_operations": first_db.calls,
        },
        "cached_cold_start": {
            "outcome": hit.value,
            "http_requests": len(second_http.requests),
            "dynamodb_calls": len(second_db.calls),
            "dynamodb_operations": second_db.calls,
            "dynamodb_rru": second_db.rru,
        },
        "cached_item_bytes": item_bytes,
        "http_requests_saved_per_cold_start": no_cache["http_requests"] - len(second_http.requests),
        "response_bytes_saved_per_cold_start": no_cache["response_bytes"],
    }
    progress(f"markets cache: {no_cache['http_requests']} requests without, {len(second_http.requests)} with a hit")
    return result


class _CountingDynamoDB:
    """The DynamoDB client handed to the markets cache, counting each call it makes and the read units it uses."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []
        self.rru = 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return method

        def call(**params: Any) -> Any:
            response = method(**params)
            self.calls.append(operation)
            self.rru += units(operation, params, response)[1]
            return response

        return call


@contextlib.contextmanager
def _fake_aws() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
