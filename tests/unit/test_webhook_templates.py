"""The webhook in template.yaml, checked offline: its mapping templates, responses and security settings.

The mapping templates are rendered by crypto_bot_tools.local.api_gateway, which runs airspeed
(Python Velocity) against objects that behave like API Gateway's ``$input``, ``$util`` and
``$context``, with Java's String methods emulated and the ``regex`` module standing in for
java.util.regex (it reads ``\\p{L}``, possessive quantifiers and ``\\uXXXX`` the same way).
The webhook validates nothing but the size: every other body is queued for the core
(crypto_bot.domain.signals.parse_signal), the source of truth, and these tests hold the template's
routing of stop losses to the core's own decision.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import sys
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import DEFAULT_STOP_LOSS_PATTERN, ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import SignalRejected
from crypto_bot.domain.signals import parse_signal
from crypto_bot.engine.workflow import MAX_ALERT_CHARS, Workflow, WorkflowSettings
from crypto_bot.entrypoints.settings import Settings
from crypto_bot.entrypoints.steps import metrics_of
from crypto_bot_tools.local.api_gateway import (
    DEFAULT_STATUS,
    SqsRequest,
    Util,
    WebhookDefinition,
    java_length,
    new_context,
    render,
    substitute,
)
from crypto_bot_tools.local.template import TemplateError, load_template
from tests.conftest import EVENTS, ROOT
from tests.support.environment import template_environment

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
API: dict[str, Any] = RESOURCES["WebhookApi"]["Properties"]
BODY: dict[str, Any] = API["DefinitionBody"]
POST: dict[str, Any] = BODY["paths"]["/signals"]["post"]
INTEGRATION: dict[str, Any] = POST["x-amazon-apigateway-integration"]
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
# Patterns a trader might deploy, each with the word it looks for (the pattern without \b).
PATTERNS: Final = [
    (DEFAULT_STOP_LOSS_PATTERN, "stop"),
    (r"\bsl\b", "sl"),
    ("stop-loss", "stop-loss"),
    (r"kill\b", "kill"),
    (r"\bexit 2", "exit 2"),
]
# What Python's \w is, and what the template spells out for it.
WORD: Final = regex.compile(r"[\p{L}\p{N}_]")


# ------------------------------------------------------------------------------ the template, as the emulator reads it


@functools.cache
def webhook(pattern: str = DEFAULT_STOP_LOSS_PATTERN) -> WebhookDefinition:
    """Read the API as deployed with ``StopLossPattern=pattern``."""
    return WebhookDefinition.from_template(TEMPLATE, QUEUE_NAMES, parameters={"StopLossPattern": pattern})


def request_template(content_type: str, definition: WebhookDefinition = WEBHOOK) -> str:
    """Return the request mapping template for a content type, with the queue names and parameters substituted."""
    template = definition.request_template(content_type)
    assert template is not None, f"no request template for {content_type}"
    return template


def template_regex(variable: str, definition: WebhookDefinition = WEBHOOK) -> str:
    """Return the Java regex the request template matches ``$variable`` against."""
    found = re.search(rf"\${variable}\.matches\('([^']*)'\)", request_template("application/json", definition))
    assert found, f"no ${variable}.matches(...) in the request template"
    return found.group(1)


def template_variable(name: str) -> str:
    """Render the template's #set lines up to its JSON check, and return the variable ``$name`` they build."""
    template = request_template("application/json")
    lines = template.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("#set($g = "))
    end = next(i for i, line in enumerate(lines) if line.startswith("#if($body.matches("))
    return render("\n".join([*lines[start:end], f"${name}"]), "", new_context(REQUEST_ID))


def fold(text: str) -> str:
    """Fold a comment's case with the template's own #set($folded = ...) line."""
    [line] = [line for line in request_template("application/json").split("\n") if line.startswith("#set($folded")]
    template = "\n".join(["#set($comment = $input.params('comment'))", line, "$folded"])
    return render(template, "", new_context(REQUEST_ID), {"querystring": {"comment": text}})


