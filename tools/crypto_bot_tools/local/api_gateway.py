"""Emulate the webhook's API Gateway REST API from its definition in template.yaml.

:class:`WebhookDefinition` reads the ``AWS::Serverless::Api`` resource (its OpenAPI
``DefinitionBody``: resource policy, the SQS integration with its mapping templates and
integration responses, and the gateway responses), with the template's parameters.
:class:`ApiGatewayEmulator` answers one HTTP request the way the deployed stage does:

1. the payload limit (10 MB), then the resource policy (the source-IP allowlist), only when it is switched on;
2. the REQUEST authorizer: a request without the identity source (``?token=``) is a 401
   without calling it; otherwise its answer (the authorizer's own code) is an Allow or Deny
   policy, cached for ``ReauthorizeEvery`` seconds per identity;
3. the integration request: the mapping template for the content type, rendered as
   Velocity, which picks the SQS queue through ``$context.requestOverride.path``; a
   content type without a template is a 415 (``passthroughBehavior: never``);
4. the SQS call (``SendMessage`` or ``SendMessageBatch``), injected as a function so that pure
   rendering needs no AWS, given ``timeoutInMillis``: a slower one is the INTEGRATION_TIMEOUT
   gateway response (and still happens, as on AWS), one that raises is INTEGRATION_FAILURE;
5. the integration response selected by SQS's status code (keyed by the status code it answers,
   as API Gateway stores them), or a gateway response.

Velocity is airspeed, made to behave like API Gateway's Velocity 1.7: Java's String
methods (``matches`` is a whole-string match, with the ``regex`` module standing in for
java.util.regex; ``length`` and ``substring`` count UTF-16 units) and single-quoted literals
taken verbatim. Request validators and models are not emulated, and a template that declares
them is refused; neither are throttling, stage variables, API keys and usage plans, CORS.
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

from crypto_bot_tools.local.template import TemplateError

__all__ = [
    "ApiGatewayEmulator",
    "AuthorizerFailed",
    "Authorizer",
    "Input",
    "MappingTemplateFailed",
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
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported Media Type",
    "REQUEST_TOO_LARGE": "Request Entity Too Large",
    "AUTHORIZER_FAILURE": None,
    "API_CONFIGURATION_ERROR": "Internal server error",
    "INTEGRATION_TIMEOUT": "Endpoint request timed out",
    "INTEGRATION_FAILURE": None,
}
# API Gateway's payload limit (10 MB, in bytes): a larger request is a 413 before the authorizer runs.
PAYLOAD_LIMIT: Final = 10 * 1024 * 1024
# The default status of each gateway response type (developer guide, "Gateway response types for API Gateway").
DEFAULT_STATUS: Final = {
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "REQUEST_TOO_LARGE": 413,
    "AUTHORIZER_FAILURE": 500,
    "API_CONFIGURATION_ERROR": 500,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
}
# An integration's timeout when timeoutInMillis is not given (API Gateway's default and maximum for REST APIs).
DEFAULT_TIMEOUT_MILLIS: Final = 29_000


class AuthorizerFailed(Exception):
    """The authorizer could not answer (it crashed): API Gateway answers 500."""


def substitute(value: Any, variables: Mapping[str, str], parameters: Mapping[str, str] | None = None) -> str:
    """Resolve a string or ``Fn::Sub`` as CloudFormation would, from ``variables`` and template ``parameters`` only.

    The list form's own variables may be ``Ref`` (to a parameter), ``Fn::Join``, ``Fn::Split`` or ``Fn::Sub``.
    """
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and set(value) == {"Fn::Sub"}):
        raise TemplateError(f"expected a string or Fn::Sub, got {value!r}")
    argument = value["Fn::Sub"]
    own: dict[str, str] = {}
    if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
        argument, own = (
            argument[0],
            {
                name: _text(_intrinsic(item, variables, parameters or {}), f"Fn::Sub variable {name}")
                for name, item in argument[1].items()
            },
        )
    if not isinstance(argument, str):
        raise TemplateError(f"expected the text of Fn::Sub, got {argument!r}")
    known = {**variables, **own}

    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):  # `${!Literal}` is the escape for a literal `${Literal}`
            return "${" + name[1:] + "}"
        if name in known:
            return known[name]
        if parameters and name in parameters:
            return parameters[name]
        raise TemplateError(f"Fn::Sub variable ${{{name}}} has no value here (known: {sorted(known)})")

    return _SUB_VARIABLE.sub(variable, argument)


def _intrinsic(value: Any, variables: Mapping[str, str], parameters: Mapping[str, str]) -> str | list[str]:
    """Evaluate the few intrinsic functions a mapping template's Fn::Sub variables use, as CloudFormation does."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" and isinstance(argument, str):
            if argument not in parameters:
                raise TemplateError(f"Ref {argument}: no such parameter here (known: {sorted(parameters)})")
            return parameters[argument]
        if key == "Fn::Sub":
            return substitute(value, variables, parameters)
        if key == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            delimiter, items = argument
            parts = (
                [_text(_intrinsic(item, variables, parameters), "Fn::Join item") for item in items]
                if isinstance(items, list)
                else _intrinsic(items, variables, parameters)
            )
            if not isinstance(parts, list):
                raise TemplateError(f"Fn::Join needs a list, got {parts!r}")
            return _text(delimiter, "Fn::Join delimiter").join(parts)
        if key == "Fn::Split" and isinstance(argument, list) and len(argument) == 2:
            delimiter, source = argument
            return _text(_intrinsic(source, variables, parameters), "Fn::Split source").split(
                _text(delimiter, "Fn::Split delimiter")
            )
    raise TemplateError(f"{value!r}: only Ref, Fn::Sub, Fn::Join and Fn::Split are resolved here")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{what}: expected a string, got {value!r}")
    return value


