"""The webhook's API Gateway, emulated from template.yaml: one request in, status and body out.

No AWS here: the SQS call is a recording fake and the authorizer runs the webhook
authorizer's own decision on a constant token (crypto_bot.entrypoints.webhook_auth).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

import pytest

from crypto_bot.engine.workflow import MAX_ALERT_CHARS
from crypto_bot.entrypoints.webhook_auth import Unauthorized
from crypto_bot_tools.local.api_gateway import (
    PAYLOAD_LIMIT,
    ApiGatewayEmulator,
    AuthorizerFailed,
    Input,
    MappingTemplateFailed,
    Response,
    Util,
    WebhookDefinition,
    java_length,
    new_context,
    render,
    substitute,
    token_authorizer,
)
from crypto_bot_tools.local.template import TemplateError, load_template
from tests.conftest import EVENTS, ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
SIGNALS: Final = "local-SignalsQueue-1A2B3C4D5E6F"
URGENT: Final = "local-UrgentQueue-7A8B9C0D1E2F"
VARIABLES: Final = {"SignalsQueue.QueueName": SIGNALS, "UrgentQueue.QueueName": URGENT}
TOKEN: Final = "s3cret-token"


class FakeSqs:
    """Record SendMessage and SendMessageBatch calls and answer as SQS's JSON query API does."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.done = threading.Event()

    def __call__(self, queue: str, form: Mapping[str, str]) -> tuple[int, str]:
        time.sleep(self.delay)
        try:
            if self.status != 200:
                return self.status, json.dumps({"Error": {"Code": "ServiceUnavailable"}})
            self.sent.append((queue, dict(form)))
            result = {"MessageId": f"msg-{len(self.sent)}", "MD5OfMessageBody": "x"}
            if form["Action"] == "SendMessageBatch":
                entry = {"Id": form["SendMessageBatchRequestEntry.1.Id"], **result}
                batch = {"SendMessageBatchResult": {"Successful": [entry], "Failed": []}}
                return 200, json.dumps({"SendMessageBatchResponse": batch})
            return 200, json.dumps({"SendMessageResponse": {"SendMessageResult": result}})
        finally:
            self.done.set()


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
    "body",
    [
        "not json at all",
        '{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSD"}',
        '{"time": 5, "ticker": "BTCUSD", "order_action": "buy", "order_price": "1", "order_comment": "x"}',
        '{"time": "t", "ticker": "BTCUSD", "order_action": "hold", "order_price": "1", "order_comment": "x"}',
        "[1, 2]",
        "{{strategy.order.alert_message}}",
    ],
)
def test_every_body_under_the_size_limit_is_queued_for_the_core_to_judge(body: str) -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), body)

    assert (response.status, json.loads(response.body)) == (200, {"accepted": True, "id": "msg-1"})
    assert [(queue, form["Action"], form["MessageBody"]) for queue, form in sqs.sent] == [
        (SIGNALS, "SendMessage", body)
    ]


def test_a_body_without_content_is_queued_as_an_empty_object() -> None:
    sqs = FakeSqs()

    assert post(emulator(sqs), "").status == 200
    assert [form["MessageBody"] for _, form in sqs.sent] == ["{}"]


def test_an_alert_over_the_limit_is_answered_413_and_its_refusal_recorded() -> None:
    sqs = FakeSqs()
    body = json.dumps({"order_comment": "x" * MAX_ALERT_CHARS})

    response = post(emulator(sqs), body)

    assert response.status == 413
    assert json.loads(response.body)["id"] == "msg-1"
    [(queue, form)] = sqs.sent
    assert queue == SIGNALS
    assert form["Action"] == "SendMessageBatch"
    assert form["SendMessageBatchRequestEntry.1.MessageBody"] == body[:200]
    assert form["SendMessageBatchRequestEntry.1.MessageAttribute.2.Value.StringValue"] == "too_large"
    assert form["SendMessageBatchRequestEntry.1.MessageAttribute.3.Value.StringValue"] == str(len(body))


def test_a_request_over_api_gateways_payload_limit_is_413_and_reaches_nothing() -> None:
    sqs = FakeSqs()

    response = post(emulator(sqs), "", content_length=PAYLOAD_LIMIT + 1)

    assert (response.status, response.headers["x-amzn-ErrorType"]) == (413, "REQUEST_TOO_LARGE")
    assert json.loads(response.body)["reason"] == "the alert is over API Gateway's 10 MB limit; it was not stored"
    assert sqs.sent == []


def test_a_slow_queue_is_answered_503_at_the_integration_timeout_and_the_message_still_lands() -> None:
    definition = WebhookDefinition.from_template(TEMPLATE, VARIABLES)
    sqs = FakeSqs(delay=definition.timeout() + 0.5)
    started = time.monotonic()

    response = post(emulator(sqs), alert_file("entry.json"))

    waited = time.monotonic() - started
    # 503 is a status TradingView resends (support article 43000735201); the 504 API Gateway answers by default
    # is the one it does not.
    assert (response.status, response.headers["x-amzn-ErrorType"]) == (503, "INTEGRATION_TIMEOUT")
    assert json.loads(response.body)["accepted"] is False
    assert definition.timeout() <= waited < definition.timeout() + 0.5
    # API Gateway stops waiting, SQS does not: the resend becomes a duplicate, which its dedupe key absorbs.
    assert sqs.done.wait(5)
    assert [queue for queue, _ in sqs.sent] == [SIGNALS]


