"""The webhook in template.yaml, checked offline: its model, mapping templates and security settings.

The mapping templates are rendered by crypto_bot.local.api_gateway, which runs airspeed
(Python Velocity) against objects that behave like API Gateway's ``$input``, ``$util`` and
``$context``, with Java's String methods emulated and the ``regex`` module standing in for
java.util.regex (it reads ``\\p{L}``, lookbehinds and ``\\uXXXX`` the same way). The request
validator is emulated with jsonschema's draft 4 validator on the model, as API Gateway validates.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from typing import Any, Final

import pytest
import regex

from crypto_bot.config import StrategyConfig
from crypto_bot.errors import SignalRejected
from crypto_bot.local.api_gateway import SqsRequest, Util, WebhookDefinition, new_context, render, substitute
from crypto_bot.local.aws import load_template
from crypto_bot.signals import is_stop_loss_comment, parse_signal
from tests.conftest import EVENTS, ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
API: dict[str, Any] = RESOURCES["WebhookApi"]["Properties"]
BODY: dict[str, Any] = API["DefinitionBody"]
POST: dict[str, Any] = BODY["paths"]["/signals"]["post"]
INTEGRATION: dict[str, Any] = POST["x-amazon-apigateway-integration"]
MODEL: dict[str, Any] = BODY["components"]["schemas"]["TradingViewAlert"]
GATEWAY_RESPONSES: dict[str, Any] = BODY["x-amazon-apigateway-gateway-responses"]

# What CloudFormation substitutes for ${SignalsQueue.QueueName} and ${UrgentQueue.QueueName}.
SIGNALS: Final = "crypto-bot-SignalsQueue-1A2B3C4D5E6F"
URGENT: Final = "crypto-bot-UrgentQueue-7A8B9C0D1E2F"
QUEUE_NAMES: Final = {"SignalsQueue.QueueName": SIGNALS, "UrgentQueue.QueueName": URGENT}
WEBHOOK = WebhookDefinition.from_template(TEMPLATE, QUEUE_NAMES)
CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)
CORPUS: list[dict[str, Any]] = json.loads(
    (ROOT / "tests" / "fixtures" / "webhook_corpus.json").read_text(encoding="utf-8")
)["entries"]
REQUEST_ID: Final = "0f4c2b7e-2d0a-4c55-9a1e-6b1d8f0c9e21"


# ------------------------------------------------------------------------------ the template, as the emulator reads it


def sub(value: Any) -> str:
    """Resolve a (possibly) Fn::Sub string as CloudFormation would; any variable but the queue names fails."""
    return substitute(value, QUEUE_NAMES)


def request_template(content_type: str) -> str:
    """Return the request mapping template for a content type, with the queue names substituted."""
    template = WEBHOOK.request_template(content_type)
    assert template is not None, f"no request template for {content_type}"
    return template


def template_regex(variable: str) -> str:
    """Return the Java regex the request template matches ``$variable`` against."""
    found = re.search(rf"\${variable}\.matches\('([^']*)'\)", request_template("application/json"))
    assert found, f"no ${variable}.matches(...) in the request template"
    return found.group(1)


def integration_request(body: str, content_type: str = "application/json") -> SqsRequest:
    """Render the request template and resolve the {queue} path parameter as API Gateway would."""
    request = WEBHOOK.integration_request(body, content_type, new_context(REQUEST_ID))
    assert request is not None, f"no request template for {content_type}"
    return request


def integration_response(request: SqsRequest, sqs_status: int, sqs_body: str = "{}") -> tuple[int, Any]:
    """Pick the integration response by SQS's status code, render it, apply a status override."""
    status, text = WEBHOOK.integration_response(request, sqs_status, sqs_body)
    return status, json.loads(text)


def schema_accepts(body: str, content_type: str = "application/json") -> bool:
    """Emulate the body validator: the model for the content type, draft 4, on the body parsed as JSON."""
    content = POST["requestBody"]["content"]
    if content_type in content:
        assert content[content_type]["schema"] == {"$ref": "#/components/schemas/TradingViewAlert"}
    return not WEBHOOK.validation_errors(body, content_type)


def core_accepts(body: str) -> bool:
    """Say whether crypto_bot.signals.parse_signal takes the body (the source of truth)."""
    try:
        parse_signal(json.loads(body), CONFIG)
    except (ValueError, SignalRejected):
        return False
    return True


def alert(**fields: Any) -> str:
    """Return a valid BTCUSD entry alert as JSON, with some fields replaced."""
    payload = {
        "time": "2024-08-10T02:30:02Z",
        "ticker": "BTCUSD",
        "order_action": "buy",
        "order_price": "60000",
        "order_comment": "long",
    }
    payload.update(fields)
    return json.dumps(payload)


