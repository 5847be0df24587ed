"""Telegram: post the trader's notifications to one chat through the Bot API's sendMessage.

Telegram Bot API (https://core.telegram.org/bots/api):
- "Making requests": ``https://api.telegram.org/bot<token>/METHOD_NAME``, POST with application/json; the answer
  is a JSON object with ``ok`` and ``result`` or, when ``ok`` is false, ``error_code``, ``description`` and
  optionally ``parameters`` (ResponseParameters).
- ResponseParameters.retry_after: "In case of exceeding flood control, the number of seconds left to wait before
  the request can be repeated" (error_code 429).
- sendMessage: ``chat_id`` and ``text``, "1-4096 characters after entities parsing"; no parse_mode is sent, so
  the text is plain and nothing in it is read as markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from crypto_bot.adapters.chat.delivery import (
    ChannelError,
    Redactor,
    SecretSource,
    Sleep,
    WaitBudget,
    deliver_with_one_retry,
    post_json,
    retry_wait,
    split_text,
)

DEFAULT_API_URL: Final = "https://api.telegram.org"
MAX_TEXT: Final = 4096  # sendMessage's text limit
MAX_PARTS: Final = 3  # a cycle summary is far shorter; past 3 messages the rest is cut, with a note


class TelegramChannel:
    """One chat of one bot; the token and the chat id are read (cached) at each send."""

    name: Final = "telegram"

    def __init__(self, token: SecretSource, chat_id: SecretSource, *, api_url: str, sleep: Sleep) -> None:
        self._token = token
        self._chat_id = chat_id
        self.api_url = api_url.rstrip("/")
        self.sleep = sleep

    def secrets(self) -> list[str]:
        """Return the bot token (the chat id is not a credential)."""
        return [self._token().strip()]

    def send(self, text: str) -> None:
        """Post ``text`` (split at 4096 characters), the token redacted from it; ChannelError when refused."""
        token, chat_id = self._token().strip(), self._chat_id().strip()
        redact = Redactor([token])
        url = f"{self.api_url}/bot{token}/sendMessage"
        parts = split_text(redact(text), MAX_TEXT, MAX_PARTS)
        budget = WaitBudget()
        for number, part in enumerate(parts, 1):
            where = f"telegram sendMessage (part {number} of {len(parts)})"

            def attempt(part: str = part, where: str = where) -> float | None:
                return self._attempt(url, chat_id, part, where, redact)

            deliver_with_one_retry(attempt, self.sleep, where, budget)

    @staticmethod
    def _attempt(url: str, chat_id: str, text: str, where: str, redact: Redactor) -> float | None:
        answer = post_json(url, {"chat_id": chat_id, "text": text}, where=where, redact=redact)
        data = answer.json()
        reply: Mapping[str, object] = data if isinstance(data, Mapping) else {}
        if answer.status == 200 and reply.get("ok") is True:
            return None
        code = reply.get("error_code", answer.status)
        if answer.status == 429 or code == 429:
            parameters = reply.get("parameters")
            after = parameters.get("retry_after") if isinstance(parameters, Mapping) else None
            return retry_wait(after, where)
        description = reply.get("description", answer.body[:200].decode("utf-8", "replace"))
        # 5xx: Telegram's side; 4xx (400 bad chat id, 401 bad token, 403 bot blocked, 404): fixed only by the trader.
        raise ChannelError(
            redact(f"{where}: HTTP {answer.status}, error_code={code!r}: {description!r}"),
            transient=answer.status >= 500,
        )
