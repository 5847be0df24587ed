"""Build the Lambda handler of a trade-cycle step: Powertools glue around one step function.

Each ``functions/<step>/app.py`` is one line, ``lambda_handler = step_handler("<step>")``;
everything a handler does besides calling :mod:`crypto_bot.entrypoints.steps` lives here once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.shared.functions import strtobool
from aws_lambda_powertools.utilities.typing import LambdaContext

from crypto_bot.domain.errors import CryptoBotError, ExchangeError, StoreConflict, StoreUnavailable
from crypto_bot.entrypoints import steps
from crypto_bot.entrypoints.bootstrap import App, bootstrap, boto3_clients
from crypto_bot.entrypoints.settings import Settings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
# Where a step's event carries its cycle's id (JMESPath; contracts.py): the later steps' own key, Finalize's failed
# state after a Catch, or the waiting cycle that Collect is given again after a lock wait. Powertools logs it as
# every line's correlation_id; a fresh Collect has none until its result names the cycle it opened.
CYCLE_ID_PATH = "cycle_id || failed_state.cycle.cycle_id || input.cycle.cycle_id"
STEPS: dict[str, Callable[[Any, App], Any]] = {
    "collect": steps.collect,
    "plan": steps.plan,
    "place_order": steps.place_order,
    "reconcile": steps.reconcile,
    "finalize": steps.finalize,
}


class TransientError(Exception):
    """The one error name the state machine retries: a step failed in a way a later attempt may not.

    Step Functions matches ``ErrorEquals`` against the exact ``errorType`` of the Lambda error, the class
    name, never its base classes; so without this every transient class (RateLimited, RequestTimeout,
    StoreUnavailable...) would be listed in every Retry. The price: the execution history's error name is
    ``TransientError`` for all of them, and the original class is only in the cause, as the message's
    first word (``"RateLimited: 429 Too Many Requests"``); the Lambda runtime's stack trace in the cause is
    the handler's, not the original's (that one is in the function's log, from the handler's warning).
    """


def wire_error(error: Exception) -> Exception:
    """Return the exception a step's handler raises for ``error``: a :class:`TransientError` if a retry may help."""
    transient = isinstance(error, StoreUnavailable | StoreConflict) or (
        isinstance(error, ExchangeError) and error.transient
    )
    return TransientError(f"{type(error).__name__}: {error}") if transient else error


def step_handler(step: str) -> Handler:
    """Set up logging, tracing, metrics, the settings and the adapters once (at import, per container)."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    run = STEPS[step]
    logger = Logger()
    metrics = Metrics()
    app = bootstrap(Settings.from_env(os.environ), boto3_clients())

    # Powertools writes the ColdStart metric even with POWERTOOLS_METRICS_DISABLED (3.x: single_metric does not
    # check it), onto stdout, where the local stack's `demo --json` prints its cycles; so it follows that switch here.
    @metrics.log_metrics(capture_cold_start_metric=not is_metrics_disabled())
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            result = run(event, app)
        except CryptoBotError as e:
            wired = wire_error(e)
            if wired is e:
                raise
            # The runtime reports only the raised exception's own frames: the original's are logged here.
            logger.warning(f"{step} failed; raised as TransientError for the Retry", exc_info=e)
            raise wired from e
        for name, value in steps.metrics_of(step, result):
            unit = MetricUnit.NoUnit if name.endswith("Bps") else MetricUnit.Count
            metrics.add_metric(name=name, unit=unit, value=value)
        if step == "collect":
            logger.set_correlation_id(result["cycle_id"])
        # Ids lists can be long; the counts next to them say enough in a log line.
        logger.info(f"{step} done", extra={k: v for k, v in result.items() if k != "intent_ids"})
        return result

    # Creating a Tracer imports the X-Ray SDK and patches botocore and requests: tens of ms of every cold
    # start (docs/performance.md, "Tracer on"), paid even when Powertools then disables it. Its only gain is a
    # subsegment per AWS and exchange call; Lambda's active tracing (template Globals) records each invocation's
    # segments without the SDK. So the Tracer is built only when POWERTOOLS_TRACE_DISABLED, Powertools' own
    # switch, says tracing is on; the template turns it off, and setting it to "false" brings the subsegments back.
    traced: Handler = lambda_handler
    if not strtobool(os.environ.get("POWERTOOLS_TRACE_DISABLED", "false")):
        traced = Tracer().capture_lambda_handler(lambda_handler)
    return logger.inject_lambda_context(traced, correlation_id_path=CYCLE_ID_PATH)
