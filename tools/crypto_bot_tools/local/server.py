"""``crypto-bot local``: the deployed pipeline on one machine, behind a local HTTP server.

:class:`LocalServer` builds template.yaml's resources under moto (:func:`crypto_bot_tools.local.stack.local_stack`:
table, queues, parameters, topic, the real handlers, the real state machine definition) and wires the
parts that emulate what moto does not run by itself:

* :mod:`~crypto_bot_tools.local.webhook`: the webhook API (API Gateway's emulator, read from the same template);
* :mod:`~crypto_bot_tools.local.eventbridge`: the pipe from the urgent queue and the cycle schedule;
* :mod:`~crypto_bot_tools.local.executions`: executions started, watched and described;
* :mod:`~crypto_bot_tools.local.state`: what ``GET /_local/state`` reports;
* :mod:`~crypto_bot_tools.local.http`: the HTTP front and its routes.

:mod:`~crypto_bot_tools.local.settings` derives the stack from the options. The paper exchange trades
in place of a real one unless ``--exchange`` names a venue (:mod:`~crypto_bot_tools.local.account`).
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.errors import ConfigError
from crypto_bot_tools.local.executions import STATE_MACHINE, Execution
from crypto_bot_tools.local.log import log_to_stdout
from crypto_bot_tools.local.settings import LocalSettings, StackPlan, default_template

if TYPE_CHECKING:
    from crypto_bot_tools.dashboard.app import Dashboard
    from crypto_bot_tools.local.eventbridge import Pipe, Scheduler
    from crypto_bot_tools.local.executions import Executions
    from crypto_bot_tools.local.http import HttpServer
    from crypto_bot_tools.local.state import StateReader
    from crypto_bot_tools.local.webhook import Webhook

__all__ = ["LocalServer", "LocalSettings", "default_template", "print_banner"]

# Wait states shortened through the template's own substitutions. With alert or CSV prices the market
# does not move during a cycle (as in replay): an order that did not fill at once never will, so it is
# chased at once. Live prices move: fills are checked every few seconds, as deployed, only sooner.
_SUBSTITUTIONS: Final = {"ReconcileWaitSeconds": "0", "LockWaitSeconds": "1"}
_LIVE_SUBSTITUTIONS: Final = {"ReconcileWaitSeconds": "3", "LockWaitSeconds": "1"}
# Step Functions' Retry intervals (2 s and up) scaled down the same way.
_RETRY_SCALE: Final = 0.1
_SERVICES: Final = ("sqs", "stepfunctions", "dynamodb", "lambda", "ssm", "sns")
DASHBOARD_REFRESH: Final = 2.0  # seconds between the dashboard's updates: a local stack costs nothing to read


@dataclass(frozen=True)
class _Parts:
    """What :meth:`LocalServer.start` built around the stack."""

    executions: Executions
    reader: StateReader
    pipe: Pipe
    scheduler: Scheduler | None
    webhook: Webhook
    httpd: HttpServer


class LocalServer:
    """The local stack behind an HTTP server; use as a context manager, then :meth:`serve_forever`."""

    def __init__(self, settings: LocalSettings, *, log: Callable[[str], None] = log_to_stdout) -> None:
        self.settings = settings
        self.log = log
        self.token = settings.token or secrets.token_urlsafe(24)
        self.plan = StackPlan.build(settings)
        self.parameters = self.plan.parameters
        self.config = self.plan.config
        self.schedule_description = self.plan.schedule_description
        self.increment = self.plan.increment
        self.stack: Any = None
        self._parts: _Parts | None = None
        self._exits = ExitStack()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serving = False
        self._dashboard: Dashboard | None = None
        self._dashboard_lock = threading.Lock()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def parts(self) -> _Parts:
        """Return the running parts; raise RuntimeError before :meth:`start`."""
        if self._parts is None:
            raise RuntimeError("the server is not started")
        return self._parts

    @property
    def webhook(self) -> Webhook:
        """Return the webhook API in front of the stack."""
        return self.parts.webhook

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        port = self.parts.httpd.server_address[1]
        return f"http://{self.settings.host}:{port}"

    @property
    def dashboard(self) -> Dashboard:
        """Return the dashboard of this stack, served under ``/dashboard`` (made at its first request).

        It reads the stack as ``crypto-bot dashboard --local URL`` does, over this server's own endpoints.
        """
        with self._dashboard_lock:
            if self._dashboard is None:
                from crypto_bot_tools.dashboard.app import Dashboard, allowed_hosts
                from crypto_bot_tools.dashboard.reader import StackReader
                from crypto_bot_tools.ops.local_source import DASHBOARD_AGENT, LocalClient, LocalSource

                port = int(self.parts.httpd.server_address[1])
                reader = StackReader(LocalSource(LocalClient(self.url, agent=DASHBOARD_AGENT)), ttl=1.0)
                self._dashboard = Dashboard(
                    reader,
                    stack=f"local {self.url}",
                    hosts=allowed_hosts(self.settings.host, port),
                    prefix="/dashboard",
                    refresh=DASHBOARD_REFRESH,
                    log=self.log,
                )
            return self._dashboard

    def start(self) -> None:
        """Build the stack, bind the HTTP server, and start the pipe and the scheduler."""
        from crypto_bot_tools.local.account import check_live_prices
        from crypto_bot_tools.local.template import TemplateError

        if self.settings.live and self.settings.exchange is None:
            check_live_prices(self.plan)
        try:
            self._parts = parts = self._build()
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

        self._spawn(lambda: parts.pipe.run(self._stop), "pipe")
        scheduler = parts.scheduler
        if scheduler is not None:
            self._spawn(lambda: scheduler.run(self._stop), "schedule")

    def _build(self) -> _Parts:
        from crypto_bot_tools.local.account import Account
        from crypto_bot_tools.local.eventbridge import Pipe, Scheduler
        from crypto_bot_tools.local.executions import Executions
        from crypto_bot_tools.local.http import HttpServer
        from crypto_bot_tools.local.stack import local_stack
        from crypto_bot_tools.local.state import StateReader
        from crypto_bot_tools.local.webhook import Webhook

        plan, settings = self.plan, self.settings
        ssm_values = {self.parameters["WebhookTokenParameterName"]: self.token}
        if settings.api_key:
            ssm_values[self.parameters["ApiKeyParameterName"]] = json.dumps(dict(settings.api_key))
        ssm_values |= settings.chat_secrets(self.parameters["Stage"])
        self.stack = stack = self._exits.enter_context(
            local_stack(
                settings.template,
                parameters=self.parameters,
                substitution_overrides=_LIVE_SUBSTITUTIONS if settings.live else _SUBSTITUTIONS,
                environment=plan.environment,
                ssm_values=ssm_values,
                retry_interval_scale=_RETRY_SCALE,
            )
        )
        # boto3 creates clients lazily and not thread-safely: make every one now, on this thread.
        for service in _SERVICES:
            stack.client(service)
        queues = self._queue_names()
        account = Account(plan, stack, self.log)
        readers: list[StateReader] = []  # the reader needs the executions, which report cycles through it
        executions = Executions(
            stack,
            before_start=account.seed_csv_prices if plan.csv_prices is not None else lambda: None,
            cycle_json=lambda cycle_id: readers[0].cycle_json(cycle_id),
            log=self.log,
        )
        readers.append(StateReader(plan, stack, account, executions, queues))
        pipe = Pipe(plan.template, stack, queues, STATE_MACHINE, executions.start, self.log)
        scheduler = (
            None
            if plan.schedule is None
            else Scheduler(plan.template, plan.schedule, STATE_MACHINE, executions.start, self.log)
        )
        webhook = Webhook(plan, stack, queues, on_queued=pipe.wake)
        # Bound last: a request can only arrive once everything it reaches exists.
        httpd = HttpServer((settings.host, settings.port), self)
        return _Parts(executions, readers[0], pipe, scheduler, webhook, httpd)

    def _queue_names(self) -> dict[str, str]:
        """Map each emulated queue's logical id to its physical name (the last part of its URL)."""
        return {
            logical_id: self.stack.resource(logical_id).rsplit("/", 1)[1]
            for logical_id, resource in self.plan.template["Resources"].items()
            if resource.get("Type") == "AWS::SQS::Queue" and logical_id in self.stack.outputs
        }

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"local-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def serve_forever(self) -> None:
        """Serve HTTP on this thread until :meth:`close` (or Ctrl-C, which the caller turns into close)."""
        if self._parts is None:
            raise RuntimeError("start the server first")
        self._serving = True
        try:
            self._parts.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False

    def serve_in_background(self) -> None:
        """Serve HTTP on a daemon thread."""
        self._spawn(self.serve_forever, "http")

    def close(self) -> None:
        """Stop serving, stop the pipe and the scheduler, then tear the stack down (running executions stop)."""
        self._stop.set()
        if self._parts is not None:
            self._parts.pipe.wake_all()
            if self._serving:
                self._parts.httpd.shutdown()
            self._parts.httpd.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=15)
        self._exits.close()

    # -- what the HTTP front answers ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Return what ``GET /_local/state`` answers."""
        return self.parts.reader.state()

    def cycles(self, limit: int) -> dict[str, Any]:
        """Return what ``GET /_local/cycles`` answers: the newest cycle records with their intents."""
        return self.parts.reader.cycles(limit)

    def start_cycle(self, execution_input: Any, *, trigger: str) -> Execution:
        """Start an execution of the trade-cycle state machine and watch it to its end."""
        return self.parts.executions.start(execution_input, trigger)

    def run_cycle(self, trigger: str = "manual") -> dict[str, Any]:
        """Start an execution and return its detail once it has finished."""
        return self.parts.executions.run(trigger)

    def apply_controls(self, request: object) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /_local/controls``: apply a pause, resume or flatten and notify (400 for a bad request)."""
        from crypto_bot_tools.local.controls import apply_request

        return apply_request(
            request, stack=self.stack, config=self.config, config_source=str(self.settings.config), log=self.log
        )

    def execution(self, name: str) -> dict[str, Any] | None:
        """Return an execution's detail: final once it ended, with the transitions so far while it runs."""
        return self.parts.executions.detail(name)

    def wait_for(self, name: str) -> dict[str, Any] | None:
        """Wait for an execution the server started to finish; return its detail."""
        return self.parts.executions.wait_for(name)


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
        f"  controls  POST {server.url}/_local/controls (crypto-bot pause|resume|flatten --local {server.url})",
        f"  dashboard {server.url}/dashboard/ (crypto-bot dashboard --local {server.url} serves it too)",
        f"  cycles    {server.schedule_description}; stop losses run at once",
        f"  prices    {prices}",
        f"  account   {s.mode} mode, {account}, strategies from {s.config}",
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), file=out, flush=True)
