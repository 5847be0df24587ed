"""What the chat channels share: one JSON POST over urllib, the channel errors, secret redaction, and splitting.

A channel's URL carries its secret (Telegram's bot token is in the path, a Discord webhook's token too), so
every message raised here is passed through :class:`Redactor` first, and no vendor exception is chained
(``from None``): urllib's exceptions keep the URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from crypto_bot.domain.errors import CryptoBotError

# Each POST waits at most this long for an answer; two channels and one retry each stay well inside the
# forwarder's 60 s timeout (template.yaml).
REQUEST_TIMEOUT: Final = 5.0
# A 429's retry_after is honoured once per part when it fits in what is left of this much waiting per message (all
# its parts together); longer, the delivery is counted as failed. With the requests' timeouts, two channels of
# three parts each stay inside the forwarder's 60 s timeout.
MAX_RETRY_WAIT: Final = 5.0
REDACTED: Final = "[redacted]"

Sleep = Callable[[float], None]
SecretSource = Callable[[], str]
"""Read a secret (cached by the secrets adapter); ConfigError when it cannot be read."""


class ChannelError(CryptoBotError):
    """A chat channel did not take the message. ``transient``: a later attempt may succeed (429, 5xx, network)."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Redactor:
    """Replace every secret a channel knows with ``[redacted]`` in a text (a message, an error)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: its status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except (ValueError, UnicodeDecodeError):
            return None


def post_json(url: str, body: Mapping[str, Any], *, where: str, redact: Redactor) -> Answer:
    """POST ``body`` as JSON; return any HTTP answer, raise a transient ChannelError when none came."""
    if not url.startswith(("https://", "http://")):
        raise ChannelError(f"{where}: the URL {redact(url)!r} is not http(s)")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "crypto-bot"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:  # noqa: S310 (checked above)
            return Answer(response.status, _headers(response.headers), response.read())
    except urllib.error.HTTPError as e:
        with e:
            return Answer(e.code, _headers(e.headers), e.read())
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ChannelError(redact(f"{where}: no answer ({type(e).__name__}: {reason})"), transient=True) from None


def _headers(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def utf16_length(text: str) -> int:
    """Count UTF-16 code units: what Discord counts, and never fewer than the characters Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int, max_parts: int) -> list[str]:
    """Cut ``text`` into at most ``max_parts`` pieces of at most ``limit`` UTF-16 units, at line ends if possible.

    Text left over after the last piece is cut off, and that piece ends with a note saying so.
    """
    if limit < 80 or max_parts < 1:
        raise ValueError(f"limit={limit}, max_parts={max_parts}: need a limit of 80 or more and one part or more")
    parts: list[str] = []
    rest = text
    while rest and len(parts) < max_parts:
        if utf16_length(rest) <= limit:
            parts.append(rest)
            rest = ""
            break
        piece = _prefix(rest, limit)
        cut = piece.rfind("\n")
        if cut > limit // 2:
            piece = piece[: cut + 1]
        parts.append(piece.rstrip("\n"))
        rest = rest[len(piece) :].lstrip("\n")
    if rest:
        note = "\n[... cut: the whole message is in the e-mail]"
        parts[-1] = _prefix(parts[-1], limit - utf16_length(note)) + note
    return parts or [""]


def _prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units (never half a surrogate pair)."""
    if utf16_length(text) <= limit:
        return text
    count, end = 0, 0
    for end, char in enumerate(text):  # noqa: B007 (end is read after the loop)
        count += 2 if ord(char) > 0xFFFF else 1
        if count > limit:
            return text[:end]
    return text


def retry_wait(seconds: object, where: str) -> float:
    """Read a rate limit's retry_after (seconds, a number); ChannelError naming the value when it is not one."""
    value = -1.0
    if isinstance(seconds, int | float | str) and not isinstance(seconds, bool):
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
    if not value >= 0:  # also refuses NaN
        raise ChannelError(f"{where}: 429 with retry_after={seconds!r}, not a number of seconds", transient=True)
    return value


class WaitBudget:
    """What is left of the :data:`MAX_RETRY_WAIT` seconds one message (all its parts) may wait for rate limits."""

    def __init__(self, seconds: float = MAX_RETRY_WAIT) -> None:
        self.left = seconds


def deliver_with_one_retry(
    attempt: Callable[[], float | None], sleep: Sleep, where: str, budget: WaitBudget | None = None
) -> None:
    """Run ``attempt`` (None: delivered; a number: rate limited for that many seconds), once more after a short wait.

    A wait longer than what is left of ``budget``, or a second refusal, is a transient ChannelError: counted by the
    caller, never slept through (a cycle's notification is not worth a Lambda's minute).
    """
    budget = budget or WaitBudget()
    wait = attempt()
    if wait is None:
        return
    if wait > budget.left:
        raise ChannelError(
            f"{where}: rate limited, retry_after={wait:g} s is more than the {budget.left:g} s of the "
            f"{MAX_RETRY_WAIT:g} s a message may wait that are left",
            transient=True,
        )
    budget.left -= wait
    sleep(wait)
    again = attempt()
    if again is not None:
        raise ChannelError(f"{where}: rate limited again after waiting {wait:g} s (now {again:g} s)", transient=True)
