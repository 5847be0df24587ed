"""Lambda handler: the collect step of the trade cycle (see crypto_bot.aws.steps.collect)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from crypto_bot.aws import steps
from crypto_bot.aws.runtime import Runtime

logger = Logger()
tracer = Tracer()
metrics = Metrics()
runtime = Runtime.from_env()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = steps.collect(event, runtime)
    for name, value in steps.metrics_of("collect", result):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("collect done", extra={k: v for k, v in result.items() if k != "intent_ids"})
    return result