def template_is_stop(comment: str, definition: WebhookDefinition = WEBHOOK) -> bool:
    """Decide as the template does whether a sell's comment marks a stop loss (fold, then match)."""
    return regex.fullmatch(template_regex("folded", definition), fold(comment)) is not None


def core_is_stop(comment: str, pattern: str = DEFAULT_STOP_LOSS_PATTERN) -> bool:
    """Decide as the core does: STOP_LOSS_PATTERN, as crypto_bot.entrypoints.settings.Settings compiles it, searched."""
    settings = Settings.from_env(template_environment(TABLE_NAME="t", STOP_LOSS_PATTERN=pattern))
    return settings.stop_loss_regex.search(comment) is not None


def integration_request(
    body: str, content_type: str = "application/json", definition: WebhookDefinition = WEBHOOK
) -> SqsRequest:
    """Render the request template and resolve the {queue} path parameter as API Gateway would."""
    request = definition.integration_request(body, content_type, new_context(REQUEST_ID))
    assert request is not None, f"no request template for {content_type}"
    return request


def integration_response(request: SqsRequest, sqs_status: int, sqs_body: str = "{}") -> tuple[int, Any]:
    """Pick the integration response by SQS's status code, render it, apply a status override."""
    answer = WEBHOOK.integration_response(request, sqs_status, sqs_body)
    assert answer is not None
    return answer[0], json.loads(answer[1])


def core_accepts(body: str) -> bool:
    """Say whether crypto_bot.domain.signals.parse_signal takes the body (the source of truth)."""
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


def send_message(body: str) -> dict[str, str]:
    """Return the SendMessage form the template must send for ``body``."""
    return {
        "Action": "SendMessage",
        "Version": "2012-11-05",
        "MessageBody": body,
        "MessageAttribute.1.Name": "request_id",
        "MessageAttribute.1.Value.DataType": "String",
        "MessageAttribute.1.Value.StringValue": REQUEST_ID,
    }


# ------------------------------------------------------------------------------ routing


def test_both_content_types_share_one_request_template() -> None:
    assert set(INTEGRATION["requestTemplates"]) == {"application/json", "text/plain"}
    assert INTEGRATION["requestTemplates"]["application/json"] == INTEGRATION["requestTemplates"]["text/plain"]
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
    "comment", ["nonstop", "Nonstop? no: NONSTOP", "unstoppable_x", "_stop", "1stop", "take profit", "\U0001d400stop"]
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


def test_stop_loss_with_nested_fields_is_still_urgent_down_to_objects_of_scalars() -> None:
    body = alert(order_action="sell", order_comment="Stop loss", meta={"bar": 5, "tf": "8h"}, tags=["a", 1, None])
    deeper = alert(order_action="sell", order_comment="Stop loss", meta={"levels": [1, 2]})

    assert integration_request(body).queue == URGENT
    assert parse_signal(json.loads(body), CONFIG).is_stop_loss
    # Deeper than that, the body is not parsed at the webhook: queued for the core, which still takes it as a
    # stop loss, at the next scheduled cycle.
    assert integration_request(deeper).queue == SIGNALS
    assert parse_signal(json.loads(deeper), CONFIG).is_stop_loss


def test_message_body_is_the_urlencoded_original_body() -> None:
    body = (
        '{"time": "2024-08-10T02:30:02Z", "ticker": "BTCUSD", "order_action": "sell", "order_price": "1+1=2 & 3%",'
        '\n "order_comment": "Stop loss \U0001f680 ~ \'q\' \\"dq\\" #set($x) ${y}"}'
    )

    request = integration_request(body)

    assert request.form == send_message(body)
    # Exactly one line: stray template whitespace would corrupt the first form field.
    assert request.raw.startswith("Action=SendMessage&")
    assert "\n" not in request.raw
    assert "MessageBody=" + Util().urlEncode(body) + "&" in request.raw
    assert request.queue == URGENT


