"""Lambda handler: the webhook's REQUEST authorizer (see crypto_bot.entrypoints.webhook_auth)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from crypto_bot.entrypoints.webhook_auth import TokenSource, Unauthorized, authorize

logger = Logger()


def fetch_token() -> str:
    """Read the expected token from SSM, decrypted and cached for 5 minutes per container."""
    value = parameters.get_parameter(os.environ["WEBHOOK_TOKEN_PARAMETER"], decrypt=True, max_age=300)
    return value if isinstance(value, str) else ""


# Tests replace this with a constant; the handler looks it up at each call.
token_source: TokenSource = fetch_token


# log_event=False even if POWERTOOLS_LOGGER_LOG_EVENT is set: the event holds the token.
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer one REQUEST authorizer call with an IAM policy; fail with Unauthorized (a 401) when there is no token."""
    source_ip = (event.get("requestContext") or {}).get("identity", {}).get("sourceIp")
    try:
        decision = authorize(event, token_source)
    except Unauthorized:
        logger.info("webhook token missing", extra={"ip": source_ip})
        raise
    logger.info(
        "webhook token checked", extra={"allowed": decision.allowed, "reason": decision.reason, "ip": source_ip}
    )
    return decision.policy
