"""The local stack's public names under the module path they had before the split.

The emulation lives in :mod:`~crypto_bot_tools.local.template` (reading the template),
:mod:`~crypto_bot_tools.local.intrinsics` (resolving it), :mod:`~crypto_bot_tools.local.lambdas` (running
the handlers), :mod:`~crypto_bot_tools.local.builder` (creating the resources) and
:mod:`~crypto_bot_tools.local.stack` (:func:`local_stack`); import from those. No code imports
this module any more; it remains because the package docstring, docs/performance.md and docs/reliability.md
(written from tests/faults/conftest.py) still name it. Delete it once they name the modules above.
"""

from __future__ import annotations

from crypto_bot_tools.local.lambdas import LambdaContext
from crypto_bot_tools.local.stack import LocalStack, local_stack
from crypto_bot_tools.local.template import TemplateError, load_template

__all__ = ["LambdaContext", "LocalStack", "TemplateError", "load_template", "local_stack"]