def test_json_sent_as_text_plain_is_queued_like_application_json() -> None:
    body = event_body("stop_loss.json")

    as_text = integration_request(body, "text/plain")

    assert as_text.raw == integration_request(body, "application/json").raw
    assert as_text.queue == URGENT


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (event_body("malformed.txt"), "body: is not JSON"),
        (alert(order_action="hold"), "order_action: must be buy or sell (got 'hold')"),
        (
            alert(order_price="{{strategy.order.price}}"),
            "order_price: is not a number (got '{{strategy.order.price}}')",
        ),
        ('[{"ticker": "BTCUSD"}]', "body: must be a JSON object"),
        ("{'time': 'x'}", "body: is not JSON"),
        ('{"a": [[1]], "order_action": "sell", "order_comment": "stop"}', "time: is required"),
    ],
    ids=["plain-text", "hold", "placeholder", "array", "single-quotes", "nested-deeper"],
)
def test_a_body_that_is_no_alert_is_queued_whole_for_the_core_to_reject(body: str, reason: str) -> None:
    request = integration_request(body, "text/plain")

    assert (request.queue, request.form) == (SIGNALS, send_message(body))
    assert request.queued
    # The core names the field and the value; crypto-bot signals shows that reason.
    workflow = Workflow(
        MemoryStore(),
        PaperExchange(balances={"USD": Decimal(1000)}),
        CONFIG,
        WorkflowSettings(mode=ExecutionMode.BOOST, increment=Decimal("0.001")),
        clock=lambda: datetime(2024, 8, 10, 3, tzinfo=UTC),
    )
    record = workflow.receive(body, message_id="m-1").record
    assert record.status.value == "rejected"
    assert reason in record.reason


def test_an_empty_body_reaches_the_queue_as_an_empty_object() -> None:
    # API Gateway renders a missing body as {} (crypto_bot_tools.local.api_gateway.Input cites the recording).
    assert integration_request("").form == send_message("{}")


def test_characters_sqs_refuses_are_sent_as_the_replacement_character() -> None:
    body = 'a\x00b\x08\x0b\x0c\x1f\ufffe\uffff\t\n\r "\u00e9\U0001f680"'

    assert (
        integration_request(body).form["MessageBody"]
        == 'a\ufffdb\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\t\n\r "\u00e9\U0001f680"'
    )


# ------------------------------------------------------------------------------ the size limit


def refusal_form(start: str, characters: int) -> dict[str, str]:
    entry = "SendMessageBatchRequestEntry.1"
    return {
        "Action": "SendMessageBatch",
        "Version": "2012-11-05",
        f"{entry}.Id": "refused",
        f"{entry}.MessageBody": start,
        f"{entry}.MessageAttribute.1.Name": "request_id",
        f"{entry}.MessageAttribute.1.Value.DataType": "String",
        f"{entry}.MessageAttribute.1.Value.StringValue": REQUEST_ID,
        f"{entry}.MessageAttribute.2.Name": "refused",
        f"{entry}.MessageAttribute.2.Value.DataType": "String",
        f"{entry}.MessageAttribute.2.Value.StringValue": "too_large",
        f"{entry}.MessageAttribute.3.Name": "characters",
        f"{entry}.MessageAttribute.3.Value.DataType": "Number",
        f"{entry}.MessageAttribute.3.Value.StringValue": str(characters),
    }


def test_the_webhooks_size_limit_is_the_cores() -> None:
    template = request_template("application/json")

    assert f"#if($body.length() > {MAX_ALERT_CHARS})" in template
    assert str(MAX_ALERT_CHARS) in INTEGRATION["responses"]["2\\d{2}"]["responseTemplates"]["application/json"]


