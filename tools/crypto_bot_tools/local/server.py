"""``crypto-bot local``: the deployed pipeline on one machine, behind a local HTTP server.

:class:`LocalServer` builds template.yaml's resources under moto (:func:`crypto_bot_tools.local.aws.local_stack`:
table, queues, parameters, topic, the real handlers, the real state machine definition), puts the
webhook emulator (:mod:`crypto_bot_tools.local.api_gateway`, read from the same template) in front of
them, and emulates what moto does not run by itself:

* the EventBridge Pipe: a message on the pipe's source queue (the urgent queue) starts an
  execution at once with the batch of SQS records as input, and is deleted after the start;
* the EventBridge schedule: executions with the schedule's input at each firing time of the
  template's expression (or of ``--schedule``/``--cycle-every``).

Local-only endpoints report the state (``GET /_local/state``) and run a cycle now
(``POST /_local/cycle``). The paper exchange trades in place of a real one.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ConfigError, CryptoBotError, StoreConflict
from crypto_bot.domain.money import to_json_number
from crypto_bot_tools.local.schedule import RateSchedule, Schedule, parse_schedule

__all__ = ["LocalServer", "LocalSettings", "default_template"]

STATE_MACHINE: Final = "TradeCycleStateMachine"
API: Final = "WebhookApi"
NO_SCHEDULE: Final = ("none", "off", "manual")
# Wait states shortened through the template's own substitutions. With alert or CSV prices the market
# does not move during a cycle (as in replay): an order that did not fill at once never will, so it is
# chased at once. Live prices move: fills are checked every few seconds, as deployed, only sooner.
_SUBSTITUTIONS: Final = {"ReconcileWaitSeconds": "0", "LockWaitSeconds": "1"}
_LIVE_SUBSTITUTIONS: Final = {"ReconcileWaitSeconds": "3", "LockWaitSeconds": "1"}
# Step Functions' Retry intervals (2 s and up) scaled down the same way.
_RETRY_SCALE: Final = 0.1
_CYCLE_TIMEOUT: Final = 600.0


def default_template() -> Path:
    """Find template.yaml: in the working directory, else in the checkout this package lives in."""
    here = Path("template.yaml")
    if here.is_file():
        return here.resolve()
    return Path(__file__).resolve().parents[3] / "template.yaml"


@dataclass(frozen=True)
class LocalSettings:
    """What ``crypto-bot local`` was asked for."""

    config: Path = Path("strategy_config.json")
    host: str = "127.0.0.1"
    port: int = 3000
    token: str | None = None
    cycle_every: float | None = None
    schedule: str | None = None  # an expression, "none" for manual cycles only, None for the template's
    prices: str | None = None  # None: alert prices; "live:EXCHANGE"; or a CSV path
    cash: Decimal = Decimal(10000)
    mode: str = "boost"
    allow: tuple[str, ...] = ()
    max_signal_age: int | None = None  # minutes; 0 never expires; None: the template's
    stop_loss_pattern: str | None = None  # the StopLossPattern parameter; None: the template's
    max_price_jump: Decimal | None = None  # MAX_PRICE_JUMP for the alert-priced paper exchange; None: the core's
    template: Path = field(default_factory=default_template)
    # A ccxt venue (a testnet, or an emulator) instead of the paper exchange; None: paper trading.
    exchange: str | None = None
    sandbox: bool = False
    exchange_options: Mapping[str, Any] = field(default_factory=dict)
    api_key: Mapping[str, str] | None = field(default=None, repr=False)  # {"apiKey", "secret"[, "password"]}


@dataclass
class _Execution:
    """An execution the server started, and what it found when it ended."""

    arn: str
    name: str
    trigger: str
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    detail: dict[str, Any] | None = None


_print_lock = threading.Lock()


def _log_to_stdout(line: str) -> None:
    # One write per line under a lock: request and cycle threads log at the same time.
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class LocalServer:
    """The local stack behind an HTTP server; use as a context manager, then :meth:`serve_forever`."""

    def __init__(self, settings: LocalSettings, *, log: Callable[[str], None] = _log_to_stdout) -> None:
        from crypto_bot_tools.local.aws import TemplateError, load_template

        self.settings = settings
        self.log = log
        self.token = settings.token or secrets.token_urlsafe(24)
        try:
            self.template = load_template(settings.template)
        except TemplateError as e:
            raise ConfigError(str(e)) from e
        self.parameters = self._parameters()
        self.config = StrategyConfig.load(settings.config, self.parameters["QuoteCurrency"])
        self.csv_prices = self._csv_prices()
        self.schedule_description, self._schedule = self._cycle_schedule()
        self.increment = Decimal(self.parameters["IncrementPct"])
        self._exits = ExitStack()
        self._stop = threading.Event()
        self._pipe_wakeup = threading.Event()
        self._executions: dict[str, _Execution] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._serving = False
        self.stack: Any = None
        self._venue_client: Any = None

    # -- settings ---------------------------------------------------------------------------

    def _declared_default(self, name: str) -> str:
        spec = (self.template.get("Parameters") or {}).get(name)
        if not spec or "Default" not in spec:
            raise ConfigError(f"{self.settings.template}: parameter {name} with a Default is needed")
        return str(spec["Default"])

    def _parameters(self) -> dict[str, str]:
        """Template parameters: the template's defaults, with paper trading and the asked mode and cash."""
        s = self.settings
        if s.mode not in ("boost", "multi"):
            raise ConfigError(f"--mode {s.mode!r}: must be boost or multi")
        if s.cash < 0:
            raise ConfigError(f"--cash {s.cash}: must not be negative")
        parameters = {
            "PaperTrading": "true",
            "ExecutionStrategy": s.mode,
            "PaperStartingCash": str(s.cash),
            "QuoteCurrency": self._declared_default("QuoteCurrency"),
            "IncrementPct": self._declared_default("IncrementPct"),
            "CycleSchedule": self._declared_default("CycleSchedule"),
            "WebhookTokenParameterName": self._declared_default("WebhookTokenParameterName"),
            "Stage": self._declared_default("Stage"),
        }
        if s.prices and s.prices.startswith("live:"):
            exchange = s.prices.removeprefix("live:").strip().lower()
            if not exchange:
                raise ConfigError("--prices live:EXCHANGE: name the ccxt exchange, e.g. live:binance")
            parameters["ExchangeName"] = exchange
        parameters["ExchangeOptions"] = json.dumps(dict(s.exchange_options), sort_keys=True)
        if s.exchange is not None:
            if s.prices:
                raise ConfigError("--prices is for the paper exchange; a venue (--exchange) prices its own orders")
            if not s.api_key:
                raise ConfigError(f"--exchange {s.exchange}: give the venue's API key with --api-key-file")
            parameters.update(
                PaperTrading="false",
                ExchangeName=s.exchange,
                Sandbox="true" if s.sandbox else "false",
                ApiKeyParameterName=self._declared_default("ApiKeyParameterName"),
                SecretStore="ssm",  # pragma: allowlist secret (a parameter name)
            )
        if s.schedule and s.schedule.lower() not in NO_SCHEDULE:
            parameters["CycleSchedule"] = s.schedule
        if s.max_signal_age is not None and s.max_signal_age < 0:
            raise ConfigError(f"--max-signal-age {s.max_signal_age}: must be 0 (never expire) or more")
        if s.max_signal_age:
            parameters["MaxSignalAgeMinutes"] = str(s.max_signal_age)
        if s.stop_loss_pattern is not None:
            parameters["StopLossPattern"] = self._allowed("StopLossPattern", s.stop_loss_pattern, "--stop-loss-pattern")
        return parameters

    def _allowed(self, name: str, value: str, option: str) -> str:
        """Refuse a value the parameter's AllowedPattern refuses, as CloudFormation does at deploy."""
        spec = (self.template.get("Parameters") or {}).get(name) or {}
        pattern = spec.get("AllowedPattern")
        # CloudFormation matches AllowedPattern against the whole value; this one reads alike in Java and Python.
        if pattern is not None and re.fullmatch(str(pattern), value) is None:
            described = spec.get("ConstraintDescription", f"must match {pattern}")
            raise ConfigError(f"{option} {value!r}: {' '.join(str(described).split())}")
        return value

    def _csv_prices(self) -> Any:
        prices = self.settings.prices
        if not prices or prices.startswith("live:"):
            return None
        from crypto_bot.adapters.paper.exchange import CsvPrices

        return CsvPrices(Path(prices))

    def _cycle_schedule(self) -> tuple[str, Schedule | None]:
        s = self.settings
        now = datetime.now(UTC)
        if s.cycle_every is not None:
            if s.cycle_every <= 0:
                raise ConfigError(f"--cycle-every {s.cycle_every}: must be a positive number of seconds")
            return f"every {s.cycle_every:g} s", RateSchedule(timedelta(seconds=s.cycle_every), now)
        if s.schedule and s.schedule.lower() in NO_SCHEDULE:
            return "manual only (POST /_local/cycle)", None
        expression = self.parameters["CycleSchedule"]
        try:
            return f"{expression} (UTC)", parse_schedule(expression, anchor=now)
        except ValueError as e:
            raise ConfigError(f"schedule {expression!r}: {e}") from e

    def _environment(self) -> dict[str, str]:
        import os

        s = self.settings
        level = os.environ.get("LOG_LEVEL", "WARNING")
        environment = {
            "PAPER_PRICES": "live" if self._live else "alerts",
            # Offline (alert or CSV prices), the paper account keeps the paper exchange's permissive markets
            # and no fee, so the stack runs without a network and agrees with replay; with live prices it
            # reads the venue's markets and fees, as the deployed dry run does.
            "PAPER_MARKETS": "venue" if self._live else "permissive",
            "STRATEGY_CONFIG_PATH": str(s.config.resolve()),
            # No X-Ray daemon, no CloudWatch: traces off, metrics off, handler logs quiet unless asked.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LOG_LEVEL": level,
            "POWERTOOLS_LOG_LEVEL": level,
        }
        if s.max_signal_age == 0:
            # The template's parameter has MinValue 1; the handlers read 0 as "never expire".
            environment["MAX_SIGNAL_AGE_MINUTES"] = "0"
        if s.max_price_jump is not None:
            # Not a template parameter: only alert prices (never deployed, PAPER_PRICES=live) are checked with it.
            environment["MAX_PRICE_JUMP"] = str(s.max_price_jump)
        if not self._live:
            environment["FILL_TIMEOUT_SECONDS"] = "0"  # a market that cannot move: chase at once, as replay does
        return environment

    @property
    def _live(self) -> bool:
        """Say whether prices move on their own (live prices, or a venue), so fills take real waits."""
        return self.settings.exchange is not None or bool(
            self.settings.prices and self.settings.prices.startswith("live:")
        )

    def _venue(self) -> Any:
        """Return the ccxt venue the stack trades on (``--exchange``), built once, with the stack's options."""
        if self._venue_client is None:
            from crypto_bot.adapters.ccxt.exchange import CcxtExchange

            key = self.settings.api_key or {}
            self._venue_client = CcxtExchange(
                self.parameters["ExchangeName"],
                api_key=key.get("apiKey"),
                secret=key.get("secret"),
                password=key.get("password"),
                sandbox=self.settings.sandbox,
                options=self.settings.exchange_options,
            )
        return self._venue_client

    def _check_live_prices(self) -> None:
        """Fail at start, clearly, when live prices cannot be read (no network, unknown exchange)."""
        from crypto_bot.adapters.ccxt.exchange import CcxtExchange
        from crypto_bot.engine.retry import NO_RETRY

        name = self.parameters["ExchangeName"]
        symbol = self.config.symbols()[0]
        try:
            CcxtExchange(name, retry=NO_RETRY, options=self.settings.exchange_options).fetch_last_price(symbol)
        except CryptoBotError as e:
            raise ConfigError(
                f"--prices live:{name}: cannot read the {symbol} ticker ({type(e).__name__}: {e}); "
                "live prices need network access to the exchange"
            ) from e

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        port = self._httpd.server_address[1]
        return f"http://{self.settings.host}:{port}"

    def start(self) -> None:
        """Build the stack, bind the HTTP server, and start the pipe and the scheduler."""
        from crypto_bot_tools.local.aws import TemplateError, local_stack

        if self._live and self.settings.exchange is None:
            self._check_live_prices()
        ssm_values = {self.parameters["WebhookTokenParameterName"]: self.token}
        if self.settings.api_key:
            ssm_values[self.parameters["ApiKeyParameterName"]] = json.dumps(dict(self.settings.api_key))
        try:
            self.stack = self._exits.enter_context(
                local_stack(
                    self.settings.template,
                    parameters=self.parameters,
                    substitution_overrides=_LIVE_SUBSTITUTIONS if self._live else _SUBSTITUTIONS,
                    environment=self._environment(),
                    ssm_values=ssm_values,
                    retry_interval_scale=_RETRY_SCALE,
                )
            )
            # boto3 creates clients lazily and not thread-safely: make every one now, on this thread.
            for service in ("sqs", "stepfunctions", "dynamodb", "lambda", "ssm", "sns"):
                self.stack.client(service)
            self._queues = self._queue_names()
            self.emulator = self._emulator()
            self._pipes = self._pipe_sources()
            self._httpd = _HttpServer((self.settings.host, self.settings.port), _Handler, self)
        except TemplateError as e:
            self.close()
            raise ConfigError(str(e)) from e
        except OSError as e:
            self.close()
            raise ConfigError(f"cannot listen on {self.settings.host}:{self.settings.port}: {e.strerror}") from e
        except BaseException:
            self.close()
            raise
        # Import now what request threads use later: a handler running meanwhile changes sys.path.
        import crypto_bot_tools.replay  # noqa: F401

        self._spawn(self._pipe_loop, "pipe")
        if self._schedule is not None:
            self._spawn(self._schedule_loop, "schedule")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"local-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def serve_forever(self) -> None:
        """Serve HTTP on this thread until :meth:`close` (or Ctrl-C, which the caller turns into close)."""
        if self._httpd is None:
            raise RuntimeError("start the server first")
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False

    def serve_in_background(self) -> None:
        """Serve HTTP on a daemon thread."""
        self._spawn(self.serve_forever, "http")

    def close(self) -> None:
        """Stop serving, stop the pipe and the scheduler, then tear the stack down (running executions stop)."""
        self._stop.set()
        self._pipe_wakeup.set()
        if self._httpd is not None:
            if self._serving:
                self._httpd.shutdown()
            self._httpd.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=15)
        self._exits.close()

    # -- wiring ----------------------------------------------------------------------------

    def _queue_names(self) -> dict[str, str]:
        """Map each emulated queue's logical id to its physical name (the last part of its URL)."""
        resources = self.template["Resources"]
        return {
            logical_id: self.stack.resource(logical_id).rsplit("/", 1)[1]
            for logical_id, resource in resources.items()
            if resource.get("Type") == "AWS::SQS::Queue" and logical_id in self.stack.outputs
        }

    def _emulator(self) -> Any:
        from crypto_bot_tools.local.api_gateway import ApiGatewayEmulator, WebhookDefinition

        variables = {f"{logical_id}.QueueName": name for logical_id, name in self._queues.items()}
        definition = WebhookDefinition.from_template(self.template, variables, API, parameters=self.parameters)
        policy = {"AllowedSourceCidrs": list(self.settings.allow)} if self.settings.allow else None
        self._authorizer_function = self._authorizer_logical_id(definition.authorizer)
        return ApiGatewayEmulator(
            definition,
            authorizer=self._authorize,
            sqs_send=self._sqs_send,
            policy_parameters=policy,
            region=self.stack.region,
            stage=self.parameters["Stage"],
        )

    @staticmethod
    def _authorizer_logical_id(spec: Mapping[str, Any] | None) -> str | None:
        if spec is None:
            return None
        arn = spec.get("FunctionArn")
        if not (isinstance(arn, dict) and "Fn::GetAtt" in arn):
            raise ConfigError(f"the authorizer's FunctionArn {arn!r} is not `!GetAtt Function.Arn`")
        return str(arn["Fn::GetAtt"][0])

    def _authorize(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """Invoke the authorizer function (its own handler, in-process) as API Gateway does."""
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
        from botocore.exceptions import ClientError

        request_id = str(uuid.uuid4())

        def error(status: int, code: str, message: str) -> tuple[int, str]:
            body = {"Error": {"Code": code, "Message": message, "Type": "Sender"}, "RequestId": request_id}
            return status, json.dumps(body)

        if queue not in self.emulator.definition.writable_queues:
            return error(403, "AccessDenied", f"the API's role may not send to {queue}")
        logical_id = next((k for k, v in self._queues.items() if v == queue), None)
        if logical_id is None:
            return error(400, "AWS.SimpleQueueService.NonExistentQueue", f"no queue {queue}")
        action = form.get("Action")
        if action == "SendMessage":
            entries = [_Entry("", form.get("MessageBody", ""), _attributes(form, ""))]
        elif action == "SendMessageBatch":
            prefix = "SendMessageBatchRequestEntry"
            numbers = sorted({int(key.split(".")[1]) for key in form if key.startswith(f"{prefix}.")})
            entries = [
                _Entry(
                    form.get(f"{prefix}.{n}.Id", ""),
                    form.get(f"{prefix}.{n}.MessageBody", ""),
                    _attributes(form, f"{prefix}.{n}."),
                )
                for n in numbers
            ]
            if not entries:
                return error(400, "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one entry")
        else:
            return error(400, "InvalidAction", f"the action {action!r} is not valid for this endpoint")
        # What moto does not check, as the SQS API reference states it for MessageBody: at least one character,
        # and only #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
        refused = {}
        for entry in entries:
            if not entry.body:
                refused[entry.id] = ("MissingParameter", "The request must contain the parameter MessageBody.")
            elif _SQS_INVALID_CHARACTER.search(entry.body):
                refused[entry.id] = ("InvalidMessageContents", "Invalid characters found.")
        if action == "SendMessage" and refused:
            return error(400, *refused[""])
        sqs = self.stack.client("sqs")
        url = self.stack.resource(logical_id)
        try:
            if action == "SendMessage":
                [entry] = entries
                sent = sqs.send_message(
                    QueueUrl=url,
                    MessageBody=entry.body,
                    **({"MessageAttributes": entry.attributes} if entry.attributes else {}),
                )
                result: dict[str, Any] = {
                    "MD5OfMessageBody": sent.get("MD5OfMessageBody"),
                    "MD5OfMessageAttributes": sent.get("MD5OfMessageAttributes"),
                    "MessageId": sent["MessageId"],
                }
            else:
                accepted = [e for e in entries if e.id not in refused]
                sent = (
                    sqs.send_message_batch(
                        QueueUrl=url,
                        Entries=[
                            {
                                "Id": e.id,
                                "MessageBody": e.body,
                                **({"MessageAttributes": e.attributes} if e.attributes else {}),
                            }
                            for e in accepted
                        ],
                    )
                    if accepted
                    else {}
                )
                failed = [
                    {"Id": key, "Code": code, "Message": message, "SenderFault": True}
                    for key, (code, message) in refused.items()
                ]
                result = {"Successful": sent.get("Successful", []), "Failed": failed + sent.get("Failed", [])}
        except ClientError as e:
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            details = e.response.get("Error", {})
            return error(status, str(details.get("Code", "Error")), str(details.get("Message", e)))
        if logical_id in self._pipes:
            self._pipe_wakeup.set()
        response = {"ResponseMetadata": {"RequestId": request_id}, f"{action}Result": result}
        return 200, json.dumps({f"{action}Response": response})

    # -- the pipe ----------------------------------------------------------------------------

    def _pipe_sources(self) -> dict[str, int]:
        """Read the template's pipes from a queue to the state machine: source queue -> batch size."""
        sources: dict[str, int] = {}
        for resource in self.template["Resources"].values():
            if resource.get("Type") != "AWS::Pipes::Pipe":
                continue
            p = resource.get("Properties") or {}
            source, target = p.get("Source"), p.get("Target")
            if not (isinstance(source, dict) and "Fn::GetAtt" in source and target == {"Ref": STATE_MACHINE}):
                continue
            queue = str(source["Fn::GetAtt"][0])
            if queue in self._queues:
                batch = ((p.get("SourceParameters") or {}).get("SqsQueueParameters") or {}).get("BatchSize", 10)
                sources[queue] = int(batch)
        return sources

    def _pipe_loop(self) -> None:
        """Emulate the pipe: each batch from the source queue starts an execution, then is deleted."""
        sqs = self.stack.client("sqs")
        while not self._stop.is_set():
            self._pipe_wakeup.wait(timeout=1.0)
            self._pipe_wakeup.clear()
            for logical_id, batch_size in self._pipes.items():
                url = self.stack.resource(logical_id)
                while not self._stop.is_set():
                    try:
                        received = sqs.receive_message(
                            QueueUrl=url,
                            MaxNumberOfMessages=batch_size,
                            AttributeNames=["All"],
                            MessageAttributeNames=["All"],
                        )
                    except Exception as e:  # logged, and the pipe polls again: it must outlive one bad call
                        self.log(f"{_now()} pipe: cannot read {logical_id} ({type(e).__name__}: {e})")
                        break
                    messages = received.get("Messages", [])
                    if not messages:
                        break
                    self._deliver(logical_id, messages)

    def _deliver(self, logical_id: str, messages: list[dict[str, Any]]) -> None:
        sqs = self.stack.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=self.stack.resource(logical_id), AttributeNames=["QueueArn"])
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                # The shape Lambda and EventBridge Pipes deliver an SQS message attribute in.
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType"),
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn["Attributes"]["QueueArn"],
                "awsRegion": self.stack.region,
            }
            for m in messages
        ]
        try:
            self.start_cycle(records, trigger="urgent")
        except Exception as e:  # a store or botocore error: logged, and the message is not deleted
            # Left on the queue, as the pipe leaves it: visible again after the visibility timeout,
            # and in the dead-letter queue after maxReceiveCount tries.
            self.log(f"{_now()} pipe: could not start an execution ({type(e).__name__}: {e}); it stays queued")
            return
        sqs.delete_message_batch(
            QueueUrl=self.stack.resource(logical_id),
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )

    # -- the schedule ---------------------------------------------------------------------------

    def _schedule_input(self) -> Any:
        machine = self.template["Resources"][STATE_MACHINE].get("Properties") or {}
        for event in (machine.get("Events") or {}).values():
            if event.get("Type") in ("ScheduleV2", "Schedule"):
                text = (event.get("Properties") or {}).get("Input")
                return json.loads(text) if isinstance(text, str) else {"trigger": "schedule"}
        return {"trigger": "schedule"}

    def _schedule_loop(self) -> None:
        """Start an execution with the schedule's input at each firing time."""
        if self._schedule is None:
            return
        schedule_input = self._schedule_input()
        moment = datetime.now(UTC)
        while not self._stop.is_set():
            due = self._schedule.next_after(moment)
            if due is None:
                return
            if self._stop.wait(timeout=max(0.0, (due - datetime.now(UTC)).total_seconds())):
                return
            moment = due
            try:
                self.start_cycle(schedule_input, trigger="schedule")
            except Exception as e:  # a failed start must not stop the schedule; it is logged
                self.log(f"{_now()} schedule: could not start an execution ({type(e).__name__}: {e})")

    # -- cycles -----------------------------------------------------------------------------------

    def start_cycle(self, execution_input: Any, *, trigger: str) -> _Execution:
        """Start an execution of the trade-cycle state machine and watch it to its end."""
        if self.csv_prices is not None:
            self._seed_csv_prices()
        # Collect names the cycle "<kind>-<execution name>", so the name itself need not say the trigger.
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        arn = self.stack.start_execution(STATE_MACHINE, execution_input, name=name)
        execution = _Execution(arn=arn, name=name, trigger=trigger, started=time.monotonic())
        with self._lock:
            self._executions[name] = execution
        threading.Thread(target=self._watch, args=(execution,), name=f"local-watch-{name}", daemon=True).start()
        return execution

    def run_cycle(self, trigger: str = "manual", timeout: float = _CYCLE_TIMEOUT) -> dict[str, Any]:
        """Start an execution and return its detail once it has finished."""
        execution = self.start_cycle({"trigger": trigger}, trigger=trigger)
        if not execution.done.wait(timeout):
            raise TimeoutError(f"execution {execution.name} still running after {timeout} s")
        return execution.detail or {}

    def execution(self, name: str) -> dict[str, Any] | None:
        """Return an execution's detail: final once it ended, with the transitions so far while it runs."""
        with self._lock:
            known = self._executions.get(name)
        if known is not None and known.detail is not None:
            return known.detail
        arn = known.arn if known else self._execution_arn(name)
        if arn is None:
            return None
        return self._describe(arn, trigger=known.trigger if known else "external", with_cycle=False)

    def wait_for(self, name: str, timeout: float = _CYCLE_TIMEOUT) -> dict[str, Any] | None:
        """Wait for an execution the server started to finish; return its detail."""
        with self._lock:
            known = self._executions.get(name)
        if known is None:
            return self.execution(name)
        known.done.wait(timeout)
        return known.detail

    def _execution_arn(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        machine = self.stack.resource(STATE_MACHINE)
        arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
        try:
            self.stack.client("stepfunctions").describe_execution(executionArn=arn)
        except ClientError:  # an unknown name is an answer: there is no such execution
            return None
        return arn

    def _watch(self, execution: _Execution) -> None:
        try:
            self.stack.wait_for_execution(execution.arn, timeout=_CYCLE_TIMEOUT)
            execution.detail = self._describe(execution.arn, trigger=execution.trigger, with_cycle=True)
        except Exception as e:  # the watcher reports, it must not die silently
            execution.detail = {"id": execution.name, "arn": execution.arn, "status": "UNKNOWN", "error": str(e)}
        finally:
            execution.done.set()
        detail = execution.detail
        elapsed = time.monotonic() - execution.started
        cycle = detail.get("cycle") or {}
        orders = [o for o in cycle.get("orders", []) if o.get("filled")]
        equity = cycle.get("equity")
        tail = f"{len(orders)} orders filled, equity {equity}" if cycle else "nothing to do"
        if detail.get("status") != "SUCCEEDED":
            tail = f"{detail.get('error', '')}: {detail.get('cause', '')}"[:300]
        status = detail.get("status")
        self.log(f"{_now()} cycle {execution.name} ({execution.trigger}) {status} in {elapsed:.1f} s: {tail}")

    def _describe(self, arn: str, *, trigger: str, with_cycle: bool) -> dict[str, Any]:
        sfn = self.stack.client("stepfunctions")
        description = sfn.describe_execution(executionArn=arn)
        history: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(executionArn=arn, **({"nextToken": token} if token else {}))
            history.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        transitions = [
            e["stateEnteredEventDetails"]["name"] for e in history if str(e["type"]).endswith("StateEntered")
        ]
        cycle_id = _cycle_id(history)
        output = description.get("output")
        detail: dict[str, Any] = {
            "id": description["name"],
            "arn": arn,
            "trigger": trigger,
            "status": description["status"],
            "transitions": transitions,
            "started_at": _iso(description.get("startDate")),
            "stopped_at": _iso(description.get("stopDate")),
            "cycle_id": cycle_id,
            "summary": json.loads(output) if output else None,
        }
        failed = next((e for e in reversed(history) if e["type"] == "ExecutionFailed"), None)
        if failed is not None:
            details = failed.get("executionFailedEventDetails", {})
            detail["error"], detail["cause"] = details.get("error", ""), details.get("cause", "")
        if with_cycle:
            detail["cycle"] = self._cycle_json(cycle_id) if cycle_id else None
            detail["urgent"] = bool(detail["cycle"] and trigger == "urgent")
        return detail

    def _seed_csv_prices(self) -> None:
        """Put the CSV's prices at this moment into the paper account before a cycle (see README: Local stack)."""
        from crypto_bot.adapters.aws.paper_state import PaperStateStore
        from crypto_bot.adapters.paper.exchange import PaperExchange

        states = PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb"))
        now = datetime.now(UTC)
        for _attempt in range(3):
            state, version = states.load()
            exchange = (
                PaperExchange(balances={self.config.quote: self.settings.cash})
                if state is None
                else PaperExchange.from_state(state)
            )
            for symbol in self.config.symbols():
                price = self.csv_prices.at(symbol, now)
                if price is not None:
                    exchange.load_markets([symbol])
                    exchange.set_price(symbol, price)
            try:
                states.save(exchange.to_state(), version)
                return
            except StoreConflict:
                continue  # a step saved meanwhile: read it again
        self.log(f"{_now()} prices: the paper account kept changing; CSV prices not applied this time")

    # -- state ----------------------------------------------------------------------------------

    def _store(self) -> Any:
        from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore

        return DynamoDBStore(self.stack.resource("Table"), self.stack.client("dynamodb"))

    def _paper(self) -> Any:
        from crypto_bot.adapters.aws.paper_state import PaperStateStore
        from crypto_bot.adapters.paper.exchange import PaperExchange

        state, _version = PaperStateStore(self.stack.resource("Table"), self.stack.client("dynamodb")).load()
        if state is None:  # no cycle has traded yet: the account a first cycle would open
            return PaperExchange(balances={self.config.quote: self.settings.cash})
        return PaperExchange.from_state(state)

    def _cycles(self) -> list[Any]:
        """Every cycle record in the table, oldest first."""
        from crypto_bot.adapters.aws.dynamodb_store import from_item
        from crypto_bot.engine.records import CycleRecord

        dynamodb = self.stack.client("dynamodb")
        request: dict[str, Any] = {
            "TableName": self.stack.resource("Table"),
            # The lock item is (LOCK, CYCLE): cycles are the (CYCLE#<id>, CYCLE) items.
            "FilterExpression": "begins_with(pk, :prefix) AND sk = :cycle",
            "ExpressionAttributeValues": {":prefix": {"S": "CYCLE#"}, ":cycle": {"S": "CYCLE"}},
        }
        records = []
        while True:
            page = dynamodb.scan(**request)
            records += [CycleRecord.from_dict(from_item(item)) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(records, key=lambda r: (r.at, r.cycle_id))

    def _intents(self, store: Any, cycle_id: str) -> list[Any]:
        from crypto_bot.engine.records import Phase

        phases = list(Phase)
        return sorted(store.intents(cycle_id), key=lambda r: (phases.index(r.phase), r.intent.strategy))

    def _account(self) -> tuple[Mapping[str, Any], dict[str, Decimal]]:
        """Return the account's balances and the prices it is valued at: the paper account's, or the venue's."""
        if self.settings.exchange is None:
            paper = self._paper()
            return paper.fetch_balances(), dict(paper.prices)
        venue = self._venue()
        return venue.fetch_balances(), {symbol: venue.fetch_last_price(symbol) for symbol in self.config.symbols()}

    def _portfolio(self) -> tuple[Mapping[str, Any], dict[str, Decimal], Decimal, Decimal, dict[str, Any]]:
        from crypto_bot_tools.cycle import equity_and_positions

        balances, prices = self._account()
        ledger = self._store().load_ledger()
        cash, equity, positions = equity_and_positions(self.config, ledger, balances, prices)
        return balances, prices, cash, equity, positions

    def _cycle_json(self, cycle_id: str) -> dict[str, Any] | None:
        """Shape a finished cycle as ``crypto-bot replay --json`` does, with the portfolio right after it."""
        from crypto_bot_tools.cycle import CycleReport
        from crypto_bot_tools.replay import CycleResult

        store = self._store()
        record = store.get_cycle(cycle_id)
        if record is None:
            return None
        outcomes = [s for key in record.signal_keys if (s := store.get_signal(key)) is not None]
        report = CycleReport(record, outcomes, self._intents(store, cycle_id))
        _balances, _prices, cash, equity, positions = self._portfolio()
        return CycleResult(report, cash, equity, positions).to_json()

    def state(self) -> dict[str, Any]:
        """Return what ``GET /_local/state`` answers: signals, orders, positions, balances, cash, equity, executions."""
        # Executions first: whatever one reported finished has done to the table is in the rest of the answer.
        executions = self._execution_list()
        store = self._store()
        signals = [
            {
                "id": s.message_id or s.key,
                "strategy": s.strategy,
                "action": s.action,
                "status": s.status.value,
                "reason": s.reason,
                "dedupe_key": s.key,
                "received_at": _iso(s.received_at),
                "time": _iso(s.time),
                "is_stop_loss": s.is_stop_loss,
                "cycle_id": s.cycle_id,
            }
            for s in store.recent_signals(limit=100_000)
        ]
        orders = []
        for cycle in self._cycles():
            for r in self._intents(store, cycle.cycle_id):
                current = r.current_order
                orders.append(
                    {
                        "intent_id": r.intent.intent_id,
                        "client_order_id": current.client_order_id if current else r.intent.client_order_id(r.attempt),
                        "strategy": r.strategy,
                        "symbol": r.symbol,
                        "side": r.side.value,
                        "status": r.status.value,
                        "amount": to_json_number(r.intent.amount),
                        "filled": to_json_number(r.filled),
                        "price": to_json_number(r.price),
                        "cost": to_json_number(r.cost),
                        "cycle_id": cycle.cycle_id,
                        "phase": r.phase.value,
                        "attempt": r.attempt,
                        "reason": r.reason,
                    }
                )
        balances, prices, cash, equity, positions = self._portfolio()
        ledger_amounts = store.load_ledger().amounts_by_asset()
        return {
            "signals": signals,
            "orders": orders,
            "positions": {key: p.to_json() for key, p in positions.items()},
            "balances": {
                asset: {
                    "free": to_json_number(b.free),
                    "used": to_json_number(b.used),
                    "total": to_json_number(b.total),
                }
                for asset, b in balances.items()
            },
            "cash": to_json_number(cash),
            "equity": to_json_number(equity),
            "prices": {symbol: to_json_number(price) for symbol, price in sorted(prices.items())},
            # Where the balances come from: "paper", or the ccxt venue the stack trades on.
            "exchange": self.settings.exchange or "paper",
            # What the ledger says the strategies own, per asset, to read beside the balances.
            "ledger": {asset: to_json_number(amount) for asset, amount in sorted(ledger_amounts.items())},
            "executions": executions,
            "queues": self._queue_depths(),
        }

    def _execution_list(self) -> list[dict[str, Any]]:
        sfn = self.stack.client("stepfunctions")
        listed: list[dict[str, Any]] = []
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=self.stack.resource(STATE_MACHINE)):
            listed += page["executions"]
        result = []
        for item in sorted(listed, key=lambda e: e["startDate"]):
            detail = self.execution(item["name"]) or {}
            result.append(
                {
                    "id": item["name"],
                    "status": detail.get("status", item["status"]),
                    "transitions": detail.get("transitions", []),
                    "trigger": detail.get("trigger", "external"),
                    "cycle_id": detail.get("cycle_id"),
                    "started_at": _iso(item["startDate"]),
                    "arn": item["executionArn"],
                }
            )
        return result

    def _queue_depths(self) -> dict[str, dict[str, int]]:
        sqs = self.stack.client("sqs")
        depths = {}
        for logical_id in self._queues:
            attributes = sqs.get_queue_attributes(
                QueueUrl=self.stack.resource(logical_id),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            depths[logical_id] = {
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            }
        return depths


# Characters SQS refuses in a message body (SendMessage, API reference): anything outside #x9 | #xA | #xD |
# #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
_SQS_INVALID_CHARACTER: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class _Entry:
    """One message of an SQS send: its batch entry id ("" for SendMessage), body and attributes."""

    id: str
    body: str
    attributes: dict[str, dict[str, str]]


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


def _now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def _iso(moment: Any) -> str | None:
    if not isinstance(moment, datetime):
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _cycle_id(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Read the cycle id from Collect's output (the first state: every execution that opened a cycle has it)."""
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") == "Collect":
            try:
                output = json.loads(details.get("output") or "{}")
            except ValueError:
                return None
            cycle = output.get("cycle") if isinstance(output, dict) else None
            return str(cycle["cycle_id"]) if isinstance(cycle, dict) and "cycle_id" in cycle else None
    return None


# ---------------------------------------------------------------------------------------------- HTTP


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Found by the load test (tests/e2e/test_burst.py): socketserver's listen backlog of 5 reset connections when
    # 16 clients posted at once on a busy machine. A reset is not a 5xx, so TradingView would not resend: lost.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], local: LocalServer) -> None:
        self.local = local
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request: the webhook through the emulator, or a local-only endpoint."""

    server: _HttpServer
    server_version = "crypto-bot-local"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Silence http.server's own log: each request is logged once, without its query string."""

    def _dispatch(self) -> None:
        local = self.server.local
        parsed = urllib.parse.urlsplit(self.path)
        started = time.monotonic()
        try:
            status, text, headers, outcome = self._answer(parsed)
        except Exception as e:
            # Found by the webhook fuzzer: an exception here dropped the connection without an answer. API Gateway
            # always answers; a bug of the emulator is a 500 with a reason, and the log says what failed.
            local.log(f"{_now()} {self.command} {parsed.path} failed: {type(e).__name__}: {str(e)[:200]}")
            reason = json.dumps(f"the local server failed: {type(e).__name__}")
            status, text, outcome = 500, f'{{"accepted": false, "reason": {reason}}}', "failed"
            headers = {"Content-Type": "application/json"}
            self.close_connection = True  # the request's body may be unread
        data = text.encode("utf-8")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        elapsed = (time.monotonic() - started) * 1000
        # The path only: the query string holds the token, which never reaches a log.
        where = f"{self.client_address[0]} {self.command} {parsed.path}"
        local.log(f"{_now()} {where} {status} {elapsed:.0f} ms {outcome}".rstrip())

    def _answer(self, parsed: urllib.parse.SplitResult) -> tuple[int, str, dict[str, str], str]:
        """Read the request and answer it: status, body, headers, and what happened (for the log)."""
        from crypto_bot_tools.local.api_gateway import PAYLOAD_LIMIT

        local = self.server.local
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        text = (self.headers.get("Content-Length") or "0").strip()
        # RFC 9110: Content-Length is 1*DIGIT. Anything else ("lots", "-5") is a malformed request, which the HTTP
        # front end answers 400 before API Gateway sees it: a body of unknown length must not become an empty alert.
        if not text.isascii() or not text.isdigit():
            self.close_connection = True  # where the body ends is unknown
            return 400, '{"accepted": false, "reason": "Content-Length is not a number"}', {}, "bad Content-Length"
        length = int(text)
        if length > PAYLOAD_LIMIT and not parsed.path.startswith("/_local/"):
            # Over API Gateway's payload limit: never held in memory, only read through so that the client,
            # still sending, gets the 413 instead of a reset connection.
            remaining = length
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, 1 << 20))):
                remaining -= len(chunk)
            body = b""
        else:
            body = self.rfile.read(length) if length > 0 else b""
        if parsed.path.startswith("/_local/"):
            status, payload = self._local(parsed.path, query, body)
            return status, json.dumps(payload, default=str), {"Content-Type": "application/json"}, ""
        response = local.emulator.handle(
            self.command,
            parsed.path,
            query=query,
            headers={k: v for k, v in self.headers.items()},
            body=body,
            source_ip=self.client_address[0],
            content_length=length if length > PAYLOAD_LIMIT else None,
        )
        return response.status, response.body, response.headers, response.outcome

    def _local(self, path: str, query: Mapping[str, str], body: bytes) -> tuple[int, Any]:
        local = self.server.local
        try:
            if path == "/_local/state" and self.command == "GET":
                return 200, local.state()
            if path == "/_local/health" and self.command == "GET":
                return 200, {"ok": True}
            if path == "/_local/cycle" and self.command == "POST":
                options = json.loads(body) if body.strip() else {}
                trigger = str(options.get("trigger", "manual")) if isinstance(options, dict) else "manual"
                if trigger not in ("manual", "schedule"):
                    return 400, {"error": f"trigger {trigger!r}: must be manual or schedule"}
                if query.get("wait", "true").lower() == "false":
                    execution = local.start_cycle({"trigger": trigger}, trigger=trigger)
                    return 202, local.execution(execution.name)
                return 200, local.run_cycle(trigger)
            if path.startswith("/_local/executions/") and self.command == "GET":
                name = path.removeprefix("/_local/executions/")
                detail = local.wait_for(name) if query.get("wait") == "true" else local.execution(name)
                return (200, detail) if detail is not None else (404, {"error": f"no execution {name}"})
        except ValueError as e:
            return 400, {"error": f"the body is not JSON: {e}"}
        except TimeoutError as e:
            return 504, {"error": str(e)}
        except Exception as e:  # answered and logged: a local endpoint's bug must not look like a dropped connection
            local.log(f"{_now()} {self.command} {path} failed: {type(e).__name__}: {e}")
            return 500, {"error": f"{type(e).__name__}: {e}"}
        return 404, {"error": f"no local endpoint {self.command} {path}"}


def print_banner(server: LocalServer, out: Any = None) -> None:
    """Print where the webhook listens, the token, and how cycles run."""
    out = out or sys.stdout
    s = server.settings
    prices = (
        f"live {server.parameters['ExchangeName']} tickers"
        if s.prices and s.prices.startswith("live:")
        else f"CSV {s.prices}"
        if s.prices
        else "the last alert price per symbol"
    )
    venue = "paper exchange" if s.exchange is None else f"{s.exchange}{' testnet' if s.sandbox else ''} via ccxt"
    if s.exchange is not None:
        prices = f"the {s.exchange} venue's own"
    account = f"{s.cash} {server.config.quote}" if s.exchange is None else f"the {s.exchange} account's balances"
    lines = [
        f"crypto-bot local: the deployed pipeline on {server.url} (moto, {venue}; no AWS account)",
        f"  webhook   POST {server.url}/signals?token={server.token}",
        f"  token     {server.token}",
        f"  state     GET  {server.url}/_local/state",
        f"  cycle     POST {server.url}/_local/cycle",
        f"  cycles    {server.schedule_description}; stop losses run at once",
        f"  prices    {prices}",
        f"  account   {s.mode} mode, {account}, strategies from {s.config}",
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), file=out, flush=True)
