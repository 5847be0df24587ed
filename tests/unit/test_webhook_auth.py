"""The webhook's REQUEST authorizer: functions/authorizer/app.py over crypto_bot.entrypoints.webhook_auth, no AWS."""

from __future__ import annotations

import hmac
import importlib.util
import io
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Imported at collection, while sockets are still allowed: on first import urllib3 (under boto3) opens a
# socket to probe for IPv6, which the unit tests' socket guard would report.
import aws_lambda_powertools.utilities.parameters  # noqa: F401
import pytest

from crypto_bot.entrypoints import webhook_auth
from tests.conftest import ROOT, load_event

APP = ROOT / "functions" / "authorizer" / "app.py"
VALID = load_event("authorizer_valid_token.json")
BAD = load_event("authorizer_bad_token.json")
SECRET = VALID["queryStringParameters"]["token"]


@dataclass
class FakeContext:
    function_name: str = "WebhookAuthorizerFunction"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:WebhookAuthorizerFunction"
    aws_request_id: str = "6f1c2a3b-0000-4000-8000-000000000001"


@dataclass
class Handler:
    module: Any  # loaded from its file path, so mypy knows nothing of it
    log: io.StringIO

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.module.lambda_handler(event, FakeContext())
        return result


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Handler:
    """Load the handler fresh, with the expected token injected and its Powertools log captured."""
    monkeypatch.setenv("WEBHOOK_TOKEN_PARAMETER", "/crypto-bot/test/webhook-token")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "crypto-bot")
    # Even when asked to log events, the handler must not: the event holds the token.
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    spec = importlib.util.spec_from_file_location("webhook_authorizer_app", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "webhook_authorizer_app", module)
    spec.loader.exec_module(module)
    loaded = Handler(module, io.StringIO())
    loaded.module.token_source = lambda: SECRET
    loaded.module.logger.registered_handler.setStream(loaded.log)
    return loaded


def with_token(token: str | None) -> dict[str, Any]:
    """Return the valid event with its token replaced (None: no query string at all)."""
    event = {**VALID, "queryStringParameters": None if token is None else {"token": token}}
    event["multiValueQueryStringParameters"] = None if token is None else {"token": [token]}
    return event


def test_valid_token_allows_invoking_exactly_the_method_arn(handler: Handler) -> None:
    answer = handler(VALID)

    assert answer == {
        "principalId": "tradingview",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": VALID["methodArn"]}],
        },
        "context": {"reason": "token accepted"},
    }


def test_wrong_token_is_denied_with_a_reason(handler: Handler) -> None:
    answer = handler(BAD)

    assert answer["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": BAD["methodArn"]}
    ]
    assert answer["context"] == {"reason": "invalid token"}


@pytest.mark.parametrize("token", [None, ""], ids=["no query string", "empty token"])
def test_missing_token_fails_with_unauthorized_for_a_401(handler: Handler, token: str | None) -> None:
    with pytest.raises(webhook_auth.Unauthorized) as raised:
        handler(with_token(token))

    # API Gateway answers 401 only for this exact error message.
    assert str(raised.value) == "Unauthorized"


def test_missing_token_does_not_fetch_the_expected_token(handler: Handler) -> None:
    def no_ssm() -> str:
        raise AssertionError("the expected token was fetched")

    handler.module.token_source = no_ssm

    with pytest.raises(webhook_auth.Unauthorized):
        handler(with_token(None))


def test_token_prefix_or_extension_is_denied(handler: Handler) -> None:
    for token in (SECRET[:-1], SECRET + "x", SECRET.upper(), " " + SECRET):
        assert handler(with_token(token))["policyDocument"]["Statement"][0]["Effect"] == "Deny", token


def test_empty_expected_token_denies_every_token(handler: Handler) -> None:
    handler.module.token_source = lambda: ""

    assert handler(VALID)["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_non_ascii_tokens_compare_without_error(handler: Handler) -> None:
    handler.module.token_source = lambda: "clé-🔑-secret"

    assert handler(with_token("clé-🔑-secret"))["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert handler(with_token("clé-🔒-secret"))["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_comparison_goes_through_hmac_compare_digest(handler: Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)

    handler(BAD)

    assert calls == [(BAD["queryStringParameters"]["token"].encode(), SECRET.encode())]


def test_token_never_reaches_the_logs(handler: Handler, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    handler.module.logger.setLevel("DEBUG")

    handler(VALID)
    handler(BAD)
    with pytest.raises(webhook_auth.Unauthorized):
        handler(with_token(None))

    written = handler.log.getvalue() + caplog.text
    # The decisions are logged (so this test can see a leak), the tokens are not.
    assert '"allowed":true' in written.replace(" ", "")
    assert "invalid token" in written
    assert "webhook token missing" in written
    assert SECRET not in written
    assert BAD["queryStringParameters"]["token"] not in written


def test_fetch_token_reads_the_securestring_decrypted_and_cached(
    handler: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def get_parameter(name: str, **options: Any) -> str:
        calls.append((name, options))
        return "from-ssm"

    monkeypatch.setattr(handler.module.parameters, "get_parameter", get_parameter)

    assert handler.module.fetch_token() == "from-ssm"
    assert calls == [("/crypto-bot/test/webhook-token", {"decrypt": True, "max_age": 300})]


def test_authorize_reports_a_reason_without_the_token() -> None:
    decision = webhook_auth.authorize(VALID, lambda: SECRET)

    assert decision.allowed
    assert SECRET not in repr(decision)


def test_policy_document_without_context_has_no_context_key() -> None:
    answer = webhook_auth.policy_document("Deny", "arn:aws:execute-api:eu-west-1:1:api/dev/POST/signals")

    assert "context" not in answer
    assert (
        answer["policyDocument"]["Statement"][0]["Resource"] == "arn:aws:execute-api:eu-west-1:1:api/dev/POST/signals"
    )


def test_empty_tokens_never_match() -> None:
    # An unset SSM value must not turn an empty presented token into a match.
    assert not webhook_auth.tokens_match("", "")
    assert webhook_auth.tokens_match("s3cret", "s3cret")