def test_a_body_at_the_limit_is_queued_and_one_over_it_is_sent_as_a_refusal_record() -> None:
    at_limit = alert(order_comment="c" * (MAX_ALERT_CHARS - len(alert(order_comment=""))))
    over = at_limit[:-2] + 'c"}'

    assert (len(at_limit), len(over)) == (MAX_ALERT_CHARS, MAX_ALERT_CHARS + 1)
    assert integration_request(at_limit).form == send_message(at_limit)
    request = integration_request(over)
    assert (request.queue, request.form) == (SIGNALS, refusal_form(over[:200], MAX_ALERT_CHARS + 1))


def test_the_limit_counts_utf16_units_as_java_does_and_the_record_never_splits_a_character() -> None:
    rockets = "\U0001f680" * (MAX_ALERT_CHARS // 2)
    over = "a" + rockets  # 65537 UTF-16 units, 32769 characters

    assert java_length(rockets) == MAX_ALERT_CHARS
    assert integration_request(rockets).form["Action"] == "SendMessage"
    # The first 200 units are "a", 99 rockets and half of the 100th, which SQS would refuse: it goes as U+FFFD.
    assert integration_request(over).form == refusal_form("a" + "\U0001f680" * 99 + "\ufffd", MAX_ALERT_CHARS + 1)


# ------------------------------------------------------------------------------ what is parsed


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _shallow(value: Any) -> bool:
    """Say whether a value is an object of scalars, arrays of scalars and objects of scalars (what is parsed)."""

    def scalars(items: Any) -> bool:
        return all(not isinstance(item, (list, dict)) for item in items)

    return isinstance(value, dict) and all(
        scalars(v.values()) if isinstance(v, dict) else scalars(v) if isinstance(v, list) else True
        for v in value.values()
    )


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(value=JSON_VALUES | st.dictionaries(st.text(), SCALARS), mangle=st.sampled_from(["", "cut", "quote", "nan"]))
def test_only_a_body_parse_json_reads_is_parsed(value: Any, mangle: str) -> None:
    guard = regex.compile(template_variable("alert_json"))
    text = json.dumps(value, ensure_ascii=False)
    text = {"": text, "cut": text[:-1], "quote": text.replace('"', "'"), "nan": text.replace("null", "NaN")}[mangle]

    if guard.fullmatch(text):
        # A JSON object $util.parseJson reads without failing (json.loads is as strict as Jackson here).
        assert isinstance(json.loads(text), dict)
    if not mangle:
        assert (guard.fullmatch(text) is not None) == _shallow(value)


def test_json_check_takes_what_tradingview_sends() -> None:
    guard = regex.compile(template_variable("alert_json"))

    for entry in CORPUS:
        body = corpus_body(entry)
        try:
            parsed = json.loads(body)
        except ValueError:
            assert guard.fullmatch(body) is None, entry["name"]
            continue
        assert (guard.fullmatch(body) is not None) == _shallow(parsed), entry["name"]


# ------------------------------------------------------------------------------ the stop-loss pattern vs the core


TRICKY_COMMENTS = [
    "Stop loss", "stop", "STOP", "ſtop", "x.stop", "(stop)", "\nstop", "éstop", "e\u0301stop", "²stop", "_stop",
    "9stop", "nonstop", "Nonstop stop", "非stop", "Ωstop", "\U0001d400stop", "\U0001f680stop", "s top", "stpo", "",
    "SL", "sl hit", "İSL", "ısl", "x.sl.y", "slx", "\U0001d400sl", "sl\U0001d400", "KILL", "skill", "killer",
    "kill-switch", "STOP-LOSS", "stop_loss", "stop loss", "EXIT 2", "exit  2", "exit 21", "ExIt 2!", "İxit 2",
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "word"), PATTERNS, ids=[p for p, _ in PATTERNS])
@pytest.mark.parametrize("comment", TRICKY_COMMENTS)
def test_template_stop_regex_agrees_with_the_core(pattern: str, word: str, comment: str) -> None:
    assert template_is_stop(comment, webhook(pattern)) == core_is_stop(comment, pattern)


