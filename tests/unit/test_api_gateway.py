"""The webhook's API Gateway, emulated from template.yaml: one request in, status and body out.

No AWS here: the SQS call is a recording fake and the authorizer runs the webhook
authorizer's own decision on a constant token (crypto_bot.aws.webhook_auth).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import pytest

from crypto_bot.aws.webhook_auth import Unauthorized
from crypto_bot.local.api_gateway import (
    ApiGatewayEmulator,
    AuthorizerFailed,
    Response,
    WebhookDefinition,
    substitute,
    token_authorizer,
)
from crypto_bot.local.aws import TemplateError, load_template
from tests.conftest import EVENTS, ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
SIGNALS: Final = "local-SignalsQueue-1A2B3C4D5E6F"
URGENT: Final = "local-UrgentQueue-7A8B9C0D1E2F"
VARIABLES: Final = {"SignalsQueue.QueueName": SIGNALS, "UrgentQueue.QueueName": URGENT}
TOKEN: Final = "s3cret-token"


class FakeSqs:
    """Record SendMessage calls and answer as SQS's JSON query API does."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[tuple[str, dict[str, str]]] = []

    def __call__(self, queue: str, form: Mapping[str, str]) -> tuple[int, str]:
        if self.status != 200:
            return self.status, json.dumps({"Error": {"Code": "ServiceUnavailable"}})
        self.sent.append((queue, dict(form)))
        result = {"MessageId": f"msg-{len(self.sent)}", "MD5OfMessageBody": "x"}
        return 200, json.dumps({"SendMessageResponse": {"SendMessageResult": result}})


def emulator(sqs: FakeSqs, **kwargs: Any) -> ApiGatewayEmulator:
    definition = WebhookDefinition.from_template(TEMPLATE, VARIABLES)
    options: dict[str, Any] = {"authorizer": token_authorizer(lambda: TOKEN), "sqs_send": sqs, **kwargs}
    return ApiGatewayEmulator(definition, **options)


def post(api: ApiGatewayEmulator, body: str, *, token: str | None = TOKEN, **kwargs: Any) -> Response:
    content_type = kwargs.pop("content_type", "application/json")
    return api.handle(
        "POST",
        "/signals",
        query={"token": token} if token is not None else {},
        headers={"Content-Type": content_type},
        body=body.encode(),
        **kwargs,
    )


def alert_file(name: str) -> str:
    return (EVENTS / "alerts" / name).read_text(encoding="utf-8")


def test_alert_is_queued_and_answered_with_the_message_id() -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), alert_file("entry.json"))

    assert (response.status, json.loads(response.body)) == (200, {"accepted": True, "id": "msg-1"})
    [(queue, form)] = sqs.sent
    assert queue == SIGNALS
    assert form["MessageBody"] == alert_file("entry.json")
    assert form["MessageAttribute.1.Value.StringValue"] == response.headers["x-amzn-RequestId"]


def test_stop_loss_sent_as_text_plain_with_a_charset_goes_to_the_urgent_queue() -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), alert_file("stop_loss.json"), content_type="text/plain; charset=utf-8")

    assert response.status == 200
    assert [queue for queue, _ in sqs.sent] == [URGENT]


def test_missing_token_is_401_without_calling_the_authorizer() -> None:
    calls: list[Any] = []

    def authorizer(event: Mapping[str, Any]) -> Mapping[str, Any]:
        calls.append(event)
        raise AssertionError("must not be called")

    sqs = FakeSqs()
    response = post(emulator(sqs, authorizer=authorizer), alert_file("entry.json"), token=None)

    assert response.status == 401
    assert json.loads(response.body)["reason"].startswith("no token")
    assert calls == []
    assert sqs.sent == []


def test_wrong_token_is_403_with_the_authorizers_reason_and_nothing_is_queued() -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), alert_file("entry.json"), token="guess")

    assert response.status == 403
    assert json.loads(response.body) == {
        "accepted": False,
        "reason": "User is not authorized to access this resource with an explicit deny",
        "detail": "invalid token",
    }
    assert sqs.sent == []


def test_authorizer_event_has_the_request_shape_api_gateway_sends() -> None:
    events: list[Mapping[str, Any]] = []

    def authorizer(event: Mapping[str, Any]) -> Mapping[str, Any]:
        events.append(event)
        return token_authorizer(lambda: TOKEN)(event)

    post(emulator(FakeSqs(), authorizer=authorizer, stage="dev"), alert_file("entry.json"))

    [event] = events
    sample = json.loads((EVENTS / "authorizer_valid_token.json").read_text(encoding="utf-8"))
    assert set(sample) <= set(event)
    assert event["queryStringParameters"] == {"token": TOKEN}
    assert event["methodArn"].endswith("/dev/POST/signals")
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"


