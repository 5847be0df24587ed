"""Operate a running stack from a laptop: ``crypto-bot signals|positions|cycle|executions|pause|resume|flatten``.

Each command asks one :class:`~crypto_bot_tools.ops.sources.Source` and prints the answer:

* :mod:`~crypto_bot_tools.ops.aws_source`: a deployed stack, found by its CloudFormation name
  (:mod:`~crypto_bot_tools.ops.stack`), read and driven through boto3;
* :mod:`~crypto_bot_tools.ops.local_source`: ``crypto-bot local`` (``--local URL``), over its
  ``/_local/*`` endpoints.

:mod:`~crypto_bot_tools.ops.commands` holds the subcommands, :mod:`~crypto_bot_tools.ops.rows` what
they show, :mod:`~crypto_bot_tools.ops.render` how; :mod:`~crypto_bot_tools.ops.controls` applies the
kill switch (pause, resume, flatten) to a store, for both sources.
"""

from __future__ import annotations

from crypto_bot_tools.ops.commands import open_source, parse_since, parse_statuses, register, select_signals
from crypto_bot_tools.ops.rows import CycleOutcome, ExecutionRow, Holdings, PositionRow, SignalRow, console_url
from crypto_bot_tools.ops.sources import Source
from crypto_bot_tools.ops.stack import DEFAULT_STACK, NO_CREDENTIALS, STACK_ENV, StackResources, stack_resources

__all__ = [
    "DEFAULT_STACK",
    "NO_CREDENTIALS",
    "STACK_ENV",
    "CycleOutcome",
    "ExecutionRow",
    "Holdings",
    "PositionRow",
    "SignalRow",
    "Source",
    "StackResources",
    "console_url",
    "open_source",
    "parse_since",
    "parse_statuses",
    "register",
    "select_signals",
    "stack_resources",
]