def event_body(name: str) -> str:
    """Read an alert body from events/alerts/."""
    return (EVENTS / "alerts" / name).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ routing


def test_both_content_types_share_one_request_template() -> None:
    assert set(INTEGRATION["requestTemplates"]) == {"application/json", "text/plain"}
    assert request_template("application/json") == request_template("text/plain")


def test_stop_loss_sell_routes_to_the_urgent_queue() -> None:
    assert integration_request(event_body("stop_loss.json")).queue == URGENT


def test_entry_and_exit_route_to_the_signals_queue() -> None:
    assert integration_request(event_body("entry.json")).queue == SIGNALS
    assert integration_request(event_body("exit.json")).queue == SIGNALS


@pytest.mark.parametrize("comment", ["Stop loss", "stop_loss", "StopLoss", "SL: STOP hit", "trail-stop", "ſtop"])
@pytest.mark.parametrize("action", ["sell", "SELL", " Sell\n", "\u3000sell"])
def test_every_spelling_of_a_stop_loss_sell_is_urgent(action: str, comment: str) -> None:
    body = alert(order_action=action, order_comment=comment)

    assert integration_request(body).queue == URGENT
    assert parse_signal(json.loads(body), CONFIG).is_stop_loss


@pytest.mark.parametrize(
    "comment", ["nonstop", "Nonstop? no: NONSTOP", "unstoppable_x", "_stop", "1stop", "take profit"]
)
def test_comment_without_a_word_starting_with_stop_is_not_urgent(comment: str) -> None:
    body = alert(order_action="sell", order_comment=comment)

    assert integration_request(body).queue == SIGNALS
    assert not parse_signal(json.loads(body), CONFIG).is_stop_loss


def test_stop_loss_buy_is_not_urgent_and_the_core_rejects_it() -> None:
    body = alert(order_action="buy", order_comment="Stop loss")

    assert integration_request(body).queue == SIGNALS
    with pytest.raises(SignalRejected, match="only a sell can be a stop loss"):
        parse_signal(json.loads(body), CONFIG)


def test_numeric_comment_or_action_renders_and_routes_to_signals() -> None:
    assert integration_request(alert(order_action=1, order_comment=42)).queue == SIGNALS


def test_message_body_is_the_urlencoded_original_body() -> None:
    body = (
        '{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSD", "order_action": "sell", "order_price": "1+1=2 & 3%",'
        '\n "order_comment": "Stop loss \U0001f680 ~ \'q\' \\"dq\\" #set($x) ${y}"}'
    )

    request = integration_request(body)

    assert request.form == {
        "Action": "SendMessage",
        "Version": "2012-11-05",
        "MessageBody": body,
        "MessageAttribute.1.Name": "request_id",
        "MessageAttribute.1.Value.DataType": "String",
        "MessageAttribute.1.Value.StringValue": REQUEST_ID,
    }
    # Exactly one line: stray template whitespace would corrupt the first form field.
    assert request.raw.startswith("Action=SendMessage&")
    assert "\n" not in request.raw
    assert "MessageBody=" + Util().urlEncode(body) + "&" in request.raw


def test_json_sent_as_text_plain_is_queued_like_application_json() -> None:
    body = event_body("stop_loss.json")

    as_text = integration_request(body, "text/plain")

    assert schema_accepts(body, "text/plain")
    assert as_text.raw == integration_request(body, "application/json").raw
    assert as_text.queue == URGENT


def test_non_json_text_plain_is_refused_by_the_validator() -> None:
    body = event_body("malformed.txt")

    # TradingView's plain-text messages arrive as text/plain, which has the model too.
    assert POST["x-amazon-apigateway-request-validator"] in BODY["x-amazon-apigateway-request-validators"]
    assert BODY["x-amazon-apigateway-request-validators"][POST["x-amazon-apigateway-request-validator"]] == {
        "validateRequestBody": True,
        "validateRequestParameters": False,
    }
    assert not schema_accepts(body, "text/plain")
    assert GATEWAY_RESPONSES["BAD_REQUEST_BODY"]["statusCode"] == 400


def test_non_json_body_past_the_validator_never_reaches_a_queue_and_is_a_400() -> None:
    request = integration_request(event_body("malformed.txt"), "text/plain")

    assert not request.queued
    assert request.queue not in json.dumps(RESOURCES["WebhookSqsRole"])
    # The role may not write to that queue name, so SQS answers 403; the client sees a 400.
    status, answer = integration_response(request, 403)
    assert status == 400
    assert answer == {"accepted": False, "reason": "the body is not a JSON object"}


