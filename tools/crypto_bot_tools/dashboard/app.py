"""The dashboard's routes, its protection against cross-site requests, and the standalone HTTP server.

:class:`Dashboard` answers one :class:`Request` at a time (:meth:`Dashboard.handle`), so the same pages
serve from ``crypto-bot dashboard``'s own server (:func:`serve`) and under ``/dashboard`` on
``crypto-bot local``'s.

Routes, under the prefix: ``/`` (Overview), ``/signals``, ``/cycles``, ``/orders``, each page's content alone
at ``/fragment/<page>`` (what the script polls), ``/static/dashboard.css`` and ``.js``, and ``POST /control``.

The controls change the stack, so every request is checked before it is answered:

* its ``Host`` must be the address the server listens on (a page of another site that rebinds its name to
  127.0.0.1 reaches the server under that other name: refused);
* a ``POST`` must come from the dashboard's own pages: its ``Origin`` (or, without one, its ``Referer``) is
  this server, and its form carries the CSRF token, drawn at random when the server starts and embedded in
  the page. Another site cannot read the page, so it cannot know the token;
* the pages forbid framing (``frame-ancestors 'none'``), so no site can overlay the buttons.

Anything else is answered 403 with the reason.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from io import StringIO
from typing import Any, Final

from crypto_bot.domain.errors import CryptoBotError
from crypto_bot_tools.dashboard import pages
from crypto_bot_tools.dashboard.reader import StackReader
from crypto_bot_tools.ops.controls import COMMANDS

__all__ = ["Dashboard", "Request", "Response", "allowed_hosts", "serve"]

STATIC: Final = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
# The pages load only their own stylesheet and script, and may not be framed.
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_BODY: Final = 16_384  # a control form is a few hundred bytes
NOTICES_KEPT: Final = 50


@dataclass(frozen=True)
class Request:
    """One HTTP request, as the server read it; header names in lower case."""

    method: str
    target: str  # the path and query, as sent
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    """The answer to one request."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """Return the ``Host`` values a server on ``host:port`` answers, or None (any) when it listens everywhere.

    A loopback server answers to its loopback names only; one bound to 0.0.0.0 or :: is reached under
    whatever name the network gives it, so there only the Origin and the token protect the controls.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return frozenset({f"{host}:{port}".lower()})
    if address.is_unspecified:
        return None
    names = {f"[{address}]" if address.version == 6 else str(address)}
    if address.is_loopback:
        names |= {"localhost", "127.0.0.1", "[::1]"}
    return frozenset(f"{name}:{port}" for name in names)


