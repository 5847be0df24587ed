"""Count the AWS calls and the log volume of a cycle on the emulated stack."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from bench.dynamodb_units import items_written, units


class ApiCounter:
    """Count botocore calls made off the main thread (the state machine and the handlers), by service and action."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.wru = 0.0
        self.rru = 0.0
        self.items_written = 0
        self.write_calls = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.wru = self.rru = 0.0
            self.items_written = self.write_calls = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from botocore.client import BaseClient

        original = getattr(BaseClient, "_make_api_call")  # noqa: B009 (private: not in the stubs)
        main = threading.main_thread()
        counter = self

        def counting(client: Any, operation: str, params: Mapping[str, Any]) -> Any:
            response = None
            try:
                response = original(client, operation, params)
                return response
            finally:
                if threading.current_thread() is not main:  # the bench's own polling runs on the main thread
                    counter.record(client.meta.service_model.service_name, operation, params, response)

        setattr(BaseClient, "_make_api_call", counting)  # noqa: B010
        try:
            yield
        finally:
            setattr(BaseClient, "_make_api_call", original)  # noqa: B010

    def record(self, service: str, operation: str, params: Mapping[str, Any], response: Any) -> None:
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            if service == "dynamodb":
                wru, rru = units(operation, params, response)
                self.wru += wru
                self.rru += rru
                written = items_written(operation, params)
                if written:
                    self.items_written += written
                    self.write_calls += 1


class CapturedOutput(io.TextIOBase):
    """Collect what the handlers print (Powertools logs and EMF metrics): its size is the CloudWatch Logs volume."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text.encode())
        return len(text)

    def since(self, mark: int) -> str:
        return "".join(self.parts[mark:])


def metric_names(text: str) -> list[str]:
    names: set[str] = set()
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        with contextlib.suppress(ValueError):
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names.update(m["Name"] for m in directive["Metrics"])
    return sorted(names)
