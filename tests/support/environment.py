"""The step functions' environment as template.yaml deploys it, for tests that build the settings themselves."""

from __future__ import annotations

from functools import cache
from typing import Any

from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT


@cache
def _globals() -> dict[str, str]:
    template: dict[str, Any] = load_template(ROOT / "template.yaml")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    defaults = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    # A !Ref to a parameter takes its default, as a stack deployed with the defaults has it; a !Ref to a
    # resource (the table) is the stack's, for the test to give.
    return {
        name: value if isinstance(value, str) else defaults[value["Ref"]]
        for name, value in variables.items()
        if isinstance(value, str) or (isinstance(value, dict) and value.get("Ref") in defaults)
    }


def template_environment(**values: str) -> dict[str, str]:
    """Return the template's Globals at the parameters' defaults, with ``values`` set over them.

    The strategy config is the repository's (the template's path is the layer's, inside Lambda).
    """
    return {**_globals(), "STRATEGY_CONFIG_PATH": str(ROOT / "strategy_config.json"), **values}
