"""Secrets never reach logs, the execution history, notifications or stored records."""

from __future__ import annotations

import json
import logging

import pytest

from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import AuthenticationFailed
from tests.conftest import AlertClock, load_event, paper_environment
from tests.support.harness import cycle_stack

API_KEY = "FAKEKEY-7c1d2e9f4a"  # pragma: allowlist secret
API_SECRET = "FAKESECRET-0b9e8d7c6a"  # pragma: allowlist secret
WEBHOOK_TOKEN = "FAKETOKEN-5e4f3a2b1c"  # pragma: allowlist secret
SECRETS = (API_KEY, API_SECRET, WEBHOOK_TOKEN)
BTC_BUY, ETH_BUY = load_event("alerts/readme_example.jsonl")[0:2]


def test_a_cycle_with_a_failure_leaks_no_secret_anywhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # The application's own logs at every level; botocore's wire dumps (DEBUG) are off in Lambda too.
    caplog.set_level(logging.DEBUG, logger="crypto_bot")
    caplog.set_level(logging.INFO)

    def refused(self: PaperExchange, *args: object, **kwargs: object) -> None:
        # What the ccxt adapter raises for a revoked key: the message names the venue, never the key.
        raise AuthenticationFailed("binance rejected the API key (code -2015)")

    monkeypatch.setattr(PaperExchange, "create_limit_order", refused)
    with cycle_stack(
        parameters={"IncrementPct": "0"},
        substitutions={"MaxLockWaits": "3"},
        environment=paper_environment(POWERTOOLS_LOG_LEVEL="DEBUG"),
        ssm_values={
            "/crypto-bot/dev/exchange-api-key": json.dumps({"apiKey": API_KEY, "secret": API_SECRET}),
            "/crypto-bot/dev/webhook-token": WEBHOOK_TOKEN,
        },
        retry_interval_scale=0,
    ) as pipeline:
        caplog.clear()  # the setup itself wrote the parameters: only what the cycle logs counts
        capsys.readouterr()
        for alert in AlertClock()([BTC_BUY, ETH_BUY]):
            pipeline.send(alert)
        result = pipeline.run(name="leak-check")
        stack = pipeline.stack
        table = stack.client("dynamodb").scan(TableName=stack.resource("Table"))["Items"]
        places = {
            "logs": caplog.text + "".join(capsys.readouterr()),
            "execution history": json.dumps(result, default=str),
            "notifications": "\n".join(pipeline.notifications()),
            "stored records": json.dumps(table, default=str),
        }
    assert "AuthenticationFailed" in places["notifications"]  # the failure itself is reported
    for where, text in places.items():
        assert text, f"nothing captured from {where}"
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into {where}"
