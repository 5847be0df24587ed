"""Discord: post the trader's notifications to one channel through an incoming webhook.

Discord developer docs:
- Execute Webhook (https://discord.com/developers/docs/resources/webhook#execute-webhook):
  ``POST /webhooks/{webhook.id}/{webhook.token}`` with JSON ``content`` ("the message contents, up to 2000
  characters"); ``?wait=true`` "waits for server confirmation of message send before response" and answers 200 with
  the message, where without it 204 No Content comes back even for a message that was not saved.
  ``allowed_mentions`` with an empty ``parse`` list: an ``@everyone`` in a strategy's comment pings no one.
- Rate limits (https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit): a 429 carries a
  ``Retry-After`` header and a JSON body with ``retry_after`` ("the number of seconds to wait", a float) and
  ``global``. (discord/discord-api-docs#4722 reports milliseconds seen once; the bounded wait covers either.)
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

DEFAULT_API_URL: Final = "https://discord.com/api/webhooks/"
MAX_CONTENT: Final = 2000  # Execute Webhook's content limit
MAX_PARTS: Final = 3  # a cycle summary is far shorter; past 3 messages the rest is cut, with a note


class DiscordChannel:
    """One webhook; its URL (which holds the webhook's token) is read (cached) at each send."""

    name: Final = "discord"

    def __init__(self, webhook_url: SecretSource, *, api_url: str, sleep: Sleep) -> None:
        self._webhook_url = webhook_url
        self.api_url = api_url
        self.sleep = sleep

    def secrets(self) -> list[str]:
        """Return the webhook's URL and its token, the URL's last part."""
        webhook = self._webhook_url().strip()
        return [webhook, webhook.rstrip("/").rsplit("/", 1)[-1]]

    def send(self, text: str) -> None:
        """Post ``text`` (split at 2000 characters), the webhook's URL redacted from it; ChannelError when refused."""
        webhook = self._webhook_url().strip()
        token = webhook.rstrip("/").rsplit("/", 1)[-1]
        redact = Redactor([webhook, webhook.removeprefix(self.api_url), token])
        if not webhook.startswith(self.api_url) or webhook == self.api_url:
            # The URL is the secret: only its start is said, enough to see a typo or a foreign host.
            raise ChannelError(f"discord: the webhook URL ({webhook[:24]!r}...) must start with {self.api_url!r}")
        url = webhook + ("&" if "?" in webhook else "?") + "wait=true"
        parts = split_text(redact(text), MAX_CONTENT, MAX_PARTS)
        budget = WaitBudget()
        for number, part in enumerate(parts, 1):
            where = f"discord webhook (part {number} of {len(parts)})"

            def attempt(part: str = part, where: str = where) -> float | None:
                return self._attempt(url, part, where, redact)

            deliver_with_one_retry(attempt, self.sleep, where, budget)

    @staticmethod
    def _attempt(url: str, text: str, where: str, redact: Redactor) -> float | None:
        body = {"content": text, "allowed_mentions": {"parse": []}}
        answer = post_json(url, body, where=where, redact=redact)
        if answer.status in (200, 204):
            return None
        data = answer.json()
        reply: Mapping[str, object] = data if isinstance(data, Mapping) else {}
        if answer.status == 429:
            return retry_wait(reply.get("retry_after", answer.headers.get("retry-after")), where)
        message = reply.get("message", answer.body[:200].decode("utf-8", "replace"))
        # 5xx: Discord's side; 4xx (400 bad body, 401/404 a deleted webhook or a wrong token): fixed only by the trader.
        raise ChannelError(
            redact(f"{where}: HTTP {answer.status}, code={reply.get('code')!r}: {message!r}"),
            transient=answer.status >= 500,
        )
