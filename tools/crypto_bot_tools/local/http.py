"""The local stack's HTTP front: the webhook through API Gateway's emulator, and the ``/_local/*`` endpoints.

``GET /_local/state`` reports the state, ``GET /_local/cycles`` the cycle records with their intents,
``GET /_local/health`` says the server is up, ``POST /_local/cycle``
runs a cycle now, ``POST /_local/controls`` pauses, resumes or flattens (the kill switch) and
``GET /_local/executions/ID`` describes one execution. ``/dashboard/`` serves the dashboard's pages of this
stack (:mod:`crypto_bot_tools.dashboard`).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from crypto_bot_tools.local.log import stamp

if TYPE_CHECKING:
    from crypto_bot_tools.local.server import LocalServer

__all__ = ["HttpServer"]


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server answering for one :class:`~crypto_bot_tools.local.server.LocalServer`."""

    daemon_threads = True
    allow_reuse_address = True
    # Found by the load test (tests/e2e/test_burst.py): socketserver's listen backlog of 5 reset connections when
    # 16 clients posted at once on a busy machine. A reset is not a 5xx, so TradingView would not resend: lost.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], local: LocalServer) -> None:
        self.local = local
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request: the webhook through the emulator, or a local-only endpoint."""

    server: HttpServer
    server_version = "crypto-bot-local"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Silence http.server's own log: each request is logged once, without its query string."""

    def _dispatch(self) -> None:
        local = self.server.local
        parsed = urllib.parse.urlsplit(self.path)
        started = time.monotonic()
        try:
            status, text, headers, outcome = self._answer(parsed)
        except Exception as e:
            # Found by the webhook fuzzer: an exception here dropped the connection without an answer. API Gateway
            # always answers; a bug of the emulator is a 500 with a reason, and the log says what failed.
            local.log(f"{stamp()} {self.command} {parsed.path} failed: {type(e).__name__}: {str(e)[:200]}")
            reason = json.dumps(f"the local server failed: {type(e).__name__}")
            status, text, outcome = 500, f'{{"accepted": false, "reason": {reason}}}', "failed"
            headers = {"Content-Type": "application/json"}
            self.close_connection = True  # the request's body may be unread
        data = text.encode("utf-8")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        elapsed = (time.monotonic() - started) * 1000
        if status < 400 and self._polling(parsed.path):
            return
        # The path only: the query string holds the token, which never reaches a log.
        where = f"{self.client_address[0]} {self.command} {parsed.path}"
        local.log(f"{stamp()} {where} {status} {elapsed:.0f} ms {outcome}".rstrip())

    def _polling(self, path: str) -> bool:
        """Say whether the request is one of the dashboard's updates: a page's poll or its reads of the stack.

        They come every few seconds while a page is open; logged, they would bury the requests and cycles.
        """
        from crypto_bot_tools.ops.local_source import DASHBOARD_AGENT

        if self.command != "GET":
            return False
        return self.headers.get("User-Agent") == DASHBOARD_AGENT or path.startswith(
            ("/dashboard/fragment/", "/dashboard/static/")
        )

    def _answer(self, parsed: urllib.parse.SplitResult) -> tuple[int, str, dict[str, str], str]:
        """Read the request and answer it: status, body, headers, and what happened (for the log)."""
        from crypto_bot_tools.local.api_gateway import PAYLOAD_LIMIT

        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        text = (self.headers.get("Content-Length") or "0").strip()
        # RFC 9110: Content-Length is 1*DIGIT. Anything else ("lots", "-5") is a malformed request, which the HTTP
        # front end answers 400 before API Gateway sees it: a body of unknown length must not become an empty alert.
        if not text.isascii() or not text.isdigit():
            self.close_connection = True  # where the body ends is unknown
            return 400, '{"accepted": false, "reason": "Content-Length is not a number"}', {}, "bad Content-Length"
        length = int(text)
        local_endpoint = parsed.path.startswith("/_local/")
        if length > PAYLOAD_LIMIT and not local_endpoint:
            # Over API Gateway's payload limit: never held in memory, only read through so that the client,
            # still sending, gets the 413 instead of a reset connection.
            remaining = length
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, 1 << 20))):
                remaining -= len(chunk)
            body = b""
        else:
            body = self.rfile.read(length) if length > 0 else b""
        if parsed.path == "/dashboard" or parsed.path.startswith("/dashboard/"):
            from crypto_bot_tools.dashboard.app import Request

            headers = {k.lower(): v for k, v in self.headers.items()}
            page = self.server.local.dashboard.handle(Request(self.command, self.path, headers, body))
            return page.status, page.body.decode("utf-8"), {"Content-Type": page.content_type, **page.headers}, ""
        if local_endpoint:
            status, payload = self._local(parsed.path, query, body)
            return status, json.dumps(payload, default=str), {"Content-Type": "application/json"}, ""
        response = self.server.local.webhook.emulator.handle(
            self.command,
            parsed.path,
            query=query,
            headers={k: v for k, v in self.headers.items()},
            body=body,
            source_ip=self.client_address[0],
            content_length=length if length > PAYLOAD_LIMIT else None,
        )
        return response.status, response.body, response.headers, response.outcome

    def _local(self, path: str, query: Mapping[str, str], body: bytes) -> tuple[int, Any]:
        local = self.server.local
        try:
            return _local_endpoint(local, self.command, path, query, body)
        except ValueError as e:
            return 400, {"error": f"the body is not JSON: {e}"}
        except TimeoutError as e:
            return 504, {"error": str(e)}
        except Exception as e:  # answered and logged: a local endpoint's bug must not look like a dropped connection
            local.log(f"{stamp()} {self.command} {path} failed: {type(e).__name__}: {e}")
            return 500, {"error": f"{type(e).__name__}: {e}"}


def _local_endpoint(
    local: LocalServer, method: str, path: str, query: Mapping[str, str], body: bytes
) -> tuple[int, Any]:
    """Answer one ``/_local/*`` request: its status and JSON payload."""
    if path == "/_local/state" and method == "GET":
        return 200, local.state()
    if path == "/_local/cycles" and method == "GET":
        text = query.get("limit", "50")
        if not text.isdigit():
            return 400, {"error": f"limit {text!r}: must be a whole number"}
        return 200, local.cycles(int(text))
    if path == "/_local/health" and method == "GET":
        return 200, {"ok": True}
    if path == "/_local/cycle" and method == "POST":
        options = json.loads(body) if body.strip() else {}
        trigger = str(options.get("trigger", "manual")) if isinstance(options, dict) else "manual"
        if trigger not in ("manual", "schedule"):
            return 400, {"error": f"trigger {trigger!r}: must be manual or schedule"}
        if query.get("wait", "true").lower() == "false":
            execution = local.start_cycle({"trigger": trigger}, trigger=trigger)
            return 202, local.execution(execution.name)
        return 200, local.run_cycle(trigger)
    if path == "/_local/controls" and method == "POST":
        return local.apply_controls(json.loads(body) if body.strip() else None)
    if path.startswith("/_local/executions/") and method == "GET":
        name = path.removeprefix("/_local/executions/")
        detail = local.wait_for(name) if query.get("wait") == "true" else local.execution(name)
        return (200, detail) if detail is not None else (404, {"error": f"no execution {name}"})
    return 404, {"error": f"no local endpoint {method} {path}"}
