"""Emulate the webhook's API Gateway REST API from its definition in template.yaml.

:class:`WebhookDefinition` reads the ``AWS::Serverless::Api`` resource (its OpenAPI
``DefinitionBody``: resource policy, request validators, models, the SQS integration with
its mapping templates and integration responses, and the gateway responses).
:class:`ApiGatewayEmulator` answers one HTTP request the way the deployed stage does:

1. the resource policy (the source-IP allowlist), only when it is switched on;
2. the REQUEST authorizer: a request without the identity source (``?token=``) is a 401
   without calling it; otherwise its answer (the authorizer's own code) is an Allow or Deny
   policy, cached for ``ReauthorizeEvery`` seconds per identity;
3. the request validator: the operation's JSON-schema model for the content type, draft 4;
4. the integration request: the mapping template for the content type, rendered as
   Velocity, which picks the SQS queue through ``$context.requestOverride.path``; a
   content type without a template is a 415 (``passthroughBehavior: never``);
5. the SQS ``SendMessage`` call, injected as a function so that pure rendering needs no AWS;
6. the integration response selected by SQS's status code, or a gateway response.

Velocity is airspeed, made to behave like API Gateway's Velocity 1.7: Java's String
methods (``matches`` is a whole-string match, with the ``regex`` module standing in for
java.util.regex) and single-quoted literals taken verbatim. What is not emulated:
throttling, the integration timeout, stage variables, API keys and usage plans, CORS.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from crypto_bot.local.aws import TemplateError

__all__ = [
    "ApiGatewayEmulator",
    "AuthorizerFailed",
    "Authorizer",
    "Input",
    "Response",
    "SqsRequest",
    "SqsSend",
    "Util",
    "WebhookDefinition",
    "java_trim",
    "new_context",
    "render",
    "substitute",
    "token_authorizer",
]

# The answer of the SQS call: HTTP status and the JSON body API Gateway's templates read.
SqsSend = Callable[[str, Mapping[str, str]], tuple[int, str]]
# A REQUEST authorizer: the event in, the policy answer out; raises webhook_auth.Unauthorized for a 401.
Authorizer = Callable[[Mapping[str, Any]], Mapping[str, Any]]

_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
# Messages API Gateway puts in $context.error.message for each gateway response type.
_MESSAGES: Final = {
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "UNAUTHORIZED": "Unauthorized",
    "ACCESS_DENIED": "User is not authorized to access this resource with an explicit deny",
    "BAD_REQUEST_BODY": "Invalid request body",
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported Media Type",
    "REQUEST_TOO_LARGE": "Request Entity Too Large",
    "AUTHORIZER_FAILURE": None,
    "API_CONFIGURATION_ERROR": "Internal server error",
}
# API Gateway's payload limit (10 MB, in bytes): a larger request is a 413 before the authorizer or the validator runs.
PAYLOAD_LIMIT: Final = 10 * 1024 * 1024
_DEFAULT_STATUS: Final = {
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "BAD_REQUEST_BODY": 400,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "REQUEST_TOO_LARGE": 413,
    "AUTHORIZER_FAILURE": 500,
    "API_CONFIGURATION_ERROR": 500,
}


class AuthorizerFailed(Exception):
    """The authorizer could not answer (it crashed): API Gateway answers 500."""


def substitute(value: Any, variables: Mapping[str, str]) -> str:
    """Resolve a string or the string form of ``Fn::Sub`` as CloudFormation would, from ``variables`` only."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str)):
        raise TemplateError(f"expected a string or the string form of Fn::Sub, got {value!r}")

    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):  # `${!Literal}` is the escape for a literal `${Literal}`
            return "${" + name[1:] + "}"
        if name not in variables:
            raise TemplateError(f"Fn::Sub variable ${{{name}}} has no value here (known: {sorted(variables)})")
        return variables[name]

    return _SUB_VARIABLE.sub(variable, value["Fn::Sub"])


# ------------------------------------------------------------------------------ Velocity, as API Gateway runs it


def java_trim(text: str) -> str:
    """Strip what Java's String.trim strips: characters up to U+0020, not Python's Unicode whitespace."""
    return text.strip("".join(chr(c) for c in range(0x21)))


def _java_matches(text: str, pattern: str) -> bool:
    import regex

    return regex.fullmatch(pattern, text) is not None


