"""Resolve a template's parameters, conditions and intrinsic functions as CloudFormation does.

:class:`Resolver` gives ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If``, ``Fn::FindInMap``... their values
for one template and one set of parameter values. A resource reference resolves from
:attr:`Resolver.resolved`, which :class:`~crypto_bot_tools.local.builder.StackBuilder` fills, in dependency
order, as it creates each resource.
"""

from __future__ import annotations

import base64
import decimal
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Final

from crypto_bot_tools.local.template import TemplateError

__all__ = ["NO_VALUE", "Resolved", "Resolver", "STACK_NAME", "SUB_VARIABLE", "references", "to_str"]

# What AWS::StackName gives, and the prefix of every physical name (builder._physical_name).
STACK_NAME: Final = "local"
# AWS::NoValue: the enclosing mapping key or list item disappears.
NO_VALUE: Final[Any] = SimpleNamespace(name="AWS::NoValue")
SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Resolved:
    """What other resources can read of one resource: its Ref value and its Fn::GetAtt attributes."""

    type: str
    ref: Any
    attributes: dict[str, Any]
    emulated: bool


def to_str(value: Any, where: str) -> str:
    """Render a resolved scalar the way CloudFormation does in strings (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | decimal.Decimal):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {value!r}")


def references(value: Any) -> set[str]:
    """Name every logical id (or parameter) an unresolved value refers to, for dependency order."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                return {arg}
            if key == "Fn::GetAtt" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                return {arg[0]}
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
                names = {m.split(".", 1)[0] for m in SUB_VARIABLE.findall(text) if not m.startswith("!")}
                return (names - set(variables)) | references(variables)
        for item in value.values():
            found |= references(item)
    return found