# ------------------------------------------------------------------------------ Velocity, as API Gateway runs it


def java_trim(text: str) -> str:
    """Strip what Java's String.trim strips: characters up to U+0020, not Python's Unicode whitespace."""
    return text.strip("".join(chr(c) for c in range(0x21)))


def _java_matches(text: str, pattern: str) -> bool:
    import regex

    return regex.fullmatch(pattern, text) is not None


def _utf16(text: str) -> bytes:
    # A Java String is UTF-16: a character outside the BMP is two units, an unpaired surrogate one.
    return text.encode("utf-16-le", "surrogatepass")


def java_length(text: str) -> int:
    """Count what Java's String.length counts: UTF-16 code units."""
    return len(_utf16(text)) // 2


def _java_substring(text: str, begin: int, end: int | None = None) -> str:
    units = _utf16(text)
    stop = len(units) // 2 if end is None else end
    if not 0 <= begin <= stop <= len(units) // 2:
        # Java throws StringIndexOutOfBoundsException, and the template fails.
        raise IndexError(f"substring({begin}, {stop}) of a string of length {len(units) // 2}")
    return units[2 * begin : 2 * stop].decode("utf-16-le", "surrogatepass")


def _java_replace_all(text: str, pattern: str, replacement: str) -> str:
    import regex

    if "$" in replacement or "\\" in replacement:
        # Java's replacement syntax ($1, \$) is not emulated: refuse it rather than read it as Python's.
        raise ValueError(f"replaceAll replacement {replacement!r}: group references and escapes are not emulated")
    return str(regex.sub(pattern, lambda _match: replacement, text))


# Java String methods the templates call; airspeed looks str methods up in this table.
JAVA_STRING: Final[dict[str, Callable[..., Any]]] = {
    "matches": _java_matches,
    "trim": java_trim,
    "startsWith": lambda text, prefix: text.startswith(prefix),
    "endsWith": lambda text, suffix: text.endswith(suffix),
    "length": java_length,
    "substring": _java_substring,
    "replaceAll": _java_replace_all,
    # Java's toLowerCase() in a root-like locale (not Turkish, Azeri or Lithuanian): Unicode's full lower-case mapping.
    "toLowerCase": lambda text: text.lower(),
}
_velocity_lock = threading.Lock()