class Dashboard:
    """The pages of one stack, read through ``reader``, at ``prefix`` ("" or "/dashboard")."""

    def __init__(
        self,
        reader: StackReader,
        *,
        stack: str,
        hosts: frozenset[str] | None,
        prefix: str = "",
        refresh: float = 5.0,
        token: str | None = None,
        log: Callable[[str], None] = lambda _line: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader
        self.stack = stack
        self.hosts = hosts
        self.prefix = prefix.rstrip("/")
        self.refresh = refresh
        self.token = token or secrets.token_urlsafe(32)
        self.log = log
        self.clock = clock
        self._notices: dict[str, tuple[str, bool]] = {}
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        """Answer one request: a page, a fragment, a static file, a control, or a 403/404/405 naming why."""
        split = urllib.parse.urlsplit(request.target)
        path = split.path
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            path = path[len(self.prefix) :] or "/"
        elif self.prefix:
            return self._error(404, f"no dashboard page {split.path}")
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        refused = self._refused_host(request)
        if refused:
            return self._error(403, refused)
        if path == "/control":
            if request.method != "POST":
                return self._error(405, "the controls take a POST from the dashboard's form", {"Allow": "POST"})
            return self._control(request)
        if request.method not in ("GET", "HEAD"):
            return self._error(405, f"{request.method} {path}: the pages are read with GET", {"Allow": "GET"})
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        fragment = path.startswith("/fragment/")
        name = path.removeprefix("/fragment/") if fragment else self._page_name(path)
        name = name if name in pages.PAGES else None
        if name is None:
            return self._error(404, f"no dashboard page {split.path}")
        try:
            content, shown_query = self._content(name, query)
        except Exception as e:  # a bug of a page is said on the page, and logged, never a traceback
            self.log(f"dashboard: {name} failed: {type(e).__name__}: {e}")
            return self._error(500, f"the {name} page failed: {type(e).__name__}: {e}")
        if fragment:
            return self._html(200, content)
        notice = self._notices.get(query.get("notice", ""))
        controls = ""
        if name == "overview":
            controls = pages.controls_form(prefix=self.prefix, token=self.token, strategies=self._strategies())
        return self._html(
            200,
            pages.page(
                name,
                content,
                prefix=self.prefix,
                stack=self.stack,
                query=shown_query,
                refresh=self.refresh,
                notice=notice,
                controls=controls,
            ),
        )

    # -- pages ------------------------------------------------------------------------------

    def _page_name(self, path: str) -> str | None:
        for name, (page_path, _title) in pages.PAGES.items():
            if path == (page_path or "/") or (page_path != "/" and path == page_path + "/"):
                return name
        return None

    def _content(self, name: str, query: Mapping[str, str]) -> tuple[str, str]:
        reader = self.reader
        if name == "overview":
            return pages.overview_content(reader.holdings(), reader.cycles(), reader.signals(), self.clock()), ""
        if name == "signals":
            wanted = pages.SignalFilter.parse(query)
            return pages.signals_content(reader.signals(), wanted, prefix=self.prefix), wanted.query()
        if name == "cycles":
            return pages.cycles_content(reader.executions(), reader.cycles()), ""
        return pages.orders_content(reader.cycles()), ""

    def _strategies(self) -> set[str]:
        """The strategy keys the kill switch offers: those seen in positions, signals and the controls."""
        keys: set[str] = set()
        held = self.reader.holdings().value
        if held is not None:
            keys |= {p.strategy for p in held.positions}
            if held.controls is not None:
                keys |= set(held.controls.paused_strategies)
        keys |= {s.strategy for s in self.reader.signals().value or [] if s.strategy}
        return keys

    # -- controls ---------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        refused = self._refused_post(request)
        if refused:
            self.log(f"dashboard: refused a control: {refused}")
            return self._error(403, refused)
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        command = form.get("command", "")
        if command not in COMMANDS:
            return self._error(400, f"command {command!r}: must be one of {', '.join(COMMANDS)}")
        strategy = form.get("strategy", "").strip()
        reason = "" if command == "resume" else form.get("reason", "").strip()
        if form.get("confirmed") != "yes":
            body = pages.confirm_page(command, strategy, reason, prefix=self.prefix, token=self.token, stack=self.stack)
            return self._html(200, body)
        notice = self._apply(command, strategy or None, reason)
        return Response(303, b"", headers={**HEADERS, "Location": f"{self.prefix}/?notice={notice}"})

    def _apply(self, command: str, strategy: str | None, reason: str) -> str:
        """Apply the control as ``crypto-bot pause|resume|flatten`` does; keep what it said as a notice."""
        from rich.console import Console

        source = self.reader.source
        try:
            change = self.reader.call(
                lambda: source.apply_control(
                    command, strategy=strategy, reason=reason, config_path=self.reader.config_path
                )
            )
            text, failed = change.message, False
            if change.notification_error is not None:
                text, failed = f"{text} The notification failed: {change.notification_error}", True
            if command == "flatten":
                # As `crypto-bot flatten --no-follow`: the cycle that sells starts now; the Cycles page follows it.
                out = Console(file=StringIO(), width=200)
                self.reader.call(lambda: source.cycle(out, follow=False, poll=1.0, timeout=None))
                text += " A cycle has started to sell: see Cycles."
            self.log(f"dashboard: {command} {strategy or 'account'}: {change.message}")
        except CryptoBotError as e:
            text, failed = f"The {command} failed: {type(e).__name__}: {e}", True
        self.reader.forget()
        key = secrets.token_urlsafe(8)
        with self._lock:
            self._notices[key] = (text, failed)
            while len(self._notices) > NOTICES_KEPT:
                self._notices.pop(next(iter(self._notices)))
        return key

    def _refused_host(self, request: Request) -> str | None:
        host = request.headers.get("host", "").strip().lower()
        if self.hosts is not None and host not in self.hosts:
            return f"Host {host!r}: this dashboard answers only to {', '.join(sorted(self.hosts))}"
        return None

    def _refused_post(self, request: Request) -> str | None:
        """Say why a POST is not the dashboard's own form, or None: Origin (or Referer) and the CSRF token."""
        host = request.headers.get("host", "").strip().lower()
        own = f"http://{host}"
        origin = request.headers.get("origin")
        if origin is not None:
            if origin.strip().lower() != own:
                return f"Origin {origin!r}: a control must come from the dashboard's own page ({own})"
        else:
            referer = request.headers.get("referer", "")
            parts = urllib.parse.urlsplit(referer)
            if f"{parts.scheme}://{parts.netloc}".lower() != own:
                return f"no Origin, and Referer {referer!r} is not the dashboard ({own}): refused"
        if len(request.body) > MAX_BODY:
            return f"the form is {len(request.body)} bytes: more than {MAX_BODY}"
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        token = form.get("csrf", "")
        if not token:
            return "csrf: missing; a control must be sent from the dashboard's page, which carries the token"
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return "csrf: not this server's token (the page may be from an earlier start: reload it)"
        return None

    # -- answers ----------------------------------------------------------------------------

    def _static(self, name: str) -> Response:
        if name not in STATIC:
            return self._error(404, f"no static file {name!r}")
        data = resources.files("crypto_bot_tools.dashboard").joinpath("static", name).read_bytes()
        return Response(200, data, STATIC[name], {**HEADERS, "Cache-Control": "no-cache"})

    def _html(self, status: int, text: str) -> Response:
        return Response(status, text.encode("utf-8"), headers=HEADERS)

    def _error(self, status: int, message: str, extra: Mapping[str, str] | None = None) -> Response:
        return Response(status, pages.error_page(status, message).encode("utf-8"), headers={**HEADERS, **(extra or {})})


# ------------------------------------------------------------------------------------------ the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "crypto-bot-dashboard"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer()

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Silence http.server's log of every poll."""

    def _answer(self) -> None:
        write_response(self, self.server.dashboard.handle(read_request(self)))


def read_request(handler: BaseHTTPRequestHandler, body: bytes | None = None) -> Request:
    """Read a :class:`Request` from an http.server handler (its body too, unless given)."""
    if body is None:
        text = (handler.headers.get("Content-Length") or "0").strip()
        length = int(text) if text.isdigit() else 0
        body = handler.rfile.read(min(length, MAX_BODY + 1)) if length else b""
    headers = {k.lower(): v for k, v in handler.headers.items()}
    return Request(handler.command, handler.path, headers, body)


def write_response(handler: BaseHTTPRequestHandler, response: Response) -> None:
    """Send a :class:`Response` through an http.server handler."""
    handler.send_response(response.status)
    handler.send_header("Content-Type", response.content_type)
    for name, value in response.headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(response.body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(response.body)


def serve(dashboard: Dashboard, host: str, port: int, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve ``dashboard`` on ``host:port`` until Ctrl-C; ``ready`` gets the URL once it listens."""
    from crypto_bot.domain.errors import ConfigError

    try:
        server = _Server((host, port), dashboard)
    except OSError as e:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there: {e.strerror or e}") from None
    bound = server.server_address[1]
    if dashboard.hosts is not None and port == 0:
        dashboard.hosts = allowed_hosts(host, bound)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}{dashboard.prefix}/"
    (ready or (lambda u: print(f"crypto-bot dashboard: {u} (Ctrl-C stops it)", flush=True)))(url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("crypto-bot dashboard: stopped", file=sys.stderr, flush=True)
    finally:
        server.server_close()
