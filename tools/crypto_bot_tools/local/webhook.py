"""The webhook endpoint: API Gateway's emulator in front of the stack's authorizer function and queues.

:class:`Webhook` reads the API from template.yaml, invokes the authorizer function (its own handler, in
process) as API Gateway does, and makes the SQS call the integration makes, answering as SQS answers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools.local.settings import StackPlan

__all__ = ["API", "Webhook"]

API: Final = "WebhookApi"
# Characters SQS refuses in a message body (SendMessage, API reference): anything outside #x9 | #xA | #xD |
# #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
_SQS_INVALID_CHARACTER: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BATCH_ENTRY: Final = "SendMessageBatchRequestEntry"


@dataclass(frozen=True)
class _Entry:
    """One message of an SQS send: its batch entry id ("" for SendMessage), body and attributes."""

    id: str
    body: str
    attributes: dict[str, dict[str, str]]


class _SqsError(Exception):
    """An error SQS answers with instead of a result."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Webhook:
    """The webhook API of the template, wired to the local stack's authorizer function and queues."""

    def __init__(
        self,
        plan: StackPlan,
        stack: Any,
        queues: Mapping[str, str],
        *,
        on_queued: Callable[[str], None],
    ) -> None:
        """Build the emulator; ``queues`` maps logical ids to queue names; ``on_queued`` hears each queue sent to."""
        from crypto_bot_tools.local.api_gateway import ApiGatewayEmulator, WebhookDefinition

        self.stack = stack
        self.queues = dict(queues)
        self.on_queued = on_queued
        variables = {f"{logical_id}.QueueName": name for logical_id, name in self.queues.items()}
        definition = WebhookDefinition.from_template(plan.template, variables, API, parameters=plan.parameters)
        allow = plan.settings.allow
        self._authorizer_function = _authorizer_logical_id(definition.authorizer)
        self.emulator = ApiGatewayEmulator(
            definition,
            authorizer=self._authorize,
            sqs_send=self._sqs_send,
            policy_parameters={"AllowedSourceCidrs": list(allow)} if allow else None,
            region=stack.region,
            stage=plan.parameters["Stage"],
        )

    def _authorize(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """Invoke the authorizer function as API Gateway does."""
        from crypto_bot.entrypoints.webhook_auth import Unauthorized
        from crypto_bot_tools.local.api_gateway import AuthorizerFailed

        if self._authorizer_function is None:
            raise AuthorizerFailed("no authorizer function")
        answer = self.stack.client("lambda").invoke(
            FunctionName=self.stack.resource(self._authorizer_function), Payload=json.dumps(event)
        )
        payload: dict[str, Any] = json.loads(answer["Payload"].read() or b"null") or {}
        if "FunctionError" in answer:
            # API Gateway answers 401 when the function fails with exactly "Unauthorized".
            if payload.get("errorMessage") == "Unauthorized":
                raise Unauthorized()
            raise AuthorizerFailed(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    def _sqs_send(self, queue: str, form: Mapping[str, str]) -> tuple[int, str]:
        """Do the SQS call API Gateway's integration does (SendMessage or SendMessageBatch), answering as SQS does.

        The answer is SQS's status and the JSON form of its query API response, ``{"<Action>Response":
        {"<Action>Result": ...}}`` with the result's members as the SQS API reference names them.
        """
        request_id = str(uuid.uuid4())
        try:
            if queue not in self.emulator.definition.writable_queues:
                raise _SqsError(403, "AccessDenied", f"the API's role may not send to {queue}")
            logical_id = next((k for k, v in self.queues.items() if v == queue), None)
            if logical_id is None:
                raise _SqsError(400, "AWS.SimpleQueueService.NonExistentQueue", f"no queue {queue}")
            action, entries = _read_form(form)
            result = _send(self.stack.client("sqs"), self.stack.resource(logical_id), action, entries)
        except _SqsError as e:
            body = {"Error": {"Code": e.code, "Message": e.message, "Type": "Sender"}, "RequestId": request_id}
            return e.status, json.dumps(body)
        self.on_queued(logical_id)
        response = {"ResponseMetadata": {"RequestId": request_id}, f"{action}Result": result}
        return 200, json.dumps({f"{action}Response": response})


def _authorizer_logical_id(spec: Mapping[str, Any] | None) -> str | None:
    if spec is None:
        return None
    arn = spec.get("FunctionArn")
    if not (isinstance(arn, dict) and "Fn::GetAtt" in arn):
        raise ConfigError(f"the authorizer's FunctionArn {arn!r} is not `!GetAtt Function.Arn`")
    return str(arn["Fn::GetAtt"][0])


def _read_form(form: Mapping[str, str]) -> tuple[str, list[_Entry]]:
    """Read the action and the messages of an SQS query form."""
    action = form.get("Action")
    if action == "SendMessage":
        return action, [_Entry("", form.get("MessageBody", ""), _attributes(form, ""))]
    if action == "SendMessageBatch":
        numbers = sorted({int(key.split(".")[1]) for key in form if key.startswith(f"{_BATCH_ENTRY}.")})
        entries = [
            _Entry(
                form.get(f"{_BATCH_ENTRY}.{n}.Id", ""),
                form.get(f"{_BATCH_ENTRY}.{n}.MessageBody", ""),
                _attributes(form, f"{_BATCH_ENTRY}.{n}."),
            )
            for n in numbers
        ]
        if not entries:
            raise _SqsError(400, "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one entry")
        return action, entries
    raise _SqsError(400, "InvalidAction", f"the action {action!r} is not valid for this endpoint")


def _attributes(form: Mapping[str, str], prefix: str) -> dict[str, dict[str, str]]:
    """Read the ``{prefix}MessageAttribute.N`` parameters of an SQS query form."""
    attributes: dict[str, dict[str, str]] = {}
    pattern = re.compile(re.escape(prefix) + r"MessageAttribute\.\d+\.Name")
    for key, name in form.items():
        if pattern.fullmatch(key):
            at = key.removesuffix(".Name")
            attributes[name] = {
                "DataType": form.get(f"{at}.Value.DataType", "String"),
                "StringValue": form.get(f"{at}.Value.StringValue", ""),
            }
    return attributes


def _send(sqs: Any, url: str, action: str, entries: list[_Entry]) -> dict[str, Any]:
    """Send the messages moto accepts and refuse, as SQS does, those it would take but SQS refuses."""
    from botocore.exceptions import ClientError

    # What moto does not check, as the SQS API reference states it for MessageBody: at least one character,
    # and only #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
    refused = {}
    for entry in entries:
        if not entry.body:
            refused[entry.id] = ("MissingParameter", "The request must contain the parameter MessageBody.")
        elif _SQS_INVALID_CHARACTER.search(entry.body):
            refused[entry.id] = ("InvalidMessageContents", "Invalid characters found.")
    if action == "SendMessage" and refused:
        raise _SqsError(400, *refused[""])
    try:
        if action == "SendMessage":
            [entry] = entries
            sent = sqs.send_message(
                QueueUrl=url,
                MessageBody=entry.body,
                **({"MessageAttributes": entry.attributes} if entry.attributes else {}),
            )
            return {
                "MD5OfMessageBody": sent.get("MD5OfMessageBody"),
                "MD5OfMessageAttributes": sent.get("MD5OfMessageAttributes"),
                "MessageId": sent["MessageId"],
            }
        accepted = [e for e in entries if e.id not in refused]
        batch = [
            {"Id": e.id, "MessageBody": e.body, **({"MessageAttributes": e.attributes} if e.attributes else {})}
            for e in accepted
        ]
        sent = sqs.send_message_batch(QueueUrl=url, Entries=batch) if accepted else {}
    except ClientError as e:
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        details = e.response.get("Error", {})
        raise _SqsError(status, str(details.get("Code", "Error")), str(details.get("Message", e))) from e
    failed = [
        {"Id": key, "Code": code, "Message": message, "SenderFault": True} for key, (code, message) in refused.items()
    ]
    return {"Successful": sent.get("Successful", []), "Failed": failed + sent.get("Failed", [])}