@functools.cache
def folded_characters() -> dict[str, str]:
    """Map every assigned character to what the template's fold makes of it (one render for all of them)."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    folded = fold("".join(chars))
    assert java_length(folded) == java_length("".join(chars)), "the fold changed a character's length"
    return dict(zip(chars, folded, strict=True))


def test_comment_fold_is_pythons_ignorecase_for_every_character() -> None:
    # What StopLossPattern may contain (its AllowedPattern): Python's IGNORECASE must match exactly the characters
    # the template folds to it, and the fold must keep every character a word character or not, as Python sees it.
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789_ -"
    wrong = []
    for char, folded in folded_characters().items():
        for letter in allowed:
            if (re.fullmatch(re.escape(letter), char, re.IGNORECASE) is not None) != (folded == letter):
                wrong.append((hex(ord(char)), letter))
        if (re.fullmatch(r"\w", char) is not None) != (WORD.fullmatch(folded) is not None):
            wrong.append((hex(ord(char)), "\\w"))
    assert wrong == []


@pytest.mark.parametrize(("pattern", "word"), PATTERNS, ids=[p for p, _ in PATTERNS])
def test_template_word_boundary_agrees_with_python_for_every_character(pattern: str, word: str) -> None:
    # Every character Python's Unicode database assigns, before the word, after it and in place of its first letter.
    java = regex.compile(template_regex("folded", webhook(pattern)))
    python = re.compile(pattern, re.IGNORECASE)
    table = folded_characters()
    folded_word = fold(word)
    disagreements = []
    for char, folded in table.items():
        samples = [(char + word, folded + folded_word), (word + char, folded_word + folded)]
        if pattern == DEFAULT_STOP_LOSS_PATTERN:
            samples.append((word[0] + char + word[1:], folded_word[0] + folded + folded_word[1:]))
        for sample, as_folded in samples:
            if (java.fullmatch(as_folded) is not None) != (python.search(sample) is not None):
                disagreements.append(sample)
    assert disagreements == []


def test_action_regex_blanks_are_exactly_what_python_strip_removes() -> None:
    blanks = regex.compile(template_regex("action").split("]")[0] + "]")
    matched = {chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF and blanks.fullmatch(chr(c))}

    assert matched == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def test_stop_loss_pattern_is_one_parameter_for_the_webhook_and_the_core() -> None:
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert PARAMETERS["StopLossPattern"]["Default"] == DEFAULT_STOP_LOSS_PATTERN
    assert environment["STOP_LOSS_PATTERN"] == {"Ref": "StopLossPattern"}
    assert template_regex("folded", webhook(r"\bsl\b")) == r"(?s)(?:.*[^\p{L}\p{N}_])?sl(?![\p{L}\p{N}_]).*"
    assert template_regex("folded", webhook("kill")) == "(?s).*kill.*"
    assert template_regex("folded") == r"(?s)(?:.*[^\p{L}\p{N}_])?stop.*"


@pytest.mark.parametrize("pattern", [r"\bstop", r"\bsl\b", "stop loss", "stop-loss", "sl_2", r"kill\b", "x"])
def test_stop_loss_pattern_admits_what_java_and_python_read_alike(pattern: str) -> None:
    assert webhook(pattern).parameters["StopLossPattern"] == pattern


@pytest.mark.parametrize(
    "pattern",
    ["Stop", r"\bstop.*", "(?i)stop", r"stop\b loss", " stop", "stop ", "-stop", "st[o0]p", r"\Bstop", "", r"\b"],
)
def test_stop_loss_pattern_refuses_at_deploy_what_they_would_read_apart(pattern: str) -> None:
    with pytest.raises(TemplateError, match="StopLossPattern"):
        WebhookDefinition.from_template(TEMPLATE, QUEUE_NAMES, parameters={"StopLossPattern": pattern})


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


def test_corpus_is_large_and_covers_both_verdicts() -> None:
    assert len(CORPUS) >= 25
    assert {entry["core"] for entry in CORPUS} == {"accept", "reject"}
    assert len({entry["name"] for entry in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["name"] for entry in CORPUS])
def test_corpus_verdicts_hold(entry: dict[str, Any]) -> None:
    assert ("accept" if core_accepts(corpus_body(entry)) else "reject") == entry["core"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_every_corpus_body_is_queued_whole_and_stop_losses_go_urgent(content_type: str) -> None:
    for entry in CORPUS:
        body = corpus_body(entry)
        request = integration_request(body, content_type)
        assert request.queued, entry["name"]
        if java_length(body) > MAX_ALERT_CHARS:
            # Refused and recorded (413); the core, which counts fewer characters, refuses it as well.
            assert len(body) > MAX_ALERT_CHARS, entry["name"]
            assert request.form == refusal_form(body[:200], java_length(body)), entry["name"]
            continue
        assert request.form == send_message(body or "{}"), entry["name"]
        if core_accepts(body):
            # Nested deeper than the webhook parses, a stop loss waits for the scheduled cycle (see the template).
            is_stop = parse_signal(json.loads(body), CONFIG).is_stop_loss and _shallow(json.loads(body))
            assert (request.queue == URGENT) == is_stop, entry["name"]


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


def batch_response(successful: list[dict[str, Any]] | None, failed: list[dict[str, Any]] | None) -> str:
    result = {"Successful": successful, "Failed": failed}
    return json.dumps(
        {"SendMessageBatchResponse": {"ResponseMetadata": {"RequestId": "r"}, "SendMessageBatchResult": result}}
    )


def test_a_recorded_refusal_answers_413_with_the_records_id() -> None:
    request = integration_request("x" * (MAX_ALERT_CHARS + 1))
    stored = [{"Id": "refused", "MessageId": "9d1e-77", "MD5OfMessageBody": "m"}]

    status, answer = integration_response(request, 200, batch_response(stored, None))

    assert (status, answer["accepted"], answer["id"]) == (413, False, "9d1e-77")
    assert answer["reason"] == (
        f"the alert has more than {MAX_ALERT_CHARS} characters, the most the webhook takes; "
        "it is recorded as rejected and will not trade"
    )


@pytest.mark.parametrize("successful", [[], None], ids=["empty", "null"])
def test_a_refusal_sqs_did_not_store_is_a_502_so_tradingview_resends_it(successful: list[Any] | None) -> None:
    request = integration_request("x" * (MAX_ALERT_CHARS + 1))
    failed = [{"Id": "refused", "Code": "InternalError", "SenderFault": False, "Message": "x"}]

    status, answer = integration_response(request, 200, batch_response(successful, failed))

    assert (status, answer["accepted"]) == (502, False)
    assert "TradingView resends it" in answer["reason"]


@pytest.mark.parametrize("sqs_status", [400, 403, 404, 413, 500, 503])
def test_sqs_failure_is_a_502_so_tradingview_resends(sqs_status: int) -> None:
    request = integration_request(event_body("entry.json"))

    status, answer = integration_response(request, sqs_status, '{"Error": {"Code": "X"}}')

    assert status == 502
    assert answer == {
        "accepted": False,
        "reason": "the queue refused the alert; it was not stored, and TradingView resends it",
    }


def test_no_two_integration_responses_of_a_method_share_a_status_code() -> None:
    # API Gateway keeps integration responses by status code (PutIntegrationResponse .../responses/{status_code}).
    for path, methods in BODY["paths"].items():
        for method, operation in methods.items():
            responses = operation["x-amazon-apigateway-integration"]["responses"]
            codes = [str(response["statusCode"]) for response in responses.values()]
            assert len(codes) == len(set(codes)), f"{method.upper()} {path}: {codes}"


def test_the_emulator_refuses_integration_responses_that_share_a_status_code() -> None:
    document = copy.deepcopy(TEMPLATE)
    responses = document["Resources"]["WebhookApi"]["Properties"]["DefinitionBody"]["paths"]["/signals"]["post"][
        "x-amazon-apigateway-integration"
    ]["responses"]
    responses["4\\d{2}"] = {"statusCode": "502"}

    with pytest.raises(TemplateError, match="both answer 502"):
        WebhookDefinition.from_template(document, QUEUE_NAMES).integration_responses()


@pytest.mark.parametrize(
    ("response", "status"),
    [
        ("UNAUTHORIZED", 401),
        ("ACCESS_DENIED", 403),
        ("UNSUPPORTED_MEDIA_TYPE", 415),
        ("REQUEST_TOO_LARGE", 413),
        ("THROTTLED", 429),
        ("INTEGRATION_FAILURE", 502),
        ("INTEGRATION_TIMEOUT", 503),
        ("DEFAULT_4XX", None),
        ("DEFAULT_5XX", None),
    ],
)
def test_every_refusal_is_json_with_a_reason(response: str, status: int | None) -> None:
    context = {
        "error": {"messageString": '"Forbidden"', "message": "Forbidden"},
        "authorizer": {"reason": "invalid token"},
    }
    gateway_response = GATEWAY_RESPONSES[response]

    answer = json.loads(render(gateway_response["responseTemplates"]["application/json"], "", context))

    assert gateway_response.get("statusCode") == status
    assert answer["accepted"] is False
    assert answer["reason"]


def test_no_gateway_response_answers_504_which_tradingview_does_not_resend() -> None:
    # TradingView resends a 500-599 except 504 (support article 43000735201); the types API Gateway answers 504 by
    # default must answer a status it resends.
    defaulting_to_504 = sorted(kind for kind, status in DEFAULT_STATUS.items() if status == 504)

    assert defaulting_to_504 == ["INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT"]
    for kind in defaulting_to_504:
        assert 500 <= GATEWAY_RESPONSES[kind]["statusCode"] <= 599
        assert GATEWAY_RESPONSES[kind]["statusCode"] != 504
    assert "statusCode" not in GATEWAY_RESPONSES["DEFAULT_5XX"]


def test_the_integration_gives_up_before_tradingview_does() -> None:
    # TradingView cancels a request after 3 s (support article 43000529348) and does not resend it.
    assert INTEGRATION["timeoutInMillis"] <= 2000
    assert GATEWAY_RESPONSES["INTEGRATION_TIMEOUT"]["statusCode"] == 503


def test_other_content_types_are_refused_not_passed_through() -> None:
    assert INTEGRATION["passthroughBehavior"] == "never"
    assert GATEWAY_RESPONSES["UNSUPPORTED_MEDIA_TYPE"]["statusCode"] == 415


def test_the_webhook_validates_no_body() -> None:
    assert "x-amazon-apigateway-request-validators" not in BODY
    assert "x-amazon-apigateway-request-validator" not in POST
    assert "BAD_REQUEST_BODY" not in GATEWAY_RESPONSES


# ------------------------------------------------------------------------------ the alarm


def test_rejected_alerts_alarm_watches_the_metric_collect_emits() -> None:
    alarm = RESOURCES["RejectedAlertAlarm"]["Properties"]
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    collect = {name for name, _ in metrics_of("collect", {"received": 1, "rejected": 1, "duplicates": 0})}

    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["MetricName"] in collect
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == ("Sum", "GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "NotificationsTopic"}]


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
    assert substitute(INTEGRATION["requestParameters"]["integration.request.path.queue"], QUEUE_NAMES) == f"'{SIGNALS}'"


def test_api_role_may_only_send_to_the_two_queues() -> None:
    role = RESOURCES["WebhookSqsRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]

    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    # sqs:SendMessage grants SendMessageBatch too (SQS API reference, SendMessageBatch: "the same permissions").
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
