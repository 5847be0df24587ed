"""The webhook's Lambda REQUEST authorizer: check ``?token=`` and answer with an IAM policy.

TradingView cannot sign requests or send headers, so the secret travels in the query
string. It is compared in constant time with the SSM SecureString value and never
logged: :class:`Decision` carries a reason, not the token.

API Gateway turns the answers into status codes: an Allow policy lets the request
through, a Deny policy is a 403, and the error message ``Unauthorized`` is a 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

# Fetches the expected token (the SSM SecureString in Lambda, a constant in tests).
TokenSource = Callable[[], str]
Effect = Literal["Allow", "Deny"]

TOKEN_PARAMETER: Final = "token"  # noqa: S105 (the query parameter's name, not a secret)
# The one caller there is; the principal carries no secret, so it may appear in access logs.
PRINCIPAL_ID: Final = "tradingview"


class Unauthorized(Exception):
    """No token at all: API Gateway answers 401 when an authorizer fails with exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@dataclass(frozen=True)
class Decision:
    """What the authorizer decided, and why, in words that are safe to log and to return."""

    allowed: bool
    reason: str
    policy: dict[str, Any] = field(repr=False)


def tokens_match(presented: str, expected: str) -> bool:
    """Compare two tokens in constant time; an empty expected token matches nothing."""
    if not expected:
        return False
    # compare_digest refuses non-ASCII str, so compare the UTF-8 bytes.
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def policy_document(effect: Effect, method_arn: str, context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the authorizer answer: an IAM policy on one method ARN, plus context for the gateway responses."""
    answer: dict[str, Any] = {
        "principalId": PRINCIPAL_ID,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
    }
    if context:
        answer["context"] = dict(context)
    return answer


def presented_token(event: Mapping[str, Any]) -> str | None:
    """Return the ``token`` query parameter of a REQUEST authorizer event, or None when absent."""
    query = event.get("queryStringParameters") or {}
    token = query.get(TOKEN_PARAMETER) if isinstance(query, Mapping) else None
    return token if isinstance(token, str) and token else None


def authorize(event: Mapping[str, Any], token_source: TokenSource) -> Decision:
    """Decide one REQUEST authorizer event; raise :class:`Unauthorized` when it has no token.

    The expected token is fetched only when a token was presented, so requests without
    one cost no SSM call.
    """
    method_arn = str(event.get("methodArn", ""))
    token = presented_token(event)
    if token is None:
        raise Unauthorized()
    if tokens_match(token, token_source()):
        reason = "token accepted"
        return Decision(True, reason, policy_document("Allow", method_arn, {"reason": reason}))
    reason = "invalid token"
    return Decision(False, reason, policy_document("Deny", method_arn, {"reason": reason}))