# Java String methods the templates call; airspeed looks str methods up in this table.
JAVA_STRING: Final[dict[str, Callable[..., Any]]] = {
    "matches": _java_matches,
    "trim": java_trim,
    "startsWith": lambda text, prefix: text.startswith(prefix),
    "endsWith": lambda text, suffix: text.endswith(suffix),
    "length": len,
}
_velocity_lock = threading.Lock()


@contextmanager
def _velocity_like_api_gateway() -> Iterator[Any]:
    """Patch airspeed into API Gateway's Velocity for the block, one render at a time (the patches are global)."""
    import airspeed

    with _velocity_lock:
        methods = airspeed.__additional_methods__
        saved = (methods.get(str), airspeed.StringLiteral.STRING, airspeed.StringLiteral.ESCAPED_CHAR)
        # airspeed's own `matches` is re.match, a prefix match; Java's matches the whole string.
        methods[str] = {**(saved[0] or {}), **JAVA_STRING}
        # Velocity 1.7 takes a single-quoted literal verbatim, backslashes included (its grammar: any
        # character but the quote); airspeed would unescape a few and refuse the rest.
        airspeed.StringLiteral.STRING = re.compile(r"'([^']*)'", re.S)
        airspeed.StringLiteral.ESCAPED_CHAR = re.compile(r"(?!)")
        try:
            yield airspeed
        finally:
            if saved[0] is None:
                methods.pop(str, None)
            else:
                methods[str] = saved[0]
            airspeed.StringLiteral.STRING, airspeed.StringLiteral.ESCAPED_CHAR = saved[1], saved[2]


