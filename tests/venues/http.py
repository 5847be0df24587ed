"""The HTTP side shared by the venue emulators: a server on 127.0.0.1 and fault switches.

Each emulator (``binance.py``, ``kraken.py``) is a small, readable model of one
venue's *documented* REST behaviour. This module only serves it: it routes a
request to the emulator's handler, and applies the faults a test has armed for
that route before or after the handler runs. The real ccxt client talks to it
over real HTTP, so everything between ccxt and the venue (signing, parsing,
error mapping) runs as it does in production.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the emulator sees it: method, path, query and form parameters, headers, raw body."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    query: str  # the raw query string, as signed by the client


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # JSON-serializable, or bytes sent as they are
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


FaultKind = Literal["before", "after", "drop_after"]


@dataclass
class Fault:
    """A fault armed on one route for the next ``times`` requests.

    * ``before``: answer ``response`` without running the handler (the venue never acted);
    * ``after``: run the handler (the venue acted), then answer ``response`` instead of its answer;
    * ``drop_after``: run the handler, then hold the answer for ``delay`` seconds and close the
      connection without one (a timeout after the venue accepted).
    """

    route: str  # "METHOD /path"
    kind: FaultKind
    response: Response | None = None
    delay: float = 0.0
    times: int = 1


Handler = Callable[[Request], Response]


class VenueServer:
    """Serve one emulator's routes on 127.0.0.1 on a free port, with armed faults."""

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self._routes = dict(routes)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.log: list[tuple[str, int]] = []  # (route, status) of every request served, in order
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK holds the
            # second one ~40 ms, on every request.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                server._serve(self)

            do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        # shutdown() waits for the serve loop's next poll: 50 ms instead of the default 500 ms per test.
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="venue", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> VenueServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def arm(self, fault: Fault) -> None:
        """Arm a fault on its route; faults on one route fire in the order they were armed."""
        if fault.route not in self._routes:
            raise KeyError(f"no route {fault.route!r}; routes: {sorted(self._routes)}")
        with self._lock:
            self._faults.append(fault)

    def calls(self, route: str) -> int:
        return sum(1 for r, _ in self.log if r == route)

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        content_type = http.headers.get("Content-Type") or ""
        if body and "json" in content_type:
            decoded = json.loads(body)
            if isinstance(decoded, dict):
                params.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()})
        elif body:
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        request = Request(
            method=http.command,
            path=split.path,
            params=params,
            headers={k.lower(): v for k, v in http.headers.items()},
            body=body,
            query=split.query,
        )
        route = f"{request.method} {request.path}"
        handler = self._routes.get(route)
        fault = self._take_fault(route) if handler is not None else None
        if handler is None:
            response = Response(404, {"error": f"no route {route}"})
        elif fault is not None and fault.kind == "before":
            assert fault.response is not None
            response = fault.response
        else:
            response = handler(request)
            if fault is not None and fault.kind == "after":
                assert fault.response is not None
                response = fault.response
            elif fault is not None and fault.kind == "drop_after":
                self.log.append((route, 0))
                time.sleep(fault.delay)
                http.close_connection = True
                return
        self.log.append((route, response.status))
        payload = response.encoded()
        http.send_response(response.status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(payload)


@contextmanager
def serving(routes: Mapping[str, Handler]) -> Iterator[VenueServer]:
    """Run a :class:`VenueServer` for the duration of a ``with`` block."""
    server = VenueServer(routes).start()
    try:
        yield server
    finally:
        server.stop()