def test_authorizer_answer_is_cached_per_token_for_reauthorize_every() -> None:
    now = [0.0]
    calls: list[str] = []

    def authorizer(event: Mapping[str, Any]) -> Mapping[str, Any]:
        calls.append(event["queryStringParameters"]["token"])
        return token_authorizer(lambda: TOKEN)(event)

    api = emulator(FakeSqs(), authorizer=authorizer, clock=lambda: now[0])
    for _ in range(3):
        post(api, alert_file("entry.json"))
    now[0] = 301.0
    post(api, alert_file("entry.json"))

    assert calls == [TOKEN, TOKEN]


def test_authorizer_that_says_unauthorized_is_401_and_one_that_crashes_is_500() -> None:
    def unauthorized(event: Mapping[str, Any]) -> Mapping[str, Any]:
        raise Unauthorized()

    def crashed(event: Mapping[str, Any]) -> Mapping[str, Any]:
        raise AuthorizerFailed("KeyError: 'WEBHOOK_TOKEN_PARAMETER'")

    assert post(emulator(FakeSqs(), authorizer=unauthorized), alert_file("entry.json")).status == 401
    assert post(emulator(FakeSqs(), authorizer=crashed), alert_file("entry.json")).status == 500


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("not json at all", "Invalid JSON"),
        ('{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSD"}', "object has missing required properties"),
        (
            '{"time": 5, "ticker": "BTCUSD", "order_action": "buy", "order_price": "1", "order_comment": "x"}',
            "instance type (integer) does not match any allowed primitive types",
        ),
        (
            '{"time": "t", "ticker": "BTCUSD", "order_action": "hold", "order_price": "1", "order_comment": "x"}',
            'does not match input string "hold"',
        ),
        ("[1, 2]", "instance type (array)"),
    ],
)
def test_body_the_model_refuses_is_400_with_the_validator_message(body: str, detail: str) -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), body)

    answer = json.loads(response.body)
    assert response.status == 400
    assert answer["reason"] == "the alert does not match the TradingViewAlert model"
    assert detail in answer["detail"]
    assert sqs.sent == []


def test_missing_properties_are_named_in_one_message() -> None:
    response = post(emulator(FakeSqs()), '{"time": "2024-08-10T02:30:02Z"}')

    detail = json.loads(response.body)["detail"]
    assert detail.count("missing required properties") == 1
    assert '"ticker"' in detail
    assert '"order_comment"' in detail


def test_other_content_types_are_415_and_nothing_is_queued() -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), "<alert/>", content_type="application/xml")

    assert response.status == 415
    assert sqs.sent == []


@pytest.mark.parametrize(("method", "path"), [("GET", "/signals"), ("POST", "/other"), ("POST", "/")])
def test_unknown_route_is_api_gateways_missing_authentication_token(method: str, path: str) -> None:
    response = emulator(FakeSqs()).handle(method, path, query={"token": TOKEN}, body=b"{}")

    assert (response.status, json.loads(response.body)["reason"]) == (403, "Missing Authentication Token")


def test_sqs_failure_is_a_502_so_tradingview_resends() -> None:
    response = post(emulator(FakeSqs(status=500)), alert_file("entry.json"))

    assert response.status == 502
    assert json.loads(response.body)["accepted"] is False


def test_source_outside_the_allowlist_is_refused_before_the_authorizer() -> None:
    sqs = FakeSqs()
    api = emulator(sqs, policy_parameters={"AllowedSourceCidrs": ["52.89.214.238/32", "10.0.0.0/8"]})

    outside = post(api, alert_file("entry.json"), source_ip="127.0.0.1")
    inside = post(api, alert_file("entry.json"), source_ip="10.1.2.3")

    assert outside.status == 403
    assert "User: anonymous is not authorized" in json.loads(outside.body)["reason"]
    assert inside.status == 200
    assert [queue for queue, _ in sqs.sent] == [SIGNALS]


def test_allowlist_is_off_without_policy_parameters() -> None:
    assert post(emulator(FakeSqs()), alert_file("entry.json"), source_ip="203.0.113.9").status == 200


def test_writable_queues_are_read_from_the_integration_role() -> None:
    assert WebhookDefinition.from_template(TEMPLATE, VARIABLES).writable_queues == {SIGNALS, URGENT}


def test_substitute_refuses_variables_it_has_no_value_for() -> None:
    assert substitute({"Fn::Sub": "q-${!Literal}-${SignalsQueue.QueueName}"}, VARIABLES) == f"q-${{Literal}}-{SIGNALS}"
    with pytest.raises(TemplateError, match="AWS::Region"):
        substitute({"Fn::Sub": "${AWS::Region}"}, VARIABLES)


def test_an_api_that_is_not_in_the_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="NoSuchApi"):
        WebhookDefinition.from_template(TEMPLATE, VARIABLES, "NoSuchApi")
