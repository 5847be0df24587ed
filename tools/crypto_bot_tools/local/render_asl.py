"""Print a state machine's definition as deployed: template.yaml's substitutions applied.

Usage: ``python -m crypto_bot_tools.local.render_asl [LOGICAL_ID] [--template template.yaml]``.
The output is what an independent Amazon States Language validator should check.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from crypto_bot_tools.local.stack import local_stack


def render(template: Path, logical_id: str) -> str:
    """Build the template's resources under moto and return the machine's stored definition."""
    with local_stack(template) as stack:
        arn = stack.resource(logical_id)
        definition = stack.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"]
    return json.dumps(json.loads(definition), indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("logical_id", nargs="?", default="TradeCycleStateMachine")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    args = parser.parse_args(argv)
    print(render(args.template, args.logical_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
