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
from aws_lambda_powertools.shared.functions import strtobool
from aws_lambda_powertools.utilities.typing import LambdaContext

from crypto_bot.entrypoints import steps
from crypto_bot.entrypoints.bootstrap import App, bootstrap, boto3_clients
from crypto_bot.entrypoints.settings import Settings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
STEPS: dict[str, Callable[[Any, App], Any]] = {
    "collect": steps.collect,
    "plan": steps.plan,
    "place_order": steps.place_order,
    "reconcile": steps.reconcile,
    "finalize": steps.finalize,
}


def step_handler(step: str) -> Handler:
    """Set up logging, tracing, metrics, the settings and the adapters once (at import, per container)."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    run = STEPS[step]
    logger = Logger()
    metrics = Metrics()
    app = bootstrap(Settings.from_env(os.environ), boto3_clients())

    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        result = run(event, app)
        for name, value in steps.metrics_of(step, result):
            unit = MetricUnit.NoUnit if name.endswith("Bps") else MetricUnit.Count
            metrics.add_metric(name=name, unit=unit, value=value)
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
    return logger.inject_lambda_context(traced)