def test_other_content_types_are_refused_not_passed_through() -> None:
    assert INTEGRATION["passthroughBehavior"] == "never"
    assert GATEWAY_RESPONSES["UNSUPPORTED_MEDIA_TYPE"]["statusCode"] == 415


# ------------------------------------------------------------------------------ responses


def test_sqs_success_answers_accepted_with_the_message_id() -> None:
    request = integration_request(event_body("entry.json"))
    sqs = {
        "SendMessageResponse": {
            "ResponseMetadata": {"RequestId": "b5293cb5-d306-4a17-9048-b263635abe42"},
            "SendMessageResult": {"MD5OfMessageBody": "fafb00f5732ab283681e124bf8747ed1", "MessageId": "5fea7756-0ea4"},
        }
    }

    assert integration_response(request, 200, json.dumps(sqs)) == (200, {"accepted": True, "id": "5fea7756-0ea4"})


@pytest.mark.parametrize("sqs_status", [400, 403, 404, 413, 500, 503])
def test_sqs_failure_is_a_502_so_tradingview_resends(sqs_status: int) -> None:
    request = integration_request(event_body("entry.json"))

    status, answer = integration_response(request, sqs_status, '{"Error": {"Code": "X"}}')

    assert status == 502
    assert answer["accepted"] is False
    assert "not stored" in answer["reason"]


@pytest.mark.parametrize(
    ("response", "status"),
    [
        ("BAD_REQUEST_BODY", 400),
        ("UNAUTHORIZED", 401),
        ("ACCESS_DENIED", 403),
        ("UNSUPPORTED_MEDIA_TYPE", 415),
        ("THROTTLED", 429),
        ("DEFAULT_4XX", None),
        ("DEFAULT_5XX", None),
    ],
)
def test_every_refusal_is_json_with_a_reason(response: str, status: int | None) -> None:
    context = {
        "error": {
            "validationErrorString": '[object has missing required properties ([\\"time\\"])]',
            "messageString": '"Forbidden"',
            "message": "Forbidden",
        },
        "authorizer": {"reason": "invalid token"},
    }
    gateway_response = GATEWAY_RESPONSES[response]

    answer = json.loads(render(gateway_response["responseTemplates"]["application/json"], "", context))

    assert gateway_response.get("statusCode") == status
    assert answer["accepted"] is False
    assert answer["reason"]


def test_bad_body_answer_carries_the_validator_message() -> None:
    assert (
        "$context.error.validationErrorString"
        in GATEWAY_RESPONSES["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"]
    )


# ------------------------------------------------------------------------------ the stop-loss regex vs the core


TRICKY_COMMENTS = [
    "Stop loss", "stop", "STOP", "ſtop", "x.stop", "(stop)", "\nstop", "éstop", "e\u0301stop", "²stop", "_stop",
    "9stop", "nonstop", "Nonstop stop", "非stop", "Ωstop", "\U0001d400stop", "\U0001f680stop", "s top", "stpo", "",
]  # fmt: skip


@pytest.mark.parametrize("comment", TRICKY_COMMENTS)
def test_template_stop_regex_agrees_with_the_core(comment: str) -> None:
    assert (regex.fullmatch(template_regex("comment"), comment) is not None) == is_stop_loss_comment(comment)


def test_template_word_boundary_agrees_with_python_for_every_character() -> None:
    # Every character Python's Unicode database assigns, before "stop" and in place of each letter.
    pattern = regex.compile(template_regex("comment"))
    disagreements = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in ("Cn", "Cs"):
            continue
        samples = (
            [char + "stop"]
            if code > 0xFFFF
            else [char + "stop", char + "top", "s" + char + "op", "st" + char + "p", "sto" + char]
        )
        for sample in samples:
            if (pattern.fullmatch(sample) is not None) != is_stop_loss_comment(sample):
                disagreements.append(sample)
    assert disagreements == []


def test_action_regex_blanks_are_exactly_what_python_strip_removes() -> None:
    blanks = regex.compile(template_regex("action").split("]")[0] + "]")
    matched = {chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF and blanks.fullmatch(chr(c))}

    assert matched == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    # The model's patterns use the same class, so they accept whatever the core strips.
    for name in ("order_action", "market_position"):
        assert MODEL["properties"][name]["pattern"].startswith("^" + blanks.pattern + "*")


# ------------------------------------------------------------------------------ the shared corpus


def corpus_body(entry: dict[str, Any]) -> str:
    """Build the request body of a corpus entry: its raw text, or its payload (expanded) as JSON."""
    if "raw" in entry:
        raw: str = entry["raw"]
        return raw
    payload = entry["payload"]
    if isinstance(payload, dict):
        payload = {**payload, **{key: text * times for key, (text, times) in entry.get("expand", {}).items()}}
    return json.dumps(payload, ensure_ascii=False)