def test_a_queue_that_cannot_be_reached_is_answered_502() -> None:
    def unreachable(queue: str, form: Mapping[str, str]) -> tuple[int, str]:
        raise ConnectionError("connection reset by peer")

    response = post(emulator(FakeSqs(), sqs_send=unreachable), alert_file("entry.json"))

    assert (response.status, response.headers["x-amzn-ErrorType"]) == (502, "INTEGRATION_FAILURE")
    assert json.loads(response.body)["reason"] == "the queue could not be reached; TradingView resends the alert"


def test_a_status_no_integration_response_selects_is_api_gateways_configuration_error() -> None:
    document = copy.deepcopy(TEMPLATE)
    integration = document["Resources"]["WebhookApi"]["Properties"]["DefinitionBody"]["paths"]["/signals"]["post"][
        "x-amazon-apigateway-integration"
    ]
    del integration["responses"]["default"]
    options: dict[str, Any] = {"authorizer": token_authorizer(lambda: TOKEN), "sqs_send": FakeSqs(status=500)}
    api = ApiGatewayEmulator(WebhookDefinition.from_template(document, VARIABLES), **options)

    response = post(api, alert_file("entry.json"))

    assert (response.status, response.headers["x-amzn-ErrorType"]) == (500, "API_CONFIGURATION_ERROR")


def test_a_template_with_a_request_validator_is_refused_as_not_emulated() -> None:
    document = copy.deepcopy(TEMPLATE)
    body = document["Resources"]["WebhookApi"]["Properties"]["DefinitionBody"]
    body["x-amazon-apigateway-request-validators"] = {"all": {"validateRequestBody": True}}

    with pytest.raises(TemplateError, match="request validators are not emulated"):
        WebhookDefinition.from_template(document, VARIABLES)


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


def test_substitute_resolves_the_list_form_with_join_split_and_parameter_refs() -> None:
    value = {
        "Fn::Sub": [
            "<${Word}> ${SignalsQueue.QueueName}",
            {"Word": {"Fn::Join": ["+", {"Fn::Split": ["-", {"Ref": "Pattern"}]}]}},
        ]
    }

    assert substitute(value, VARIABLES, {"Pattern": "a-b-c"}) == f"<a+b+c> {SIGNALS}"
    with pytest.raises(TemplateError, match="Ref Pattern"):
        substitute(value, VARIABLES)


def test_a_parameter_is_checked_against_its_allowed_pattern() -> None:
    with pytest.raises(TemplateError, match="StopLossPattern is 'STOP'"):
        WebhookDefinition.from_template(TEMPLATE, VARIABLES, parameters={"StopLossPattern": "STOP"})
    with pytest.raises(TemplateError, match="not declared"):
        WebhookDefinition.from_template(TEMPLATE, VARIABLES, parameters={"NoSuchParameter": "x"})


# ------------------------------------------------------------------------------ Velocity and Java


def test_input_body_of_an_empty_request_is_an_empty_object_and_path_reads_indexes() -> None:
    assert Input("").body == "{}"
    document = Input('{"a": {"b": [{"c": 1}, {"c": 2}]}}')
    assert (document.path("$.a.b[1].c"), document.path("$.a.b[2].c"), document.path("$.x")) == (2, None, None)


def test_java_string_length_and_substring_count_utf16_units() -> None:
    text = "a\U0001f680b"
    context = new_context("r")

    assert java_length(text) == 4
    assert render("$input.body.length() $input.body.substring(0, 3)", text, context) == "4 a\U0001f680"
    assert render("$input.body.substring(0, 2).length()", text, context) == "2"


def test_replace_all_takes_its_replacement_literally_and_refuses_javas_group_syntax() -> None:
    context = new_context("r")

    assert render("$input.body.replaceAll('[0-9]', 'n')", "a1b22", context) == "anbnn"
    with pytest.raises(MappingTemplateFailed, match="not emulated"):
        render("$input.body.replaceAll('([0-9])', '$1$1')", "a1", context)


def test_url_encode_writes_an_unpaired_surrogate_as_a_question_mark_as_javas_encoder_does() -> None:
    assert Util().urlEncode("a \ud83d~*") == "a+%3F%7E*"


def test_else_takes_its_newline_as_velocity_does() -> None:
    template = "#if(false)\nA\n#else\nB\n#end\nC"

    assert render(template, "", new_context("r")) == "B\nC"


def test_an_api_that_is_not_in_the_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="NoSuchApi"):
        WebhookDefinition.from_template(TEMPLATE, VARIABLES, "NoSuchApi")
