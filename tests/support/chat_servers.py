"""Emulated Telegram Bot API and Discord webhook servers on 127.0.0.1, for the chat channels' tests.

Each server answers as its vendor documents, the inconvenient answers included; each behaviour names its source.

Telegram Bot API (https://core.telegram.org/bots/api):
- "Making requests": ``https://api.telegram.org/bot<token>/METHOD_NAME``; the answer is a JSON object whose ``ok``
  says whether it worked, with ``result``, or with ``error_code`` and ``description`` and, for flood control,
  ``parameters.retry_after`` (ResponseParameters). The API also takes GET and form bodies; the emulator takes
  only what the adapter sends (a POST of application/json), so a change to that is seen.
- sendMessage: ``chat_id`` and ``text`` ("1-4096 characters after entities parsing").
- The descriptions of the errors ("Unauthorized", "Bad Request: chat not found", "Bad Request: message is too
  long") are the ones the Bot API returns (not in the reference; seen in every client library's tests).

Discord (https://discord.com/developers/docs/resources/webhook#execute-webhook, .../topics/rate-limits):
- ``POST /api/webhooks/{id}/{token}`` with JSON ``content`` of at most 2000 characters; 204 No Content, or 200
  with the message object when ``?wait=true``.
- A 429 carries ``Retry-After`` (seconds) and a JSON body with ``retry_after`` (seconds, a float) and
  ``global``; errors are JSON ``{"code": ..., "message": ...}`` (JSON error codes: 10015 Unknown Webhook,
  50027 Invalid Webhook Token, 50006 Cannot send an empty message, 50035 Invalid Form Body, 50109 invalid JSON).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ChatServer:
    """The common part: a threaded HTTP server recording each request, with canned answers queued by a test."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.delivered: list[str] = []
        self.queued: list[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self._serve()

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with server._lock:
                    server.requests.append(request)
                    reply = server.queued.pop(0) if server.queued else server.answer(request)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                if reply.body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
                return  # the requests are recorded; stderr stays quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these, whatever they are (then as documented again)."""
        with self._lock:
            self.queued.extend(replies)

    @contextmanager
    def running(self) -> Iterator[ChatServer]:
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join(5)

    def every_byte(self) -> bytes:
        """Everything the server was sent (paths, headers and bodies), to look for secrets in."""
        return b"\n".join(f"{r.method} {r.path} {r.query} {r.headers}".encode() + b"\n" + r.body for r in self.requests)


class TelegramServer(ChatServer):
    """One bot (its token) that may post to one chat."""

    def __init__(self, token: str, chat_id: str) -> None:
        super().__init__()
        self.token = token
        self.chat_id = chat_id

    @staticmethod
    def refusal(code: int, description: str, **parameters: Any) -> Reply:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return Reply(code, body)

    @classmethod
    def flood(cls, retry_after: int) -> Reply:
        """sendMessage's flood control: 429 with parameters.retry_after (whole seconds)."""
        return cls.refusal(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)

    def answer(self, request: Request) -> Reply:
        prefix = f"/bot{self.token}/"
        if not request.path.startswith("/bot"):
            return self.refusal(404, "Not Found")
        if not request.path.startswith(prefix):
            return self.refusal(401, "Unauthorized")
        if request.path[len(prefix) :] != "sendMessage":
            return self.refusal(404, "Not Found: method not found")
        if request.method != "POST" or not request.headers.get("content-type", "").startswith("application/json"):
            return self.refusal(400, "Bad Request: this emulator takes a POST of application/json only")
        try:
            body = request.json()
        except ValueError:
            return self.refusal(400, "Bad Request: can't parse JSON")
        if str(body.get("chat_id")) != self.chat_id:
            return self.refusal(400, "Bad Request: chat not found")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return self.refusal(400, "Bad Request: message text is empty")
        if utf16_length(text) > 4096:
            return self.refusal(400, "Bad Request: message is too long")
        self.delivered.append(text)
        message = {"message_id": len(self.delivered), "chat": {"id": self.chat_id}, "date": 0, "text": text}
        return Reply(200, {"ok": True, "result": message})


class DiscordServer(ChatServer):
    """One incoming webhook: its id and token are the last two parts of its URL."""

    def __init__(self, webhook_id: str, token: str) -> None:
        super().__init__()
        self.webhook_id = webhook_id
        self.token = token
        self.webhook_url = f"{self.url}/api/webhooks/{webhook_id}/{token}"
        self.bodies: list[dict[str, Any]] = []

    @staticmethod
    def error(status: int, code: int, message: str, **extra: Any) -> Reply:
        return Reply(status, {"code": code, "message": message, **extra})

    @staticmethod
    def rate_limited(retry_after: float, *, is_global: bool = False) -> Reply:
        """The documented 429: Retry-After in seconds, and retry_after (a float) and global in the body."""
        headers = {"Retry-After": str(math.ceil(retry_after))}
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        return Reply(429, body, headers)

    def answer(self, request: Request) -> Reply:
        parts = request.path.removeprefix("/api/webhooks/").split("/")
        if not request.path.startswith("/api/webhooks/") or len(parts) != 2 or parts[0] != self.webhook_id:
            return self.error(404, 10015, "Unknown Webhook")
        if parts[1] != self.token:
            return self.error(401, 50027, "Invalid Webhook Token")
        if request.method != "POST":
            return self.error(405, 0, "405: Method Not Allowed")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self.error(400, 50006, "Cannot send an empty message")
        try:
            body = request.json()
        except ValueError:
            return self.error(400, 50109, "The request body contains invalid JSON.")
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            return self.error(400, 50006, "Cannot send an empty message")
        if utf16_length(content) > 2000:
            too_long = {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
            errors = {"content": {"_errors": [too_long]}}
            return self.error(400, 50035, "Invalid Form Body", errors=errors)
        self.delivered.append(content)
        self.bodies.append(body)
        if request.query.get("wait") == ["true"]:
            return Reply(200, {"id": str(len(self.delivered)), "content": content, "webhook_id": self.webhook_id})
        return Reply(204)
