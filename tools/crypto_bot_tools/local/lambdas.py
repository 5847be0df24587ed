"""Run the template's Lambda functions in this process, with their real handlers.

How the routing works (moto 5.2): with ``{"lambda": {"use_docker": False}}`` moto serves ``Invoke`` from
``LambdaSimpleBackend.invoke``, which normally returns a canned payload. For the duration of the stack
:class:`LambdaRouter` patches it, and ``LambdaFunction.invoke`` (the path moto's SNS, S3 and EventBridge
integrations take), so that a function created from the template runs its handler here instead. A handler
exception becomes a Lambda function error, exactly as the Python runtime reports it:
``X-Amz-Function-Error: Unhandled`` and a ``{"errorType": <class name>, "errorMessage": str(e), ...}``
payload. moto's Step Functions interpreter takes ``errorType`` as the error name, so ``Retry``/``Catch`` on
``["TransientError"]`` match the class the handler raised, as on AWS.

SNS invokes a subscribed function asynchronously, after the publish returned ("Invoking Lambda functions using
Amazon SNS notifications", Lambda Developer Guide); moto invokes it inside the publish. A delivery published from
within a handler (finalize's summary) is therefore held until that handler's invocation has ended, then run: the
publisher never waits for, or fails with, its subscriber, and each handler's logs keep their own context.
"""

from __future__ import annotations

import decimal
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["LambdaContext", "LambdaRouter", "LocalFunction", "patched_environ"]

LOG = logging.getLogger(__name__)


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
class LocalFunction:
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
def patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
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


class LambdaRouter:
    """Serve moto's Lambda invocations of the template's functions from their real handlers."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.functions: dict[str, LocalFunction] = {}  # by physical function name
        self.invocations: list[tuple[str, float]] = []
        # Handlers swap os.environ and sys.path, which are process-wide, and Map states call
        # them from several threads: one invocation at a time keeps each one's environment
        # its own. Re-entrant so a handler may invoke another function synchronously.
        self._lock = threading.RLock()
        # Per thread: how deep in handler invocations it is, and the SNS deliveries held until it is out.
        self._local = threading.local()

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
            if _is_sns_delivery(body) and router._depth() > 0:
                router._held().append((local, body))
                return b""  # moto's SNS ignores what the invocation answers
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

    def invoke(
        self, function: LocalFunction, body: Any, request_headers: Any, response_headers: dict[str, Any]
    ) -> bytes:
        """Run one invocation and answer as the Lambda service does (payload, function-error header)."""
        if _header(request_headers, "X-Amz-Invocation-Type") == "DryRun":
            return b""
        # Asynchronous ("Event") invocations run synchronously here: simpler and deterministic.
        event = json.loads(body) if body else {}
        request_id = str(uuid.uuid4())
        depth = self._depth()
        with self._lock:
            started = time.perf_counter()  # not counting the wait for the lock
            self._local.depth = depth + 1
            try:
                payload, error = self._run(function, event, request_id)
            finally:
                self._local.depth = depth
                self.invocations.append((function.logical_id, time.perf_counter() - started))
        if error:
            response_headers["x-amz-function-error"] = "Unhandled"
        if depth == 0:
            held = self._held()
            while held:
                subscriber, delivery = held.pop(0)
                self.invoke(subscriber, delivery, {"X-Amz-Invocation-Type": "Event"}, {})
        return payload

    def _depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    def _held(self) -> list[tuple[LocalFunction, Any]]:
        if not hasattr(self._local, "held"):
            self._local.held = []
        held: list[tuple[LocalFunction, Any]] = self._local.held
        return held

    def _run(self, function: LocalFunction, event: Any, request_id: str) -> tuple[bytes, bool]:
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
            with patched_environ({**function.environment, **reserved}):
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
    def _entry(function: LocalFunction) -> Callable[[Any, Any], Any]:
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


def _is_sns_delivery(body: Any) -> bool:
    """Say whether an invocation's body is an SNS event (moto's send_sns_message builds one record)."""
    try:
        event = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return False
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and any(isinstance(r, dict) and r.get("EventSource") == "aws:sns" for r in records)


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