@contextmanager
def _velocity_like_api_gateway() -> Iterator[Any]:
    """Patch airspeed into API Gateway's Velocity for the block, one render at a time (the patches are global)."""
    import airspeed

    with _velocity_lock:
        methods = airspeed.__additional_methods__
        saved = (
            methods.get(str),
            airspeed.StringLiteral.STRING,
            airspeed.StringLiteral.ESCAPED_CHAR,
            airspeed.ElseBlock.START,
        )
        # airspeed's own `matches` is re.match, a prefix match; Java's matches the whole string.
        methods[str] = {**(saved[0] or {}), **JAVA_STRING}
        # Velocity 1.7 takes a single-quoted literal verbatim, backslashes included (its grammar: any
        # character but the quote); airspeed would unescape a few and refuse the rest.
        airspeed.StringLiteral.STRING = re.compile(r"'([^']*)'", re.S)
        airspeed.StringLiteral.ESCAPED_CHAR = re.compile(r"(?!)")
        # Velocity 1.7's ELSE_DIRECTIVE token takes the blanks and the newline after #else with it (Parser.jjt),
        # as its END and a directive's closing parenthesis do; airspeed leaves that newline in the output.
        airspeed.ElseBlock.START = re.compile(r"#(?:else|\{else\})(?:[ \t]*(?:\r\n|\n|\r))?", re.I)
        try:
            yield airspeed
        finally:
            if saved[0] is None:
                methods.pop(str, None)
            else:
                methods[str] = saved[0]
            airspeed.StringLiteral.STRING, airspeed.StringLiteral.ESCAPED_CHAR = saved[1], saved[2]
            airspeed.ElseBlock.START = saved[3]


_JSONPATH_STEP: Final = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


class Input:
    """``$input``: the raw body, the dotted JSONPath reads API Gateway offers on it, and the request parameters."""

    def __init__(self, body: str, params: Mapping[str, Mapping[str, str]] | None = None) -> None:
        # A request without a body reaches the template as "{}": recorded from AWS in LocalStack's validated
        # test_apigateway_sqs.py::test_sqs_aws_integration ("sqs-aws-integration-without-payload", body {}).
        self.body = body or "{}"
        self._params = params or {"path": {}, "querystring": {}, "header": {}}

    def path(self, expression: str) -> Any:
        """Return the value at a JSONPath of names and indexes (``$.a.b[0].c``) of the body as JSON, None if absent."""
        value: Any = json.loads(self.body)
        steps = expression.removeprefix("$")
        if _JSONPATH_STEP.sub("", steps):
            raise ValueError(f"JSONPath {expression!r}: only .name and [index] steps are emulated")
        for name, index in _JSONPATH_STEP.findall(steps):
            if name:
                if not isinstance(value, dict) or name not in value:
                    return None
                value = value[name]
            else:
                if not isinstance(value, list) or int(index) >= len(value):
                    return None
                value = value[int(index)]
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
        """Encode as java.net.URLEncoder does with UTF-8: letters, digits and .-*_ stay, a space becomes +.

        An unpaired surrogate, which UTF-8 cannot encode, becomes "?" (%3F), as Java's encoder replaces it.
        """
        return urllib.parse.quote_plus(text.encode("utf-8", "replace"), safe="*").replace("~", "%7E")

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
        try:
            output: str = airspeed.Template(template).merge(
                {"input": Input(body, params), "util": Util(), "context": context}
            )
        except airspeed.TemplateError as e:
            # What failed inside (a Java exception on API Gateway) is the cause; API Gateway answers a 500.
            raise MappingTemplateFailed(f"{e.__cause__ or e}") from e
    return output


