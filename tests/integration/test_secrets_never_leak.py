"""Secrets never reach logs, the execution history, notifications or stored records."""

from __future__ import annotations

import json
import logging

import pytest

from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import AuthenticationFailed
from crypto_bot_tools.local.aws import local_stack
from tests.conftest import ROOT
from tests.faults.harness import BTC_BUY, ETH_BUY, Case, environment

API_KEY = "FAKEKEY-7c1d2e9f4a"  # pragma: allowlist secret
API_SECRET = "FAKESECRET-0b9e8d7c6a"  # pragma: allowlist secret
WEBHOOK_TOKEN = "FAKETOKEN-5e4f3a2b1c"  # pragma: allowlist secret
SECRETS = (API_KEY, API_SECRET, WEBHOOK_TOKEN)


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
    with local_stack(
        ROOT / "template.yaml",
        parameters={"IncrementPct": "0"},
        substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "3"},
        environment=environment() | {"POWERTOOLS_LOG_LEVEL": "DEBUG"},
        ssm_values={
            "/crypto-bot/dev/exchange-api-key": json.dumps({"apiKey": API_KEY, "secret": API_SECRET}),
            "/crypto-bot/dev/webhook-token": WEBHOOK_TOKEN,
        },
        retry_interval_scale=0,
    ) as stack:
        caplog.clear()  # the setup itself wrote the parameters: only what the cycle logs counts
        capsys.readouterr()
        case = Case(stack)
        case.send(BTC_BUY)
        case.send(ETH_BUY)
        result = case.run(name="leak-check")
        table = stack.client("dynamodb").scan(TableName=stack.resource("Table"))["Items"]
        places = {
            "logs": caplog.text + "".join(capsys.readouterr()),
            "execution history": json.dumps(result, default=str),
            "notifications": "\n".join(case.notifications()),
            "stored records": json.dumps(table, default=str),
        }
    assert "AuthenticationFailed" in places["notifications"]  # the failure itself is reported
    for where, text in places.items():
        assert text, f"nothing captured from {where}"
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into {where}"
