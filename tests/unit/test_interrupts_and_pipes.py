"""Ending a command early, as a user does: Ctrl-C twice while ``crypto-bot local`` stops, ``| head``.

Issue 13 §5: the second Ctrl-C printed a 30-line traceback, and ``cost --json | head`` ended in a
BrokenPipeError.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from crypto_bot_tools.local import cli as local_cli
from tests.conftest import ROOT


@dataclass
class FakeServer:
    """What serve_until_stopped drives: start, serve, close; each step can be interrupted."""

    interrupt_close: bool = False
    calls: list[str] = field(default_factory=list)
    url: str = "http://127.0.0.1:0"

    def start(self) -> None:
        self.calls.append("start")

    def serve_forever(self) -> None:
        self.calls.append("serve")
        raise KeyboardInterrupt  # the first Ctrl-C

    def close(self) -> None:
        self.calls.append("close")
        if self.interrupt_close:
            raise KeyboardInterrupt  # the second, while executions are still being waited for


@pytest.fixture(autouse=True)
def _no_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crypto_bot_tools.local.server.print_banner", lambda _server: None)


def test_ctrl_c_stops_the_local_stack_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer()
    assert local_cli.serve_until_stopped(server) == 0
    assert server.calls == ["start", "serve", "close"]
    assert capsys.readouterr().out.splitlines() == [
        "crypto-bot local: stopping (Ctrl-C again to exit at once)",
        "crypto-bot local: stopped",
    ]


def test_a_second_ctrl_c_while_stopping_exits_at_once_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer(interrupt_close=True)
    assert local_cli.serve_until_stopped(server) == 130
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "crypto-bot local: stopping (Ctrl-C again to exit at once)",
        "crypto-bot local: interrupted while stopping; exiting now",
    ]
    assert captured.err == ""


def _run_into_a_closed_pipe(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with stdout a pipe whose reader has gone, as ``crypto-bot ... | head`` leaves it."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "crypto_bot_tools.cli", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("argv", [("cost", "--json"), ("cost",)])
def test_a_reader_that_goes_away_ends_the_command_quietly(argv: tuple[str, ...]) -> None:
    done = _run_into_a_closed_pipe(*argv)
    assert done.stderr.decode() == ""
    assert done.returncode == 141  # 128 + SIGPIPE, what a shell shows for `yes | head`


def test_the_broken_pipe_handler_leaves_a_captured_stdout_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # capsys: sys.stdout is no file, as when a program calls main(); the handler must not fail on it.
    from crypto_bot_tools import cli, costs

    def run(_args: Any) -> int:
        print("written before the reader left")
        raise BrokenPipeError

    monkeypatch.setattr(costs, "run", run)
    assert cli.main(["cost"]) == 141
    assert capsys.readouterr() == ("written before the reader left\n", "")