class Input:
    """``$input``: the raw body, the dotted JSONPath reads API Gateway offers on it, and the request parameters."""

    def __init__(self, body: str, params: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.body = body
        self._params = params or {"path": {}, "querystring": {}, "header": {}}

    def path(self, expression: str) -> Any:
        """Return the value at a dotted JSONPath (``$.a.b``) of the body parsed as JSON, or None when absent."""
        value: Any = json.loads(self.body)
        for part in expression.removeprefix("$").split("."):
            if not part:
                continue
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def json(self, expression: str) -> str:
        """Return the value at a dotted JSONPath as JSON text."""
        return json.dumps(self.path(expression))

    def params(self, name: str | None = None) -> Any:
        """Return every request parameter, or one looked up in path, query string, then headers."""
        if name is None:
            return self._params
        for where in ("path", "querystring", "header"):
            if name in self._params.get(where, {}):
                return self._params[where][name]
        return ""


class Util:
    """``$util``."""

    def urlEncode(self, text: str) -> str:  # noqa: N802 (API Gateway's name)
        """Encode as java.net.URLEncoder does with UTF-8: letters, digits and .-*_ stay, a space becomes +."""
        return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")

    def urlDecode(self, text: str) -> str:  # noqa: N802
        """Decode application/x-www-form-urlencoded text."""
        return urllib.parse.unquote_plus(text)

    def escapeJavaScript(self, text: str) -> str:  # noqa: N802
        """Escape for a JavaScript (JSON) string literal, single quotes too."""
        return json.dumps(text)[1:-1].replace("'", "\\'")

    def parseJson(self, text: str) -> Any:  # noqa: N802
        """Parse JSON; raises on a body that is not JSON, as API Gateway's does (it then answers 500)."""
        return json.loads(text)


class _Blank(dict[str, Any]):
    """A ``$context`` group: API Gateway renders a variable it has no value for as empty, not as its name."""

    def __missing__(self, key: str) -> str:
        return ""


def new_context(request_id: str, **values: Any) -> dict[str, Any]:
    """Return a fresh ``$context`` with empty override maps, as each request gets, plus ``values``."""
    return {
        "requestId": request_id,
        "requestOverride": {"header": {}, "path": {}, "querystring": {}},
        "responseOverride": {"header": {}},
        **values,
    }


def render(
    template: str, body: str, context: dict[str, Any], params: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """Render a mapping template with ``$input``, ``$util`` and ``$context`` (which the template may change)."""
    with _velocity_like_api_gateway() as airspeed:
        output: str = airspeed.Template(template).merge(
            {"input": Input(body, params), "util": Util(), "context": context}
        )
    return output


# ------------------------------------------------------------------------------ the API's definition


@dataclass
class SqsRequest:
    """What API Gateway sends to SQS for one request: the rendered form and the queue it picked."""

    raw: str
    queue: str
    context: dict[str, Any] = field(repr=False)
    writable: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def form(self) -> dict[str, str]:
        """Parse the rendered form; a parameter given twice is an error (SQS would take either)."""
        pairs = urllib.parse.parse_qsl(self.raw, keep_blank_values=True, strict_parsing=True)
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError(f"a form parameter appears twice in {self.raw[:200]!r}")
        return dict(pairs)

    @property
    def queued(self) -> bool:
        """Say whether the queue is one the API's role may send to."""
        return self.queue in self.writable


@dataclass(frozen=True)
class Response:
    """One HTTP answer of the emulated API."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    # Why, for the local log line: the gateway response type, or the queue the alert went to.
    outcome: str = ""
    message_id: str | None = None


def _content_type(headers: Mapping[str, str]) -> str:
    """Return the request's media type, lower case without parameters; API Gateway assumes JSON when absent."""
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower() or "application/json"


class WebhookDefinition:
    """The parts of an ``AWS::Serverless::Api`` OpenAPI body the emulator runs, with ``Fn::Sub`` resolved."""

    def __init__(self, document: Mapping[str, Any], variables: Mapping[str, str], api_logical_id: str) -> None:
        resources: Mapping[str, Any] = document.get("Resources") or {}
        resource = resources.get(api_logical_id)
        if not resource or resource.get("Type") != "AWS::Serverless::Api":
            raise TemplateError(f"{api_logical_id}: no AWS::Serverless::Api of that name in the template")
        self.logical_id = api_logical_id
        self.properties: dict[str, Any] = dict(resource.get("Properties") or {})
        body = self.properties.get("DefinitionBody")
        if not isinstance(body, dict) or not isinstance(body.get("paths"), dict):
            raise TemplateError(f"{api_logical_id}: DefinitionBody with paths is needed to emulate it")
        self.body: dict[str, Any] = body
        self.variables = dict(variables)
        self.gateway_responses: dict[str, Any] = dict(body.get("x-amazon-apigateway-gateway-responses") or {})
        self.validators: dict[str, Any] = dict(body.get("x-amazon-apigateway-request-validators") or {})
        self.schemas: dict[str, Any] = dict((body.get("components") or {}).get("schemas") or {})
        self.policy: dict[str, Any] | None = body.get("x-amazon-apigateway-policy")
        self.writable_queues = self._writable_queues(resources)
        auth = self.properties.get("Auth") or {}
        default = auth.get("DefaultAuthorizer")
        self.authorizer: dict[str, Any] | None = (auth.get("Authorizers") or {}).get(default) if default else None
        if default and self.authorizer is None:
            raise TemplateError(f"{api_logical_id}: DefaultAuthorizer {default} is not among Auth.Authorizers")
        if self.authorizer is not None and self.authorizer.get("FunctionPayloadType", "TOKEN") != "REQUEST":
            raise TemplateError(f"{api_logical_id}: only REQUEST authorizers are emulated")

    @classmethod
    def from_template(
        cls, document: Mapping[str, Any], variables: Mapping[str, str], api_logical_id: str = "WebhookApi"
    ) -> WebhookDefinition:
        """Read the API from a loaded template; ``variables`` give the values of its ``Fn::Sub`` variables."""
        return cls(document, variables, api_logical_id)

    def _writable_queues(self, resources: Mapping[str, Any]) -> frozenset[str]:
        """Name the queues the integration's role may send to (``sqs:SendMessage`` on ``!GetAtt Q.Arn``)."""
        credentials = None
        for operation in self._operations():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            credentials = integration.get("credentials") or credentials
        if not (isinstance(credentials, dict) and "Fn::GetAtt" in credentials):
            return frozenset()
        role = resources.get(credentials["Fn::GetAtt"][0], {}).get("Properties") or {}
        names = set()
        for policy in role.get("Policies") or []:
            for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
                actions = statement.get("Action")
                actions = [actions] if isinstance(actions, str) else actions or []
                sends = any(fnmatch.fnmatchcase("sqs:SendMessage", action) for action in actions)
                if statement.get("Effect") != "Allow" or not sends:
                    continue
                targets = statement.get("Resource")
                for target in [targets] if not isinstance(targets, list) else targets:
                    if isinstance(target, dict) and "Fn::GetAtt" in target:
                        key = f"{target['Fn::GetAtt'][0]}.QueueName"
                        if key in self.variables:
                            names.add(self.variables[key])
        return frozenset(names)

    def _operations(self) -> Iterator[dict[str, Any]]:
        for methods in self.body["paths"].values():
            for method, operation in (methods or {}).items():
                if method.lower() in ("get", "put", "post", "delete", "patch", "head", "options"):
                    yield operation

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """Return the resource path and operation serving a request, or None (API Gateway's 403)."""
        methods = self.body["paths"].get(path)
        if not isinstance(methods, dict):
            return None
        operation = methods.get(method.lower()) or methods.get("x-amazon-apigateway-any-method")
        return (path, operation) if isinstance(operation, dict) else None

    def integration(self, operation: Mapping[str, Any]) -> dict[str, Any]:
        """Return the operation's SQS integration; other kinds of integration are not emulated."""
        integration = operation.get("x-amazon-apigateway-integration")
        if not isinstance(integration, dict) or integration.get("type") != "aws":
            raise TemplateError(f"{self.logical_id}: only `aws` integrations (here: SQS) are emulated")
        uri = integration.get("uri")
        text = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
        if not isinstance(text, str) or ":sqs:path/" not in text:
            raise TemplateError(f"{self.logical_id}: integration uri {uri!r} is not an SQS path integration")
        return integration

    def request_template(self, content_type: str, operation: Mapping[str, Any] | None = None) -> str | None:
        """Return the request mapping template for a content type, substituted, or None if there is none."""
        templates = self.integration(operation or self._only_operation()).get("requestTemplates") or {}
        template = templates.get(content_type)
        return None if template is None else substitute(template, self.variables)

    def _only_operation(self) -> dict[str, Any]:
        operations = list(self._operations())
        if len(operations) != 1:
            raise TemplateError(f"{self.logical_id}: name the operation; the API has {len(operations)}")
        return operations[0]

    def model(self, content_type: str, operation: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Return the JSON schema the validator applies to a content type, or None when the body is not validated."""
        operation = operation or self._only_operation()
        validator = self.validators.get(operation.get("x-amazon-apigateway-request-validator") or "")
        if not validator or not validator.get("validateRequestBody"):
            return None
        content = ((operation.get("requestBody") or {}).get("content") or {}).get(content_type)
        if not content or "schema" not in content:
            return None  # API Gateway validates no content type that has no model
        return self._resolve_schema(content["schema"])

    def _resolve_schema(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        reference = schema.get("$ref")
        if isinstance(reference, str):
            prefix = "#/components/schemas/"
            if not reference.startswith(prefix) or reference[len(prefix) :] not in self.schemas:
                raise TemplateError(f"{self.logical_id}: cannot resolve model reference {reference}")
            return dict(self.schemas[reference[len(prefix) :]])
        return dict(schema)

    def validation_errors(self, body: str, content_type: str, operation: Mapping[str, Any] | None = None) -> list[str]:
        """Validate a body as API Gateway does (draft 4); return its error messages, none when it passes."""
        model = self.model(content_type, operation)
        if model is None:
            return []
        try:
            instance = json.loads(body)
        except ValueError as e:
            return [f"Invalid JSON: {e}"]
        except RecursionError:
            # Found by the webhook fuzzer: a body nested 50,000 deep crashed the request thread (no answer at all).
            # API Gateway's parser has a nesting limit and answers 400.
            return ["Invalid JSON: nested too deeply"]
        import jsonschema

        errors = sorted(
            jsonschema.Draft4Validator(model).iter_errors(instance), key=lambda e: [str(part) for part in e.path]
        )
        # jsonschema reports each missing property apart; API Gateway names them all in one message.
        return list(dict.fromkeys(_validation_message(error) for error in errors))

    def integration_request(
        self,
        body: str,
        content_type: str,
        context: dict[str, Any],
        operation: Mapping[str, Any] | None = None,
        params: Mapping[str, Mapping[str, str]] | None = None,
    ) -> SqsRequest | None:
        """Render the request template and resolve the ``{queue}`` path parameter; None when no template fits."""
        operation = operation or self._only_operation()
        integration = self.integration(operation)
        template = self.request_template(content_type, operation)
        if template is None:
            behaviour = str(integration.get("passthroughBehavior", "when_no_match")).lower()
            templates = integration.get("requestTemplates") or {}
            if behaviour == "never" or (behaviour == "when_no_templates" and templates):
                return None
            raw = body  # passed through untransformed
        else:
            raw = render(template, body, context, params)
        mapped = (integration.get("requestParameters") or {}).get("integration.request.path.queue")
        queue = substitute(mapped, self.variables).strip("'") if mapped is not None else ""
        queue = str(context["requestOverride"]["path"].get("queue", queue))
        return SqsRequest(raw=raw, queue=queue, context=context, writable=self.writable_queues)

    def integration_response(
        self, request: SqsRequest, sqs_status: int, sqs_body: str = "{}", operation: Mapping[str, Any] | None = None
    ) -> tuple[int, str]:
        """Pick the integration response by SQS's status code, render it, apply a status override."""
        responses: dict[str, Any] = self.integration(operation or self._only_operation()).get("responses") or {}
        chosen = next(
            (r for pattern, r in responses.items() if pattern != "default" and re.fullmatch(pattern, str(sqs_status))),
            responses.get("default"),
        )
        if chosen is None:
            return sqs_status, sqs_body  # no integration response: API Gateway passes the status through
        template = (chosen.get("responseTemplates") or {}).get("application/json")
        text = sqs_body if template is None else render(substitute(template, self.variables), sqs_body, request.context)
        status = request.context["responseOverride"].get("status", chosen.get("statusCode", 200))
        return int(status), text

    def gateway_response(self, kind: str, context: dict[str, Any], status: int | None = None) -> tuple[int, str]:
        """Render a gateway response (or its DEFAULT_4XX/5XX fallback) with its status code."""
        default_status = status or _DEFAULT_STATUS.get(kind, 500)
        configured = self.gateway_responses.get(kind) or self.gateway_responses.get(
            "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX"
        )
        message = context.get("error", {}).get("message")
        if configured is None:
            return default_status, json.dumps({"message": message})
        final_status = int(self.gateway_responses.get(kind, {}).get("statusCode", default_status))
        template = (configured.get("responseTemplates") or {}).get("application/json")
        if template is None:
            return final_status, json.dumps({"message": message})
        return final_status, render(substitute(template, self.variables), "", context)


_JSON_TYPES: Final = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def _validation_message(error: Any) -> str:
    """Word a jsonschema error as API Gateway's validator (java json-schema-validator) words it."""
    instance, value = error.instance, error.validator_value
    if error.validator == "required":
        missing = [name for name in value if isinstance(instance, dict) and name not in instance]
        return f"object has missing required properties ({json.dumps(missing)})"
    if error.validator == "type":
        allowed = [value] if isinstance(value, str) else list(value)
        found = _JSON_TYPES.get(type(instance), "unknown")
        return f"instance type ({found}) does not match any allowed primitive types (allowed: {json.dumps(allowed)})"
    if error.validator == "pattern":
        return f"ECMA 262 regex {json.dumps(value)} does not match input string {json.dumps(instance)}"
    if error.validator == "minLength":
        return f"string {json.dumps(instance)} is too short (length: {len(instance)}, required minimum: {value})"
    if error.validator == "minimum":
        return f"numeric instance is lower than the required minimum (minimum: {value}, found: {instance})"
    return str(error.message)


# ------------------------------------------------------------------------------ the emulator


def token_authorizer(token_source: Callable[[], str]) -> Authorizer:
    """Return an authorizer running the webhook authorizer's own decision on a token source."""
    from crypto_bot.aws.webhook_auth import authorize

    def answer(event: Mapping[str, Any]) -> Mapping[str, Any]:
        return authorize(event, token_source).policy

    return answer


def _policy_allows(answer: Mapping[str, Any], method_arn: str) -> bool:
    """Evaluate an authorizer's policy for the method: an explicit Deny wins, else an Allow is needed."""
    allowed = False
    for statement in (answer.get("policyDocument") or {}).get("Statement") or []:
        actions = statement.get("Action")
        resources = statement.get("Resource")
        actions = [actions] if isinstance(actions, str) else actions or []
        resources = [resources] if isinstance(resources, str) else resources or []
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


class ApiGatewayEmulator:
    """Answer HTTP requests as the deployed REST API stage would, from a :class:`WebhookDefinition`.

    ``authorizer`` decides a REQUEST authorizer event (raise ``webhook_auth.Unauthorized`` for a
    401, :class:`AuthorizerFailed` for a 500); ``sqs_send`` sends a SendMessage form to a queue
    by name. ``policy_parameters`` switch the resource policy on: they give the values of the
    template parameters it refers to (``AllowedSourceCidrs``); None leaves it off.
    """

    def __init__(
        self,
        definition: WebhookDefinition,
        *,
        authorizer: Authorizer | None,
        sqs_send: SqsSend,
        policy_parameters: Mapping[str, Any] | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        api_id: str = "local",
        stage: str = "local",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if definition.authorizer is not None and authorizer is None:
            raise TemplateError(f"{definition.logical_id} has an authorizer: pass authorizer=")
        self.definition = definition
        self.authorizer = authorizer
        self.sqs_send = sqs_send
        self.policy_parameters = None if policy_parameters is None else dict(policy_parameters)
        self.region, self.account_id, self.api_id, self.stage = region, account_id, api_id, stage
        self.clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, Mapping[str, Any]]] = {}
        self._cache_lock = threading.Lock()

    def handle(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        source_ip: str = "127.0.0.1",
        content_length: int | None = None,
    ) -> Response:
        """Answer one request: status code, JSON body, and what happened (for the log).

        ``content_length`` is the request's size when the caller did not read a body over :data:`PAYLOAD_LIMIT`.
        """
        query = dict(query or {})
        headers = dict(headers or {})
        text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
        request_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        context = new_context(
            request_id,
            httpMethod=method.upper(),
            path=f"/{self.stage}{path}",
            stage=self.stage,
            apiId=self.api_id,
            accountId=self.account_id,
            requestTime=now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            requestTimeEpoch=int(now.timestamp() * 1000),
            identity=_Blank(sourceIp=source_ip, userAgent=headers.get("User-Agent", "")),
            authorizer=_Blank(),
            error=_Blank(),
        )
        size = content_length if content_length is not None else len(body)
        if size > PAYLOAD_LIMIT:
            # Found by the webhook fuzzer: an 11 MB alert reached SQS, which refused it, and was answered 502 (which
            # TradingView resends); the deployed API never lets it past its payload limit.
            return self._refuse("REQUEST_TOO_LARGE", context, outcome=f"REQUEST_TOO_LARGE ({size} bytes)")
        found = self.definition.operation(method, path)
        api_arn = f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api_id}"
        method_arn = f"{api_arn}/{self.stage}/{method.upper()}{path}"
        if found is None:
            return self._refuse("MISSING_AUTHENTICATION_TOKEN", context)
        resource_path, operation = found
        context["resourcePath"] = resource_path
        if not self._source_allowed(source_ip):
            message = (
                f"User: anonymous is not authorized to perform: execute-api:Invoke on resource: {method_arn} "
                "with an explicit deny"
            )
            return self._refuse("ACCESS_DENIED", context, message=message)
        params = {"path": {}, "querystring": query, "header": headers}
        refusal = self._authorize(method, path, resource_path, method_arn, query, headers, source_ip, context)
        if refusal is not None:
            return refusal
        content_type = _content_type(headers)
        errors = self.definition.validation_errors(text, content_type, operation)
        if errors:
            detail = "[" + ", ".join(errors) + "]"
            context["error"]["validationErrorString"] = json.dumps(detail)[1:-1]
            return self._refuse("BAD_REQUEST_BODY", context)
        try:
            request = self.definition.integration_request(text, content_type, context, operation, params)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            # A template that fails to render is API Gateway's 500 "Internal server error".
            return self._refuse("API_CONFIGURATION_ERROR", context, outcome=f"mapping template failed: {e}")
        if request is None:
            return self._refuse("UNSUPPORTED_MEDIA_TYPE", context)
        try:
            form = request.form
        except ValueError as e:
            return self._refuse("API_CONFIGURATION_ERROR", context, outcome=str(e))
        sqs_status, sqs_body = self.sqs_send(request.queue, form)
        status, answer = self.definition.integration_response(request, sqs_status, sqs_body, operation)
        message_id = None
        if 200 <= sqs_status < 300:
            result = json.loads(sqs_body).get("SendMessageResponse", {}).get("SendMessageResult", {})
            message_id = result.get("MessageId")
        return Response(
            status=status,
            body=answer,
            headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id},
            outcome=f"{request.queue} (SQS {sqs_status})",
            message_id=message_id,
        )

    def _refuse(self, kind: str, context: dict[str, Any], *, message: str | None = None, outcome: str = "") -> Response:
        text = message if message is not None else _MESSAGES.get(kind)
        context["error"] = _Blank(
            {**context.get("error", {}), "message": text, "messageString": json.dumps(text), "responseType": kind}
        )
        status, body = self.definition.gateway_response(kind, context)
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": context["requestId"]}
        headers["x-amzn-ErrorType"] = kind
        return Response(status=status, body=body, headers=headers, outcome=outcome or kind)

    def _source_allowed(self, source_ip: str) -> bool:
        """Evaluate the resource policy's IP conditions (explicit Deny wins; an Allow is needed)."""
        policy = self.definition.policy
        if self.policy_parameters is None or not policy:
            return True
        address = ipaddress.ip_address(source_ip)
        allowed = False
        for statement in policy.get("Statement") or []:
            if self._conditions_hold(statement.get("Condition") or {}, address):
                if statement.get("Effect") == "Deny":
                    return False
                allowed = allowed or statement.get("Effect") == "Allow"
        return allowed

    def _conditions_hold(self, conditions: Mapping[str, Any], address: Any) -> bool:
        for operator, tests in conditions.items():
            if operator not in ("IpAddress", "NotIpAddress"):
                raise TemplateError(f"resource policy condition {operator} is not emulated")
            for key, value in tests.items():
                if key != "aws:SourceIp":
                    raise TemplateError(f"resource policy condition key {key} is not emulated")
                networks = self._cidrs(value)
                inside = any(address in network for network in networks)
                if inside != (operator == "IpAddress"):
                    return False
        return True

    def _cidrs(self, value: Any) -> list[Any]:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            if not self.policy_parameters or value["Ref"] not in self.policy_parameters:
                raise TemplateError(f"resource policy refers to {value['Ref']}, which has no value here")
            value = self.policy_parameters[value["Ref"]]
        items: Sequence[Any] = [value] if isinstance(value, str) else value
        return [ipaddress.ip_network(str(item), strict=False) for item in items]

    def _authorize(
        self,
        method: str,
        path: str,
        resource_path: str,
        method_arn: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        source_ip: str,
        context: dict[str, Any],
    ) -> Response | None:
        """Run the REQUEST authorizer (cached per identity); return the refusal, or None to go on."""
        spec = self.definition.authorizer
        if spec is None or self.authorizer is None:
            return None
        identity = spec.get("Identity") or {}
        lowered = {k.lower(): v for k, v in headers.items()}
        sources = [query.get(name, "") for name in identity.get("QueryStrings") or []]
        sources += [lowered.get(name.lower(), "") for name in identity.get("Headers") or []]
        if not sources or not all(sources):
            return self._refuse("UNAUTHORIZED", context)  # without calling the function, as API Gateway does
        key = tuple(sources)
        ttl = float(identity.get("ReauthorizeEvery", 300))
        answer = self._cached(key)
        if answer is None:
            event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                "resource": resource_path,
                "path": path,
                "httpMethod": method.upper(),
                "headers": dict(headers),
                "multiValueHeaders": {name: [value] for name, value in headers.items()},
                "queryStringParameters": dict(query) or None,
                "multiValueQueryStringParameters": {name: [value] for name, value in query.items()} or None,
                "pathParameters": {},
                "stageVariables": {},
                "requestContext": {
                    "path": context["path"],
                    "accountId": self.account_id,
                    "resourcePath": resource_path,
                    "stage": self.stage,
                    "requestId": context["requestId"],
                    "identity": {"sourceIp": source_ip, "userAgent": context["identity"]["userAgent"]},
                    "httpMethod": method.upper(),
                    "apiId": self.api_id,
                },
            }
            from crypto_bot.aws.webhook_auth import Unauthorized

            try:
                answer = self.authorizer(event)
            except Unauthorized:
                return self._refuse("UNAUTHORIZED", context)
            except AuthorizerFailed as e:
                return self._refuse("AUTHORIZER_FAILURE", context, outcome=f"authorizer failed: {e}")
            if ttl > 0:
                with self._cache_lock:
                    self._cache[key] = (self.clock() + ttl, answer)
        context["authorizer"] = _Blank({**dict(answer.get("context") or {}), "principalId": answer.get("principalId")})
        if not _policy_allows(answer, method_arn):
            return self._refuse("ACCESS_DENIED", context)
        return None

    def _cached(self, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is None or entry[0] <= self.clock():
                self._cache.pop(key, None)
                return None
            return entry[1]