class Resolver:
    """Resolve parameters, conditions and the intrinsic functions of one template.

    Resource references resolve from :attr:`resolved`, which the stack builder fills in
    dependency order as it creates each resource.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        source: str,
        parameter_values: Mapping[str, str],
        region: str,
        account_id: str,
        ssm_lookup: Callable[[str], str],
    ) -> None:
        self.source = source
        self.resources: dict[str, Any] = dict(document.get("Resources") or {})
        self.mappings: dict[str, Any] = dict(document.get("Mappings") or {})
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{STACK_NAME}/{uuid.uuid4()}",
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self.parameters = self._parameters(dict(document.get("Parameters") or {}), parameter_values, ssm_lookup)
        self._condition_definitions: dict[str, Any] = dict(document.get("Conditions") or {})
        self._conditions: dict[str, bool] = {}
        self.resolved: dict[str, Resolved] = {}

    # -- parameters and conditions --------------------------------------------------------

    def _parameters(
        self, declared: dict[str, Any], given: Mapping[str, str], ssm_lookup: Callable[[str], str]
    ) -> dict[str, Any]:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TemplateError(f"{self.source}: parameters {unknown} are not declared in the template")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            where = f"{self.source}: parameter {name}"
            if name in given:
                raw = given[name]
            elif "Default" in spec:
                raw = to_str(spec["Default"], where)
            else:
                raise TemplateError(f"{where} has no Default: pass it in parameters=")
            allowed = [to_str(v, where) for v in spec.get("AllowedValues", [])]
            if allowed and raw not in allowed:
                raise TemplateError(f"{where} is {raw!r}, not one of {allowed}")
            kind = str(spec.get("Type", "String"))
            if kind.startswith("AWS::SSM::Parameter::Value<"):
                # The value lives in SSM under the given name, as on AWS: seed it with ssm_values=.
                raw = ssm_lookup(raw)
            is_list = kind == "CommaDelimitedList" or "List<" in kind
            values[name] = [item.strip() for item in raw.split(",")] if is_list else raw
        return values

    def condition(self, name: str, where: str, _visiting: frozenset[str] = frozenset()) -> bool:
        """Evaluate a named condition of the Conditions section."""
        if name in self._conditions:
            return self._conditions[name]
        if name not in self._condition_definitions:
            raise TemplateError(f"{where}: unknown condition {name!r}")
        if name in _visiting:
            raise TemplateError(f"{self.source}: condition {name} refers to itself")
        value = self._condition_value(self._condition_definitions[name], f"condition {name}", _visiting | {name})
        self._conditions[name] = value
        return value

    def _condition_value(self, value: Any, where: str, visiting: frozenset[str]) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition(arg, where, visiting)
            if key == "Fn::Equals":
                left, right = (self.resolve(item, where) for item in arg)
                return bool(to_str(left, where) == to_str(right, where))
            if key == "Fn::Not":
                return not self._condition_value(arg[0], where, visiting)
            if key == "Fn::And":
                return all(self._condition_value(item, where, visiting) for item in arg)
            if key == "Fn::Or":
                return any(self._condition_value(item, where, visiting) for item in arg)
        raise TemplateError(f"{self.source}: {where}: {value!r} is not a condition")

    # -- intrinsics -----------------------------------------------------------------------

    def resolve(self, value: Any, where: str) -> Any:
        """Return ``value`` with every intrinsic function replaced by its value; ``where`` names it in errors."""
        if isinstance(value, list):
            items = (self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key.startswith("Fn::"):
                return self._function(key, arg, where)
        resolved = {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def ref(self, name: str, where: str) -> Any:
        """Resolve ``Ref: name``: a pseudo parameter, a template parameter or a resource's Ref value."""
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._resource(name, where, f"Ref {name}").ref

    def get_att(self, name: str, attribute: str, where: str) -> Any:
        """Resolve ``Fn::GetAtt: [name, attribute]``."""
        resource = self._resource(name, where, f"Fn::GetAtt {name}.{attribute}")
        if attribute not in resource.attributes:
            known = ", ".join(sorted(resource.attributes)) or "none"
            how = "is emulated" if resource.emulated else "is not emulated (placeholder values only)"
            raise TemplateError(
                f"{self.source}: {where}: Fn::GetAtt {name}.{attribute}: resource {name} ({resource.type}) "
                f"has no attribute {attribute!r} here; it {how}, known attributes: {known}"
            )
        return resource.attributes[attribute]

    def _resource(self, name: str, where: str, what: str) -> Resolved:
        if name not in self.resources:
            raise TemplateError(f"{self.source}: {where}: {what}: no parameter or resource named {name!r}")
        if name not in self.resolved:
            condition = self.resources[name].get("Condition")
            why = f"its condition {condition} is false" if condition else "it is not created yet (a dependency cycle?)"
            raise TemplateError(f"{self.source}: {where}: {what}: resource {name} is not available: {why}")
        return self.resolved[name]

    def _function(self, key: str, arg: Any, where: str) -> Any:  # noqa: C901 (one branch per intrinsic)
        if key == "Fn::GetAtt":
            parts = self.resolve(arg, where) if isinstance(arg, list) else [arg]
            if len(parts) != 2:
                raise TemplateError(f"{self.source}: {where}: Fn::GetAtt {arg!r} is not [resource, attribute]")
            return self.get_att(parts[0], parts[1], where)
        if key == "Fn::Sub":
            return self._sub(arg, where)
        if key == "Fn::If":
            condition, when_true, when_false = arg
            chosen = when_true if self.condition(condition, where) else when_false
            return self.resolve(chosen, where)
        if key == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(to_str(item, where) for item in self.resolve(items, where))
        if key == "Fn::Select":
            index, items = self.resolve(arg, where)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg, where)
            return text.split(delimiter)
        if key == "Fn::FindInMap":
            return self._find_in_map(self.resolve(arg, where), where)
        if key == "Fn::Base64":
            return base64.b64encode(to_str(self.resolve(arg, where), where).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{self.pseudo['AWS::Region']}{zone}" for zone in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg, where), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self.resolve(arg, where))
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._condition_value({key: arg}, where, frozenset())
        raise TemplateError(f"{self.source}: {where}: {key} cannot be resolved locally")

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, variables = arg[0], self.resolve(arg[1] if len(arg) > 1 else {}, where)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # `${!Literal}` is the escape for a literal `${Literal}`
                return "${" + name[1:] + "}"
            if name in variables:
                return to_str(variables[name], where)
            if "." in name:
                resource, attribute = name.split(".", 1)
                return to_str(self.get_att(resource, attribute, where), where)
            return to_str(self.ref(name, where), where)

        return SUB_VARIABLE.sub(replace, text)

    def _find_in_map(self, arg: list[Any], where: str) -> Any:
        map_name, top, second = (to_str(item, where) for item in arg[:3])
        try:
            return self.mappings[map_name][top][second]
        except KeyError as e:
            raise TemplateError(f"{self.source}: {where}: Fn::FindInMap {map_name}/{top}/{second}: no {e}") from e
