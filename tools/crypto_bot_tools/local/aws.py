"""Emulate the SAM template's AWS resources in-process with moto, with no AWS account.

:func:`local_stack` reads ``template.yaml`` (so the local stack cannot drift from the
deployed one), creates the supported resources under ``moto.mock_aws`` and routes every
Lambda invocation of the template's functions to the real Python handler, in this process.
Step Functions executions run the real Amazon States Language definition with moto's
interpreter, so Retry, Catch, Choice, Map, Wait and the direct SDK integrations
(``dynamodb:putItem``, ``aws-sdk:sqs:*``...) behave as they do on AWS.

How the Lambda routing works (moto 5.2): with ``{"lambda": {"use_docker": False}}`` moto
serves ``Invoke`` from ``LambdaSimpleBackend.invoke``, which normally returns a canned
payload. For the duration of the stack we patch it, and ``LambdaFunction.invoke`` (the
path moto's SNS, S3 and EventBridge integrations take), so that a function created from
the template runs its handler here instead. A handler exception becomes a Lambda function
error, exactly as the Python runtime reports it: ``X-Amz-Function-Error: Unhandled`` and a
``{"errorType": <class name>, "errorMessage": str(e), ...}`` payload. moto's Step Functions
interpreter takes ``errorType`` as the error name, so ``Retry``/``Catch`` on
``["TransientExchangeError"]`` match the handler's exception class, as on AWS.

Everything that is patched (environment variables, moto's Lambda backend, imported
handler modules) is restored when the context manager exits.
"""

from __future__ import annotations

import base64
import decimal
import graphlib
import importlib.util
import io
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Final

import yaml

__all__ = ["LambdaContext", "LocalStack", "TemplateError", "load_template", "local_stack"]

LOG = logging.getLogger(__name__)

STACK_NAME: Final = "local"
# The role every emulated function runs as; moto only checks that it exists.
_LAMBDA_ROLE_NAME: Final = "local-lambda-execution-role"
_LAMBDA_TRUST_POLICY: Final = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


class TemplateError(ValueError):
    """The template cannot be emulated: a bad reference, an unsupported intrinsic or property, a missing file."""


# --------------------------------------------------------------------------------------------
# Reading the template
# --------------------------------------------------------------------------------------------

# Short-form tag -> long-form key. `Ref` and `Condition` have no `Fn::` prefix.
_INTRINSIC_TAGS: Final = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "GetAtt",
            "Sub",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "Select",
            "Join",
            "FindInMap",
            "Split",
            "ImportValue",
            "Base64",
            "GetAZs",
            "Cidr",
            "Transform",
            "ToJsonString",
            "Length",
        )
    },
}


class _TemplateLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation's short-form intrinsics (``!Ref X``) as their long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    key = _INTRINSIC_TAGS[node.tag[1:]]
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            # `!GetAtt Queue.Arn` is the short form of `Fn::GetAtt: [Queue, Arn]`.
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


for _tag in _INTRINSIC_TAGS:
    _TemplateLoader.add_constructor(f"!{_tag}", _construct_intrinsic)
# CloudFormation reads `2010-09-09` as a string, not a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(path: Path) -> dict[str, Any]:
    """Read a CloudFormation/SAM template (YAML or JSON) with short-form intrinsics turned into long form."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, yaml.YAMLError) as e:
        raise TemplateError(f"cannot read template {path}: {e}") from e
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return document


# --------------------------------------------------------------------------------------------
# Resolving intrinsics
# --------------------------------------------------------------------------------------------

# AWS::NoValue: the enclosing mapping key or list item disappears.
_NO_VALUE: Final[Any] = SimpleNamespace(name="AWS::NoValue")
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


@dataclass
class _Resolved:
    """What other resources can read of one resource: its Ref value and its Fn::GetAtt attributes."""

    type: str
    ref: Any
    attributes: dict[str, Any]
    emulated: bool


def _to_str(value: Any, where: str) -> str:
    """Render a resolved scalar the way CloudFormation does in strings (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | decimal.Decimal):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {value!r}")


