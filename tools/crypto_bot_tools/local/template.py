"""Read a CloudFormation or SAM template for the local stack.

:func:`load_template` reads YAML (or JSON) with the short-form intrinsics (``!Ref X``, ``!Sub ...``) turned
into their long form, as CloudFormation does before anything else. :class:`TemplateError` is what every
module of the local stack raises for a template it cannot emulate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["TemplateError", "load_template"]


class TemplateError(ValueError):
    """The template cannot be emulated: a bad reference, an unsupported intrinsic or property, a missing file."""


# Short-form tag -> long-form key. `Ref` and `Condition` have no `Fn::` prefix.
_INTRINSIC_TAGS: Final = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "GetAtt",
            "Sub",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "Select",
            "Join",
            "FindInMap",
            "Split",
            "ImportValue",
            "Base64",
            "GetAZs",
            "Cidr",
            "Transform",
            "ToJsonString",
            "Length",
        )
    },
}


class _TemplateLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation's short-form intrinsics (``!Ref X``) as their long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    key = _INTRINSIC_TAGS[node.tag[1:]]
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            # `!GetAtt Queue.Arn` is the short form of `Fn::GetAtt: [Queue, Arn]`.
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


for _tag in _INTRINSIC_TAGS:
    _TemplateLoader.add_constructor(f"!{_tag}", _construct_intrinsic)
# CloudFormation reads `2010-09-09` as a string, not a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(path: Path) -> dict[str, Any]:
    """Read a CloudFormation/SAM template (YAML or JSON) with short-form intrinsics turned into long form."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, yaml.YAMLError) as e:
        raise TemplateError(f"cannot read template {path}: {e}") from e
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return document
