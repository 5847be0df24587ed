"""README names every option of the ops and replay commands, and ``replay --help`` states each default.

Issue 13 §5: ``--offset-minutes``, ``signals --limit`` and ``cycle --poll/--timeout`` were in the help only,
and ``replay --help`` showed no defaults. Issue 14 §2 added the kill switch: pause, resume and flatten; issue
15 §1 the dashboard.
"""

from __future__ import annotations

import argparse

import pytest

from crypto_bot_tools.cli import build_parser
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = ("replay", "signals", "positions", "cycle", "executions", "pause", "resume", "flatten", "dashboard")


def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = commands.choices[name]
    return found


def _options(name: str) -> list[argparse.Action]:
    return [a for a in _subcommand(name)._actions if a.option_strings and "--help" not in a.option_strings]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_names_every_option_of_the_command(command: str) -> None:
    missing = [a.option_strings[-1] for a in _options(command) if not any(o in README for o in a.option_strings)]
    assert missing == []


def _with_defaults(name: str) -> list[argparse.Action]:
    return [a for a in _options(name) if a.default not in (None, False, [])]


@pytest.mark.parametrize("action", _with_defaults("replay"), ids=lambda a: a.option_strings[-1])
def test_replay_help_states_the_default_of_every_option_that_has_one(action: argparse.Action) -> None:
    assert action.help is not None
    assert "default" in action.help