def _references(value: Any) -> set[str]:
    """Name every logical id (or parameter) an unresolved value refers to, for dependency order."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                return {arg}
            if key == "Fn::GetAtt" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                return {arg[0]}
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
                names = {m.split(".", 1)[0] for m in _SUB_VARIABLE.findall(text) if not m.startswith("!")}
                return (names - set(variables)) | _references(variables)
        for item in value.values():
            found |= _references(item)
    return found


class _Resolver:
    """Resolve parameters, conditions and the intrinsic functions of one template.

    Resource references resolve from :attr:`resolved`, which the stack builder fills in
    dependency order as it creates each resource.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        source: str,
        parameter_values: Mapping[str, str],
        region: str,
        account_id: str,
        ssm_lookup: Callable[[str], str],
    ) -> None:
        self.source = source
        self.resources: dict[str, Any] = dict(document.get("Resources") or {})
        self.mappings: dict[str, Any] = dict(document.get("Mappings") or {})
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{STACK_NAME}/{uuid.uuid4()}",
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": _NO_VALUE,
        }
        self.parameters = self._parameters(dict(document.get("Parameters") or {}), parameter_values, ssm_lookup)
        self._condition_definitions: dict[str, Any] = dict(document.get("Conditions") or {})
        self._conditions: dict[str, bool] = {}
        self.resolved: dict[str, _Resolved] = {}

    # -- parameters and conditions --------------------------------------------------------

    def _parameters(
        self, declared: dict[str, Any], given: Mapping[str, str], ssm_lookup: Callable[[str], str]
    ) -> dict[str, Any]:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TemplateError(f"{self.source}: parameters {unknown} are not declared in the template")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            where = f"{self.source}: parameter {name}"
            if name in given:
                raw = given[name]
            elif "Default" in spec:
                raw = _to_str(spec["Default"], where)
            else:
                raise TemplateError(f"{where} has no Default: pass it in parameters=")
            allowed = [_to_str(v, where) for v in spec.get("AllowedValues", [])]
            if allowed and raw not in allowed:
                raise TemplateError(f"{where} is {raw!r}, not one of {allowed}")
            kind = str(spec.get("Type", "String"))
            if kind.startswith("AWS::SSM::Parameter::Value<"):
                # The value lives in SSM under the given name, as on AWS: seed it with ssm_values=.
                raw = ssm_lookup(raw)
            is_list = kind == "CommaDelimitedList" or "List<" in kind
            values[name] = [item.strip() for item in raw.split(",")] if is_list else raw
        return values

    def condition(self, name: str, where: str, _visiting: frozenset[str] = frozenset()) -> bool:
        """Evaluate a named condition of the Conditions section."""
        if name in self._conditions:
            return self._conditions[name]
        if name not in self._condition_definitions:
            raise TemplateError(f"{where}: unknown condition {name!r}")
        if name in _visiting:
            raise TemplateError(f"{self.source}: condition {name} refers to itself")
        value = self._condition_value(self._condition_definitions[name], f"condition {name}", _visiting | {name})
        self._conditions[name] = value
        return value

    def _condition_value(self, value: Any, where: str, visiting: frozenset[str]) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition(arg, where, visiting)
            if key == "Fn::Equals":
                left, right = (self.resolve(item, where) for item in arg)
                return bool(_to_str(left, where) == _to_str(right, where))
            if key == "Fn::Not":
                return not self._condition_value(arg[0], where, visiting)
            if key == "Fn::And":
                return all(self._condition_value(item, where, visiting) for item in arg)
            if key == "Fn::Or":
                return any(self._condition_value(item, where, visiting) for item in arg)
        raise TemplateError(f"{self.source}: {where}: {value!r} is not a condition")

    # -- intrinsics -----------------------------------------------------------------------

    def resolve(self, value: Any, where: str) -> Any:
        """Return ``value`` with every intrinsic function replaced by its value; ``where`` names it in errors."""
        if isinstance(value, list):
            items = (self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key.startswith("Fn::"):
                return self._function(key, arg, where)
        resolved = {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def ref(self, name: str, where: str) -> Any:
        """Resolve ``Ref: name``: a pseudo parameter, a template parameter or a resource's Ref value."""
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._resource(name, where, f"Ref {name}").ref

    def get_att(self, name: str, attribute: str, where: str) -> Any:
        """Resolve ``Fn::GetAtt: [name, attribute]``."""
        resource = self._resource(name, where, f"Fn::GetAtt {name}.{attribute}")
        if attribute not in resource.attributes:
            known = ", ".join(sorted(resource.attributes)) or "none"
            how = "is emulated" if resource.emulated else "is not emulated (placeholder values only)"
            raise TemplateError(
                f"{self.source}: {where}: Fn::GetAtt {name}.{attribute}: resource {name} ({resource.type}) "
                f"has no attribute {attribute!r} here; it {how}, known attributes: {known}"
            )
        return resource.attributes[attribute]

    def _resource(self, name: str, where: str, what: str) -> _Resolved:
        if name not in self.resources:
            raise TemplateError(f"{self.source}: {where}: {what}: no parameter or resource named {name!r}")
        if name not in self.resolved:
            condition = self.resources[name].get("Condition")
            why = f"its condition {condition} is false" if condition else "it is not created yet (a dependency cycle?)"
            raise TemplateError(f"{self.source}: {where}: {what}: resource {name} is not available: {why}")
        return self.resolved[name]

    def _function(self, key: str, arg: Any, where: str) -> Any:  # noqa: C901 (one branch per intrinsic)
        if key == "Fn::GetAtt":
            parts = self.resolve(arg, where) if isinstance(arg, list) else [arg]
            if len(parts) != 2:
                raise TemplateError(f"{self.source}: {where}: Fn::GetAtt {arg!r} is not [resource, attribute]")
            return self.get_att(parts[0], parts[1], where)
        if key == "Fn::Sub":
            return self._sub(arg, where)
        if key == "Fn::If":
            condition, when_true, when_false = arg
            chosen = when_true if self.condition(condition, where) else when_false
            return self.resolve(chosen, where)
        if key == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(_to_str(item, where) for item in self.resolve(items, where))
        if key == "Fn::Select":
            index, items = self.resolve(arg, where)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg, where)
            return text.split(delimiter)
        if key == "Fn::FindInMap":
            return self._find_in_map(self.resolve(arg, where), where)
        if key == "Fn::Base64":
            return base64.b64encode(_to_str(self.resolve(arg, where), where).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{self.pseudo['AWS::Region']}{zone}" for zone in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg, where), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self.resolve(arg, where))
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._condition_value({key: arg}, where, frozenset())
        raise TemplateError(f"{self.source}: {where}: {key} cannot be resolved locally")

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, variables = arg[0], self.resolve(arg[1] if len(arg) > 1 else {}, where)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # `${!Literal}` is the escape for a literal `${Literal}`
                return "${" + name[1:] + "}"
            if name in variables:
                return _to_str(variables[name], where)
            if "." in name:
                resource, attribute = name.split(".", 1)
                return _to_str(self.get_att(resource, attribute, where), where)
            return _to_str(self.ref(name, where), where)

        return _SUB_VARIABLE.sub(replace, text)

    def _find_in_map(self, arg: list[Any], where: str) -> Any:
        map_name, top, second = (_to_str(item, where) for item in arg[:3])
        try:
            return self.mappings[map_name][top][second]
        except KeyError as e:
            raise TemplateError(f"{self.source}: {where}: Fn::FindInMap {map_name}/{top}/{second}: no {e}") from e


# --------------------------------------------------------------------------------------------
# Running the handlers in-process
# --------------------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    """The part of the Lambda runtime's context object handlers use."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    timeout_seconds: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before the function's configured timeout (not enforced locally)."""
        return max(0, int((self._started + self.timeout_seconds - time.monotonic()) * 1000))


@dataclass
class _Function:
    """A template function as the router runs it."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    import_paths: list[Path]
    module_name: str
    entry: Callable[[Any, Any], Any] | None = None


def _header(headers: Any, name: str) -> str | None:
    """Read a header case-insensitively from whatever moto passes (werkzeug headers, a dict, nothing)."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _json_default(value: Any) -> Any:
    # The Lambda Python runtime serialises Decimal (what DynamoDB returns) as a float, so do the same.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@contextmanager
def _environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables, and put back exactly the ones touched."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _LambdaRouter:
    """Serve moto's Lambda invocations of the template's functions from their real handlers."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.functions: dict[str, _Function] = {}  # by physical function name
        self.invocations: list[tuple[str, float]] = []
        # Handlers swap os.environ and sys.path, which are process-wide, and Map states call
        # them from several threads: one invocation at a time keeps each one's environment
        # its own. Re-entrant so a handler may invoke another function synchronously.
        self._lock = threading.RLock()

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Patch moto's Lambda invoke paths for the duration of the block."""
        from unittest import mock

        from moto.awslambda.models import LambdaFunction
        from moto.awslambda_simple.models import LambdaSimpleBackend

        original_function_invoke = LambdaFunction.invoke
        original_backend_invoke = LambdaSimpleBackend.invoke
        router = self

        def function_invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
            local = router.functions.get(fn.function_name)
            if local is None:
                return original_function_invoke(fn, body, request_headers, response_headers)
            return router.invoke(local, body, request_headers, response_headers)

        def backend_invoke(
            backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
        ) -> Any:
            fn = backend.get_function(function_name, qualifier)
            local = router.functions.get(fn.function_name)
            if local is None:  # not ours: keep moto's canned "simple" answer
                return original_backend_invoke(backend, function_name, qualifier, body, headers, response_headers)
            payload = router.invoke(local, body, headers, response_headers)
            response_headers["Content-Length"] = str(len(payload))
            return payload

        already_imported = set(sys.modules)
        with (
            mock.patch.object(LambdaFunction, "invoke", function_invoke),
            mock.patch.object(LambdaSimpleBackend, "invoke", backend_invoke),
        ):
            try:
                yield
            finally:
                self._unload_handlers(already_imported)

    def wait_idle(self, timeout: float) -> None:
        """Wait until no handler is running (they run one at a time, under the lock)."""
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
        else:
            LOG.warning("a Lambda handler is still running after %s s; tearing the stack down anyway", timeout)

    def _unload_handlers(self, already_imported: set[str]) -> None:
        """Forget the handler modules and the sibling modules they imported, so the next stack cold-starts."""
        code_dirs = {local.code_dir for local in self.functions.values()}
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) if name not in already_imported else None
            if file and any(Path(file).resolve().is_relative_to(code_dir) for code_dir in code_dirs):
                del sys.modules[name]
        for local in self.functions.values():
            sys.modules.pop(local.module_name, None)
            local.entry = None

    def invoke(self, function: _Function, body: Any, request_headers: Any, response_headers: dict[str, Any]) -> bytes:
        """Run one invocation and answer as the Lambda service does (payload, function-error header)."""
        if _header(request_headers, "X-Amz-Invocation-Type") == "DryRun":
            return b""
        # Asynchronous ("Event") invocations run synchronously here: simpler and deterministic.
        event = json.loads(body) if body else {}
        request_id = str(uuid.uuid4())
        with self._lock:
            started = time.perf_counter()  # not counting the wait for the lock
            try:
                payload, error = self._run(function, event, request_id)
            finally:
                self.invocations.append((function.logical_id, time.perf_counter() - started))
        if error:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    def _run(self, function: _Function, event: Any, request_id: str) -> tuple[bytes, bool]:
        reserved = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "LAMBDA_TASK_ROOT": str(function.code_dir),
        }
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_size,
            aws_request_id=request_id,
            timeout_seconds=function.timeout,
            log_group_name=f"/aws/lambda/{function.name}",
        )
        saved_path = list(sys.path)
        sys.path[:0] = [str(path) for path in function.import_paths]
        try:
            with _environ({**function.environment, **reserved}):
                try:
                    entry = self._entry(function)
                except Exception as e:  # reported as the runtime does, so the state machine sees it
                    LOG.exception("%s: cannot load handler %s", function.logical_id, function.handler)
                    return _error_payload(e, request_id, error_type="Runtime.ImportModuleError"), True
                try:
                    result = entry(event, context)
                except Exception as e:  # becomes a Lambda function error, as on AWS
                    LOG.info("%s raised %s: %s", function.logical_id, type(e).__name__, e)
                    return _error_payload(e, request_id), True
        finally:
            sys.path[:] = saved_path
        try:
            return json.dumps(result, default=_json_default).encode(), False
        except (TypeError, ValueError) as e:
            return _error_payload(e, request_id, error_type="Runtime.MarshalError"), True

    @staticmethod
    def _entry(function: _Function) -> Callable[[Any, Any], Any]:
        """Import the handler on first use (a cold start: module code sees the function's environment)."""
        if function.entry is not None:
            return function.entry
        module_path, _, attribute = function.handler.rpartition(".")
        source = function.code_dir / (module_path.replace(".", "/") + ".py")
        spec = importlib.util.spec_from_file_location(function.module_name, source)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {source}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        # Registered under a name unique to the function, so two functions' app.py do not collide,
        # and registered at all so dataclasses and pickling inside the module work.
        sys.modules[function.module_name] = module
        try:
            spec.loader.exec_module(module)
            entry = getattr(module, attribute)
        except BaseException:
            sys.modules.pop(function.module_name, None)
            raise
        function.entry = entry
        return entry