def test_corpus_is_large_and_covers_every_verdict() -> None:
    verdicts = {(entry["schema"], entry["core"]) for entry in CORPUS}

    assert len(CORPUS) >= 25
    assert verdicts == {("accept", "accept"), ("reject", "reject"), ("accept", "reject")}
    assert len({entry["name"] for entry in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["name"] for entry in CORPUS])
def test_corpus_verdicts_hold(entry: dict[str, Any]) -> None:
    body = corpus_body(entry)

    assert ("accept" if schema_accepts(body) else "reject") == entry["schema"]
    assert ("accept" if core_accepts(body) else "reject") == entry["core"]


def test_schema_never_refuses_what_the_core_accepts() -> None:
    bodies = [corpus_body(entry) for entry in CORPUS]

    assert [body[:80] for body in bodies if core_accepts(body) and not schema_accepts(body)] == []


def test_every_alert_the_schema_admits_is_queued_and_stop_losses_go_urgent() -> None:
    for entry in CORPUS:
        body = corpus_body(entry)
        if not schema_accepts(body):
            continue
        request = integration_request(body)
        assert request.queued, entry["name"]
        assert request.form["MessageBody"] == body, entry["name"]
        if core_accepts(body):
            is_stop = parse_signal(json.loads(body), CONFIG).is_stop_loss
            assert (request.queue == URGENT) == is_stop, entry["name"]


# ------------------------------------------------------------------------------ wiring and security


def test_integration_sends_straight_to_sqs_with_the_api_role() -> None:
    assert INTEGRATION["type"] == "aws"
    assert INTEGRATION["httpMethod"] == "POST"
    assert INTEGRATION["uri"] == {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:sqs:path/${AWS::AccountId}/{queue}"
    }
    assert INTEGRATION["credentials"] == {"Fn::GetAtt": ["WebhookSqsRole", "Arn"]}
    assert INTEGRATION["requestParameters"]["integration.request.header.Content-Type"] == (
        "'application/x-www-form-urlencoded'"
    )
    assert sub(INTEGRATION["requestParameters"]["integration.request.path.queue"]) == f"'{SIGNALS}'"


def test_api_role_may_only_send_to_the_two_queues() -> None:
    role = RESOURCES["WebhookSqsRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]

    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": [{"Fn::GetAtt": ["SignalsQueue", "Arn"]}, {"Fn::GetAtt": ["UrgentQueue", "Arn"]}],
        }
    ]


def test_resource_policy_denies_sources_outside_allowed_cidrs() -> None:
    statements = BODY["x-amazon-apigateway-policy"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]

    assert deny == [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "execute-api:Invoke",
            "Resource": "execute-api:/*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": {"Ref": "AllowedSourceCidrs"}}},
        }
    ]


def test_authorizer_checks_the_query_token_and_caches_for_five_minutes() -> None:
    auth = API["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    function = RESOURCES["WebhookAuthorizerFunction"]["Properties"]

    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["WebhookAuthorizerFunction", "Arn"]}
    assert authorizer["Identity"] == {"QueryStrings": ["token"], "ReauthorizeEvery": 300}
    assert (ROOT / function["CodeUri"] / "app.py").is_file()
    assert function["Handler"] == "app.lambda_handler"
    assert function["Environment"]["Variables"]["WEBHOOK_TOKEN_PARAMETER"] == {"Ref": "WebhookTokenParameterName"}


def test_no_log_or_trace_records_the_query_string() -> None:
    log_format = json.loads(API["AccessLogSetting"]["Format"])
    settings = API["MethodSettings"]

    assert "$context.path" in log_format.values()
    assert not [value for value in log_format.values() if re.search(r"querystring|params|input|requestOverride", value)]
    assert [(s["LoggingLevel"], s["DataTraceEnabled"]) for s in settings] == [("OFF", False)]
    assert API["TracingEnabled"] is False
    assert RESOURCES["WebhookAccessLogGroup"]["Properties"]["RetentionInDays"] > 0


def test_stage_is_throttled() -> None:
    [settings] = API["MethodSettings"]

    # Throttled alerts are lost (TradingView never retries a 429): the burst must take every
    # strategy of a large config firing at the same bar close, and then some.
    assert settings["ThrottlingBurstLimit"] >= 1000
    assert 0 < settings["ThrottlingRateLimit"] <= settings["ThrottlingBurstLimit"]


def test_webhook_url_output_points_at_signals() -> None:
    assert TEMPLATE["Outputs"]["WebhookUrl"]["Value"] == {
        "Fn::Sub": "https://${WebhookApi}.execute-api.${AWS::Region}.amazonaws.com/${Stage}/signals"
    }