class MappingTemplateFailed(ValueError):
    """A mapping template failed to render (a syntax error, or an exception while it ran)."""


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

    def __init__(
        self,
        document: Mapping[str, Any],
        variables: Mapping[str, str],
        api_logical_id: str,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
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
        self.parameters = _parameter_values(dict(document.get("Parameters") or {}), parameters or {})
        if body.get("x-amazon-apigateway-request-validators") or any(
            "x-amazon-apigateway-request-validator" in operation for operation in self._operations()
        ):
            raise TemplateError(f"{api_logical_id}: request validators are not emulated")
        self.gateway_responses: dict[str, Any] = dict(body.get("x-amazon-apigateway-gateway-responses") or {})
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
        cls,
        document: Mapping[str, Any],
        variables: Mapping[str, str],
        api_logical_id: str = "WebhookApi",
        parameters: Mapping[str, str] | None = None,
    ) -> WebhookDefinition:
        """Read the API from a loaded template.

        ``variables`` give the values of its ``Fn::Sub`` variables (``Queue.QueueName``); ``parameters`` the
        template parameters given at deploy, the others taking their ``Default``.
        """
        return cls(document, variables, api_logical_id, parameters)

    def substitute(self, value: Any) -> str:
        """Resolve a string or ``Fn::Sub`` with this API's variables and parameters."""
        return substitute(value, self.variables, self.parameters)

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
        return None if template is None else self.substitute(template)

    def _only_operation(self) -> dict[str, Any]:
        operations = list(self._operations())
        if len(operations) != 1:
            raise TemplateError(f"{self.logical_id}: name the operation; the API has {len(operations)}")
        return operations[0]

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
        queue = self.substitute(mapped).strip("'") if mapped is not None else ""
        queue = str(context["requestOverride"]["path"].get("queue", queue))
        return SqsRequest(raw=raw, queue=queue, context=context, writable=self.writable_queues)

    def integration_responses(self, operation: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Return the operation's integration responses keyed by the status code each answers, as API Gateway does.

        The OpenAPI extension keys them by selection pattern, but API Gateway stores them by status code
        (``PutIntegrationResponse .../responses/{status_code}``): two with one status code cannot both exist, so
        a template that has them is refused here instead of losing one silently.
        """
        responses: dict[str, Any] = self.integration(operation or self._only_operation()).get("responses") or {}
        by_status: dict[str, dict[str, Any]] = {}
        for pattern, response in responses.items():
            status = str(response.get("statusCode", ""))
            if status in by_status:
                raise TemplateError(
                    f"{self.logical_id}: integration responses {by_status[status]['selectionPattern']!r} and "
                    f"{pattern!r} both answer {status}; API Gateway keeps one integration response per status code"
                )
            by_status[status] = {**response, "selectionPattern": None if pattern == "default" else pattern}
        return by_status

    def timeout(self, operation: Mapping[str, Any] | None = None) -> float:
        """Return the integration's timeout in seconds (``timeoutInMillis``, else API Gateway's 29 s)."""
        integration = self.integration(operation or self._only_operation())
        return int(integration.get("timeoutInMillis", DEFAULT_TIMEOUT_MILLIS)) / 1000

    def integration_response(
        self, request: SqsRequest, sqs_status: int, sqs_body: str = "{}", operation: Mapping[str, Any] | None = None
    ) -> tuple[int, str] | None:
        """Pick the integration response by SQS's status code, render it, apply a status override.

        None when no selection pattern matches and there is no default: API Gateway's API_CONFIGURATION_ERROR
        ("integration response mapping can't match any template and no default template is configured").
        """
        responses = list(self.integration_responses(operation).values())
        chosen = next(
            (r for r in responses if r["selectionPattern"] and re.fullmatch(r["selectionPattern"], str(sqs_status))),
            next((r for r in responses if r["selectionPattern"] is None), None),
        )
        if chosen is None:
            return None
        template = (chosen.get("responseTemplates") or {}).get("application/json")
        text = sqs_body if template is None else render(self.substitute(template), sqs_body, request.context)
        status = request.context["responseOverride"].get("status", chosen.get("statusCode", 200))
        return int(status), text

    def gateway_response(self, kind: str, context: dict[str, Any], status: int | None = None) -> tuple[int, str]:
        """Render a gateway response (or its DEFAULT_4XX/5XX fallback) with its status code."""
        default_status = status or DEFAULT_STATUS.get(kind, 500)
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
        return final_status, render(self.substitute(template), "", context)


def _parameter_values(declared: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Return every template parameter's value, given or its Default, checked as CloudFormation checks it."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"parameters {unknown} are not declared in the template")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name not in given and "Default" not in spec:
            continue  # not needed unless the API refers to it, and then substitute() names it
        value = str(given.get(name, spec.get("Default")))
        allowed = [str(v) for v in spec.get("AllowedValues") or []]
        if allowed and value not in allowed:
            raise TemplateError(f"parameter {name} is {value!r}, not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None:
            import regex

            # CloudFormation reads AllowedPattern as a Java regex; the regex module stands in for it, as above.
            if regex.fullmatch(str(pattern), value) is None:
                why = spec.get("ConstraintDescription") or f"it must match {pattern}"
                raise TemplateError(f"parameter {name} is {value!r}: {why}")
        values[name] = value
    return values


# ------------------------------------------------------------------------------ the emulator


def token_authorizer(token_source: Callable[[], str]) -> Authorizer:
    """Return an authorizer running the webhook authorizer's own decision on a token source."""
    from crypto_bot.entrypoints.webhook_auth import authorize

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
        try:
            request = self.definition.integration_request(text, content_type, context, operation, params)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
            # A template that fails to render is API Gateway's 500 "Internal server error".
            return self._refuse("API_CONFIGURATION_ERROR", context, outcome=f"mapping template failed: {e}")
        if request is None:
            return self._refuse("UNSUPPORTED_MEDIA_TYPE", context)
        try:
            form = request.form
        except ValueError as e:
            return self._refuse("API_CONFIGURATION_ERROR", context, outcome=str(e))
        called = self._call_integration(request.queue, form, self.definition.timeout(operation))
        if called is None:
            return self._refuse("INTEGRATION_TIMEOUT", context, outcome=f"{request.queue}: SQS did not answer in time")
        if isinstance(called, BaseException):
            failure = f"{request.queue}: SQS call failed: {type(called).__name__}: {called}"
            return self._refuse("INTEGRATION_FAILURE", context, outcome=failure)
        sqs_status, sqs_body = called
        try:
            mapped = self.definition.integration_response(request, sqs_status, sqs_body, operation)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
            return self._refuse("API_CONFIGURATION_ERROR", context, outcome=f"response template failed: {e}")
        if mapped is None:
            return self._refuse("API_CONFIGURATION_ERROR", context, outcome=f"no integration response for {sqs_status}")
        status, answer = mapped
        message_id = None
        if 200 <= sqs_status < 300:
            result = json.loads(sqs_body).get("SendMessageResponse", {}).get("SendMessageResult", {})
            message_id = result.get("MessageId")
        return Response(
            status=status,
            body=answer,
            headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id},
            outcome=f"{request.queue} ({form.get('Action')}, SQS {sqs_status})",
            message_id=message_id,
        )

    def _call_integration(
        self, queue: str, form: Mapping[str, str], timeout: float
    ) -> tuple[int, str] | BaseException | None:
        """Call SQS as the integration does: its answer, what it raised, or None after ``timeout`` seconds.

        API Gateway stops waiting at the integration timeout but cannot take the call back: a message SQS
        stores afterwards is queued all the same. The call goes on in its thread, as it does on AWS.
        """
        outcome: list[tuple[int, str] | BaseException] = []
        done = threading.Event()

        def call() -> None:
            try:
                outcome.append(self.sqs_send(queue, form))
            except Exception as e:  # reported to the caller: API Gateway's INTEGRATION_FAILURE
                outcome.append(e)
            finally:
                done.set()

        threading.Thread(target=call, name="api-gateway-integration", daemon=True).start()
        return outcome[0] if done.wait(timeout) else None

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
            from crypto_bot.entrypoints.webhook_auth import Unauthorized

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