def _error_payload(error: BaseException, request_id: str, error_type: str | None = None) -> bytes:
    """Build the payload the Lambda Python runtime returns for an unhandled exception."""
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": error_type or type(error).__name__,
            "requestId": request_id,
            # The handler's frames only, as the runtime shows them: this module's are noise.
            "stackTrace": traceback.format_list(
                [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename != __file__]
            ),
        }
    ).encode()


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


@dataclass
class LocalStack:
    """The emulated stack: physical names of the created resources and helpers to drive it."""

    region: str
    # Logical id -> what `!Ref` gives: table/function/parameter name, queue URL, topic/state machine ARN.
    outputs: dict[str, str]
    # Resources of types that are not emulated: (logical id, type).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _router: _LambdaRouter | None = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def resource(self, logical_id: str) -> str:
        """Return the physical name or ARN (queue: URL) of a created resource."""
        try:
            return self.outputs[logical_id]
        except KeyError:
            skipped = dict(self.skipped)
            why = f"its type {skipped[logical_id]} is not emulated" if logical_id in skipped else "no such resource"
            raise KeyError(f"{logical_id}: not created in the local stack ({why})") from None

    def client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` bound to the mock, in the stack's region."""
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    def start_execution(self, state_machine_logical_id: str, input: dict[str, Any], name: str | None = None) -> str:
        """Start an execution of a template state machine and return its ARN."""
        # moto does not make up a name; AWS would, and names must be unique per state machine.
        name = name or f"{state_machine_logical_id[:40]}-{uuid.uuid4().hex}"
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.resource(state_machine_logical_id), name=name, input=json.dumps(input)
        )
        return str(response["executionArn"])

    def wait_for_execution(self, execution_arn: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until an execution is no longer RUNNING; return describe_execution's output plus its "history"."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still RUNNING after {timeout} s")
            time.sleep(0.02)
        description.pop("ResponseMetadata", None)
        history: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(executionArn=execution_arn, **({"nextToken": token} if token else {}))
            history.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        description["history"] = history
        return description

    def invocations(self) -> list[tuple[str, float]]:
        """Return (function logical id, duration in seconds) of every Lambda invocation so far, in order."""
        return list(self._router.invocations) if self._router else []


_active = threading.Lock()  # moto's backends are process-wide: one local stack at a time
_stack_serial = itertools.count(1)


@contextmanager
def local_stack(
    template_path: Path,
    *,
    parameters: Mapping[str, str] | None = None,
    substitution_overrides: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    ssm_values: Mapping[str, str] | None = None,
    region: str = "us-east-1",
    retry_interval_scale: float = 1.0,
) -> Iterator[LocalStack]:
    """Create the template's resources under moto and yield the stack; tear everything down on exit.

    ``parameters`` override the template's parameter defaults; ``substitution_overrides`` win over
    every state machine's DefinitionSubstitutions (e.g. to shorten Wait states); ``environment`` is
    merged over every function's Environment.Variables; ``ssm_values`` (name -> value) are put as
    SecureString parameters before anything else, since CloudFormation cannot create those.
    ``retry_interval_scale`` multiplies the sleeps of Step Functions Retry (0 retries at once).
    """
    from moto import mock_aws

    if retry_interval_scale < 0:
        raise ValueError(f"retry_interval_scale must be >= 0, got {retry_interval_scale}")
    template_path = Path(template_path).resolve()
    document = load_template(template_path)
    if not _active.acquire(blocking=False):
        raise RuntimeError("a local_stack is already running in this process; nesting them is not supported")
    try:
        with ExitStack() as exits:
            exits.enter_context(_fake_aws_environment(region))
            exits.enter_context(
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
            )
            router = _LambdaRouter(region)
            exits.enter_context(router.installed())
            if retry_interval_scale != 1.0:
                exits.enter_context(_scaled_retry_sleep(retry_interval_scale))
            stack = LocalStack(region=region, outputs={}, _router=router)
            builder = _StackBuilder(
                stack,
                router,
                template_path,
                document,
                parameters=parameters or {},
                substitution_overrides=substitution_overrides or {},
                # moto answers a receive from every message it holds, so the long poll that protects
                # a real queue from false empties would only add a second's wait to every drain here.
                environment={"SQS_WAIT_SECONDS": "0", **(environment or {})},
                ssm_values=ssm_values or {},
            )
            builder.build()
            exits.callback(_stop_running_executions, stack, router)
            yield stack
    finally:
        _active.release()


@contextmanager
def _fake_aws_environment(region: str) -> Iterator[None]:
    """Point boto3 at fake credentials and the stack's region, never at a real account or endpoint."""
    with _environ(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 (moto's documented fake)
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # A profile or endpoint override would send boto3 elsewhere than moto.
            "AWS_PROFILE": None,
            "AWS_DEFAULT_PROFILE": None,
            "AWS_ENDPOINT_URL": None,
        }
    ):
        yield


@contextmanager
def _scaled_retry_sleep(scale: float) -> Iterator[None]:
    """Scale the real-time sleep moto's Step Functions interpreter does between Retry attempts."""
    from unittest import mock

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    def sleep(seconds: float) -> None:
        time.sleep(seconds * scale)

    with mock.patch.object(retrier_decl, "time", SimpleNamespace(sleep=sleep)):
        yield


def _stop_running_executions(stack: LocalStack, router: _LambdaRouter) -> None:
    """Stop executions still running, so their threads do not call AWS after the mock is gone."""
    sfn = stack.client("stepfunctions")
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in running["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"])
    # A stopped execution does not interrupt a handler already running: let it finish under the mock.
    router.wait_idle(timeout=10)


# --------------------------------------------------------------------------------------------
# Creating the resources
# --------------------------------------------------------------------------------------------


def _physical_name(logical_id: str, max_length: int, suffix: str = "") -> str:
    """Derive a name as CloudFormation does: <stack>-<logical id, truncated to fit>-<random>."""
    random_part = uuid.uuid4().hex[:12].upper()
    room = max_length - len(STACK_NAME) - len(random_part) - len(suffix) - 2
    return f"{STACK_NAME}-{logical_id[:room]}-{random_part}{suffix}"


def _tags(tags: Any) -> list[dict[str, str]]:
    """Accept CloudFormation's tag list or SAM's tag map."""
    if isinstance(tags, dict):
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags or []]


def _merge_globals(global_properties: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Merge SAM Globals under a resource's properties: maps merge key by key, the resource wins otherwise."""
    merged = dict(global_properties)
    for key, value in properties.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_globals(merged[key], value)
        else:
            merged[key] = value
    return merged


# What is read of each emulated type. The other properties (roles, policies, events, logging...)
# are ignored, so they may refer to resources that are not emulated.
_READ_PROPERTIES: Final = {
    "AWS::DynamoDB::Table": (
        "TableName KeySchema AttributeDefinitions BillingMode ProvisionedThroughput GlobalSecondaryIndexes "
        "LocalSecondaryIndexes StreamSpecification SSESpecification TimeToLiveSpecification TableClass "
        "DeletionProtectionEnabled PointInTimeRecoverySpecification Tags"
    ),
    "AWS::Serverless::SimpleTable": "TableName PrimaryKey ProvisionedThroughput SSESpecification",
    "AWS::SQS::Queue": (
        "QueueName Tags ContentBasedDeduplication DeduplicationScope DelaySeconds FifoQueue FifoThroughputLimit "
        "KmsDataKeyReusePeriodSeconds KmsMasterKeyId MaximumMessageSize MessageRetentionPeriod "
        "ReceiveMessageWaitTimeSeconds RedriveAllowPolicy RedrivePolicy SqsManagedSseEnabled VisibilityTimeout"
    ),
    "AWS::SNS::Topic": (
        "TopicName DisplayName KmsMasterKeyId FifoTopic ContentBasedDeduplication SignatureVersion TracingConfig "
        "Subscription Tags"
    ),
    "AWS::SNS::Subscription": "TopicArn Protocol Endpoint RawMessageDelivery FilterPolicy",
    "AWS::SSM::Parameter": "Name Type Value Description AllowedPattern Tier DataType",
    "AWS::Serverless::Function": "FunctionName CodeUri Handler Runtime Timeout MemorySize Environment",
    "AWS::Serverless::StateMachine": "Name Type Definition DefinitionUri DefinitionSubstitutions",
    "AWS::StepFunctions::StateMachine": (
        "StateMachineName StateMachineType Definition DefinitionString DefinitionSubstitutions"
    ),
}
# The queue properties that are queue attributes in the SQS API (the rest: QueueName, Tags).
_QUEUE_ATTRIBUTES: Final = frozenset(_READ_PROPERTIES["AWS::SQS::Queue"].split()) - {"QueueName", "Tags"}
_TOPIC_ATTRIBUTES: Final = (
    "DisplayName",
    "KmsMasterKeyId",
    "FifoTopic",
    "ContentBasedDeduplication",
    "SignatureVersion",
    "TracingConfig",
)
_SKIPPED_SERVICES: Final = {"Serverless::Api": "execute-api", "Serverless::HttpApi": "execute-api"}


class _StackBuilder:
    """Create the template's resources, in dependency order, in the mocked account."""

    def __init__(
        self,
        stack: LocalStack,
        router: _LambdaRouter,
        template_path: Path,
        document: dict[str, Any],
        *,
        parameters: Mapping[str, str],
        substitution_overrides: Mapping[str, str],
        environment: Mapping[str, str],
        ssm_values: Mapping[str, str],
    ) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID

        self.stack = stack
        self.router = router
        self.template_dir = template_path.parent
        self.document = document
        self.account_id = str(DEFAULT_ACCOUNT_ID)
        self.substitution_overrides = dict(substitution_overrides)
        self.environment = dict(environment)
        self.serial = next(_stack_serial)
        for name, value in ssm_values.items():
            stack.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        self.resolver = _Resolver(
            document,
            source=template_path.name,
            parameter_values=parameters,
            region=stack.region,
            account_id=self.account_id,
            ssm_lookup=self._ssm_value,
        )
        self.globals: dict[str, Any] = dict(document.get("Globals") or {})
        self.creators: dict[str, Callable[[str, dict[str, Any]], _Resolved]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::Serverless::SimpleTable": self._simple_table,
            "AWS::SQS::Queue": self._queue,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::SSM::Parameter": self._ssm_parameter,
            "AWS::Serverless::Function": self._function,
            "AWS::Serverless::StateMachine": self._sam_state_machine,
            "AWS::StepFunctions::StateMachine": self._cfn_state_machine,
        }

    def _ssm_value(self, name: str) -> str:
        try:
            response = self.stack.client("ssm").get_parameter(Name=name, WithDecryption=True)
        except self.stack.client("ssm").exceptions.ParameterNotFound as e:
            raise TemplateError(f"SSM parameter {name} (an SSM-typed template parameter) is not seeded: {e}") from e
        return str(response["Parameter"]["Value"])

    def build(self) -> None:
        """Create every resource whose Condition holds, each after the resources it refers to."""
        resources = self.resolver.resources
        graph = graphlib.TopologicalSorter[str]()
        for logical_id, resource in resources.items():
            depends_on = resource.get("DependsOn") or []
            depends = _references(resource) | set([depends_on] if isinstance(depends_on, str) else depends_on)
            graph.add(logical_id, *sorted(depends & set(resources) - {logical_id}))
        try:
            order = list(graph.static_order())
        except graphlib.CycleError as e:
            raise TemplateError(f"{self.resolver.source}: resources refer to each other in a cycle: {e.args[1]}") from e
        for logical_id in order:
            resource = resources[logical_id]
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition, f"resource {logical_id}"):
                continue
            kind = str(resource.get("Type"))
            creator = self.creators.get(kind)
            if creator is None:
                self.stack.skipped.append((logical_id, kind))
                self.resolver.resolved[logical_id] = self._placeholder(logical_id, kind)
                continue
            resolved = creator(logical_id, dict(resource.get("Properties") or {}))
            self.resolver.resolved[logical_id] = resolved
            self.stack.outputs[logical_id] = str(resolved.ref)

    def _placeholder(self, logical_id: str, kind: str) -> _Resolved:
        """Give a resource that is not emulated a Ref and an Arn, so that e.g. an API URL in an env var resolves."""
        name = _physical_name(logical_id, 64)
        service = _SKIPPED_SERVICES.get(kind.removeprefix("AWS::"), kind.split("::")[1].lower())
        partition = self.resolver.pseudo["AWS::Partition"]
        arn = f"arn:{partition}:{service}:{self.stack.region}:{self.account_id}:{name}"
        return _Resolved(type=kind, ref=name, attributes={"Arn": arn}, emulated=False)

    def _props(self, logical_id: str, kind: str, properties: dict[str, Any]) -> dict[str, Any]:
        """Resolve the properties read of this type (see _READ_PROPERTIES)."""
        resolved = {}
        for name in _READ_PROPERTIES[kind].split():
            if name in properties:
                value = self.resolver.resolve(properties[name], f"resource {logical_id}, property {name}")
                if value is not _NO_VALUE:
                    resolved[name] = value
        return resolved

    def _where(self, logical_id: str, name: str) -> str:
        return f"{self.resolver.source}: resource {logical_id}, property {name}"

    # -- DynamoDB -------------------------------------------------------------------------

    def _table(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::DynamoDB::Table", properties)
        for required in ("KeySchema", "AttributeDefinitions"):
            if required not in p:
                raise TemplateError(f"{self._where(logical_id, required)}: required")
        billing = p.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": p.get("TableName") or _physical_name(logical_id, 255),
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            if "ProvisionedThroughput" not in p:
                raise TemplateError(f"{self._where(logical_id, 'ProvisionedThroughput')}: required when PROVISIONED")
            request["ProvisionedThroughput"] = _int_values(p["ProvisionedThroughput"])
        if "GlobalSecondaryIndexes" in p:
            keep = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
            request["GlobalSecondaryIndexes"] = [
                {key: _int_values(value) if key.endswith("Throughput") else value for key, value in index.items()}
                for index in ({k: v for k, v in gsi.items() if k in keep} for gsi in p["GlobalSecondaryIndexes"])
            ]
        if "LocalSecondaryIndexes" in p:
            request["LocalSecondaryIndexes"] = [
                {k: v for k, v in lsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                for lsi in p["LocalSecondaryIndexes"]
            ]
        if "StreamSpecification" in p:
            request["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        if "SSESpecification" in p:
            sse = p["SSESpecification"]  # CloudFormation spells the API's "Enabled" as "SSEEnabled"
            request["SSESpecification"] = {
                "Enabled": _bool(sse.get("SSEEnabled", False)),
                **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
            }
        for key in ("TableClass", "DeletionProtectionEnabled"):
            if key in p:
                request[key] = p[key]
        if p.get("Tags"):
            request["Tags"] = _tags(p["Tags"])
        dynamodb = self.stack.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        name = request["TableName"]
        if "TimeToLiveSpecification" in p:
            ttl = p["TimeToLiveSpecification"]
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": _bool(ttl["Enabled"])},
            )
        pitr = p.get("PointInTimeRecoverySpecification", {})
        if _bool(pitr.get("PointInTimeRecoveryEnabled", False)):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return _Resolved("AWS::DynamoDB::Table", name, attributes, emulated=True)

    def _simple_table(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::Serverless::SimpleTable", properties)
        key = p.get("PrimaryKey", {"Name": "id", "Type": "String"})
        key_type = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
        table: dict[str, Any] = {
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": key_type}],
            "BillingMode": "PROVISIONED" if "ProvisionedThroughput" in p else "PAY_PER_REQUEST",
            **{k: v for k, v in p.items() if k in ("TableName", "ProvisionedThroughput", "SSESpecification")},
        }
        return self._table(logical_id, table)

    # -- SQS, SNS, SSM --------------------------------------------------------------------

    def _queue(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::SQS::Queue", properties)
        fifo = _bool(p.get("FifoQueue", False))
        name = p.get("QueueName") or _physical_name(logical_id, 80, ".fifo" if fifo else "")
        attributes = {
            key: json.dumps(value) if isinstance(value, dict) else _to_str(value, self._where(logical_id, key))
            for key, value in p.items()
            if key in _QUEUE_ATTRIBUTES
        }
        sqs = self.stack.client("sqs")
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if p.get("Tags"):
            request["tags"] = {t["Key"]: t["Value"] for t in _tags(p["Tags"])}
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _Resolved("AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url}, emulated=True)

    def _topic(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::SNS::Topic", properties)
        fifo = _bool(p.get("FifoTopic", False))
        name = p.get("TopicName") or _physical_name(logical_id, 256, ".fifo" if fifo else "")
        attributes = {key: _to_str(p[key], self._where(logical_id, key)) for key in _TOPIC_ATTRIBUTES if key in p}
        sns = self.stack.client("sns")
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if p.get("Tags"):
            request["Tags"] = _tags(p["Tags"])
        arn = sns.create_topic(**request)["TopicArn"]
        for subscription in p.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        return _Resolved("AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name}, emulated=True)

    def _subscription(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::SNS::Subscription", properties)
        attributes = {}
        if "RawMessageDelivery" in p:
            attributes["RawMessageDelivery"] = _to_str(p["RawMessageDelivery"], self._where(logical_id, "Raw"))
        if "FilterPolicy" in p:
            attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
        arn = self.stack.client("sns").subscribe(
            TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=attributes
        )["SubscriptionArn"]
        return _Resolved("AWS::SNS::Subscription", arn, {"Arn": arn}, emulated=True)

    def _ssm_parameter(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::SSM::Parameter", properties)
        kind = p.get("Type", "String")
        if kind not in ("String", "StringList"):
            raise TemplateError(
                f"{self._where(logical_id, 'Type')}: {kind} cannot be created by CloudFormation; "
                "seed it with local_stack(ssm_values=...) instead"
            )
        name = p.get("Name") or _physical_name(logical_id, 2048)
        request = {"Name": name, "Type": kind, "Value": _to_str(p.get("Value"), self._where(logical_id, "Value"))}
        request |= {k: p[k] for k in ("Description", "AllowedPattern", "Tier", "DataType") if k in p}
        self.stack.client("ssm").put_parameter(**request)
        return _Resolved("AWS::SSM::Parameter", name, {"Type": kind, "Value": request["Value"]}, emulated=True)

    # -- Lambda ---------------------------------------------------------------------------

    def _function(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        properties = _merge_globals(self.globals.get("Function") or {}, properties)
        p = self._props(logical_id, "AWS::Serverless::Function", properties)
        if "CodeUri" not in p or not isinstance(p["CodeUri"], str):
            raise TemplateError(f"{self._where(logical_id, 'CodeUri')}: a local directory is needed to run it")
        if "Handler" not in p:
            raise TemplateError(f"{self._where(logical_id, 'Handler')}: required")
        code_dir = (self.template_dir / p["CodeUri"]).resolve()
        handler = str(p["Handler"])
        module_path, _, attribute = handler.rpartition(".")
        source = code_dir / (module_path.replace(".", "/") + ".py")
        if not module_path or not attribute or not source.is_file():
            raise TemplateError(f"{self._where(logical_id, 'Handler')}: {handler!r} is not a function of {source}")
        variables = (p.get("Environment") or {}).get("Variables") or {}
        environment = {
            key: _to_str(value, self._where(logical_id, f"Environment.Variables.{key}"))
            for key, value in variables.items()
        } | self.environment
        name = p.get("FunctionName") or _physical_name(logical_id, 64)
        timeout, memory = int(p.get("Timeout", 3)), int(p.get("MemorySize", 128))
        arn = self.stack.client("lambda").create_function(
            FunctionName=name,
            Runtime=p.get("Runtime", "python3.12"),
            Role=self._lambda_role(),
            Handler=handler,
            Code={"ZipFile": _placeholder_zip()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": environment},
        )["FunctionArn"]
        self.router.functions[name] = _Function(
            logical_id=logical_id,
            name=name,
            arn=arn,
            code_dir=code_dir,
            handler=handler,
            timeout=timeout,
            memory_size=memory,
            environment=environment,
            import_paths=[code_dir, *self._layer_paths(properties.get("Layers") or [])],
            module_name=f"_crypto_bot_local_{self.serial}_{logical_id}_{module_path.replace('.', '_')}",
        )
        return _Resolved("AWS::Serverless::Function", name, {"Arn": arn}, emulated=True)

    def _layer_paths(self, layers: list[Any]) -> list[Path]:
        """Put the template's own layers (`!Ref Layer` with a local ContentUri) on the handler's import path."""
        paths = []
        for layer in layers:
            if isinstance(layer, dict) and set(layer) == {"Ref"}:
                resource = self.resolver.resources.get(layer["Ref"], {})
                content = (resource.get("Properties") or {}).get("ContentUri")
                if resource.get("Type") == "AWS::Serverless::LayerVersion" and isinstance(content, str):
                    root = (self.template_dir / content).resolve()
                    # Lambda puts a layer's python/ on the path; SAM's build does that for a bare directory.
                    paths.append(root / "python" if (root / "python").is_dir() else root)
        return paths

    def _lambda_role(self) -> str:
        iam = self.stack.client("iam")
        try:
            return str(iam.get_role(RoleName=_LAMBDA_ROLE_NAME)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(RoleName=_LAMBDA_ROLE_NAME, AssumeRolePolicyDocument=_LAMBDA_TRUST_POLICY)
            return str(role["Role"]["Arn"])

    # -- Step Functions -------------------------------------------------------------------

    def _sam_state_machine(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        properties = _merge_globals(self.globals.get("StateMachine") or {}, properties)
        p = self._props(logical_id, "AWS::Serverless::StateMachine", properties)
        if "Definition" in p:
            text, suffix = json.dumps(p["Definition"]), ".json"
        elif isinstance(p.get("DefinitionUri"), str):
            path = self.template_dir / p["DefinitionUri"]
            try:
                text, suffix = path.read_text(encoding="utf-8"), path.suffix
            except OSError as e:
                raise TemplateError(f"{self._where(logical_id, 'DefinitionUri')}: {e}") from e
        else:
            raise TemplateError(f"{self._where(logical_id, 'DefinitionUri')}: a local Definition file is needed")
        return self._state_machine(
            logical_id, "AWS::Serverless::StateMachine", text, suffix, p.get("Name"), p.get("Type"), p
        )

    def _cfn_state_machine(self, logical_id: str, properties: dict[str, Any]) -> _Resolved:
        p = self._props(logical_id, "AWS::StepFunctions::StateMachine", properties)
        if "Definition" in p:
            text = json.dumps(p["Definition"])
        elif "DefinitionString" in p:
            text = p["DefinitionString"]
        else:
            raise TemplateError(f"{self._where(logical_id, 'DefinitionString')}: an inline definition is needed")
        kind = "AWS::StepFunctions::StateMachine"
        return self._state_machine(
            logical_id, kind, text, ".json", p.get("StateMachineName"), p.get("StateMachineType"), p
        )

    def _state_machine(
        self,
        logical_id: str,
        kind: str,
        text: str,
        suffix: str,
        name: str | None,
        machine_type: str | None,
        p: dict[str, Any],
    ) -> _Resolved:
        where = self._where(logical_id, "DefinitionSubstitutions")
        substitutions = {key: _to_str(v, where) for key, v in (p.get("DefinitionSubstitutions") or {}).items()}
        substitutions |= self.substitution_overrides
        missing = sorted({m for m in _SUB_VARIABLE.findall(text) if m not in substitutions})
        if missing:
            raise TemplateError(f"{where}: the definition uses {', '.join(missing)}, which have no substitution")
        # Textual, as CloudFormation does it: `"Seconds": ${WaitSeconds}` becomes a number.
        text = _SUB_VARIABLE.sub(lambda m: substitutions[m.group(1)], text)
        try:
            definition = yaml.safe_load(text) if suffix in (".yaml", ".yml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise TemplateError(f"{self._where(logical_id, 'Definition')}: not valid after substitution: {e}") from e
        name = name or _physical_name(logical_id, 80)
        arn = self.stack.client("stepfunctions").create_state_machine(
            name=name,
            definition=json.dumps(definition),
            # moto does not check it, and no IAM policy is evaluated locally.
            roleArn=f"arn:aws:iam::{self.account_id}:role/{STACK_NAME}-{logical_id[:40]}-role",
            type=machine_type or "STANDARD",
        )["stateMachineArn"]
        return _Resolved(kind, arn, {"Arn": arn, "Name": name}, emulated=True)


def _bool(value: Any) -> bool:
    """Read a CloudFormation boolean, which may be a YAML bool or the string "true"/"false"."""
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _int_values(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Turn numeric strings (e.g. from !Ref of a Number parameter) into the ints the API wants."""
    return {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in mapping.items()}


def _placeholder_zip() -> bytes:
    """Return a tiny deployment package: moto wants one, and the code never runs from it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "Served in-process by crypto_bot_tools.local.aws.\n")
    return buffer.getvalue()
