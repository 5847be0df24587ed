"""Create a template's resources in moto's mocked account, each after the resources it refers to.

Tables, queues, topics and subscriptions, SSM parameters, functions and state machines are created from
the properties listed in ``_READ_PROPERTIES``; a resource of any other type gets a placeholder name and ARN
(``LocalStack.skipped``), so that references to it still resolve. State machine definitions get their
``DefinitionSubstitutions`` textually, as CloudFormation applies them.
"""

from __future__ import annotations

import graphlib
import io
import itertools
import json
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from crypto_bot_tools.local.intrinsics import NO_VALUE, STACK_NAME, SUB_VARIABLE, Resolved, Resolver, references, to_str
from crypto_bot_tools.local.lambdas import LambdaRouter, LocalFunction
from crypto_bot_tools.local.template import TemplateError

if TYPE_CHECKING:
    from crypto_bot_tools.local.stack import LocalStack

__all__ = ["StackBuilder"]


# The role every emulated function runs as; moto only checks that it exists.
_LAMBDA_ROLE_NAME: Final = "local-lambda-execution-role"
_LAMBDA_TRUST_POLICY: Final = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


_stack_serial = itertools.count(1)


def _physical_name(logical_id: str, max_length: int, suffix: str = "") -> str:
    """Derive a name as CloudFormation does: <stack>-<logical id, truncated to fit>-<random>."""
    random_part = uuid.uuid4().hex[:12].upper()
    room = max_length - len(STACK_NAME) - len(random_part) - len(suffix) - 2
    return f"{STACK_NAME}-{logical_id[:room]}-{random_part}{suffix}"


def _tags(tags: Any) -> list[dict[str, str]]:
    """Accept CloudFormation's tag list or SAM's tag map."""
    if isinstance(tags, dict):
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags or []]


def _merge_globals(global_properties: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Merge SAM Globals under a resource's properties: maps merge key by key, the resource wins otherwise."""
    merged = dict(global_properties)
    for key, value in properties.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_globals(merged[key], value)
        else:
            merged[key] = value
    return merged


# What is read of each emulated type. The other properties (roles, policies, events, logging...)
# are ignored, so they may refer to resources that are not emulated.
_READ_PROPERTIES: Final = {
    "AWS::DynamoDB::Table": (
        "TableName KeySchema AttributeDefinitions BillingMode ProvisionedThroughput GlobalSecondaryIndexes "
        "LocalSecondaryIndexes StreamSpecification SSESpecification TimeToLiveSpecification TableClass "
        "DeletionProtectionEnabled PointInTimeRecoverySpecification Tags"
    ),
    "AWS::Serverless::SimpleTable": "TableName PrimaryKey ProvisionedThroughput SSESpecification",
    "AWS::SQS::Queue": (
        "QueueName Tags ContentBasedDeduplication DeduplicationScope DelaySeconds FifoQueue FifoThroughputLimit "
        "KmsDataKeyReusePeriodSeconds KmsMasterKeyId MaximumMessageSize MessageRetentionPeriod "
        "ReceiveMessageWaitTimeSeconds RedriveAllowPolicy RedrivePolicy SqsManagedSseEnabled VisibilityTimeout"
    ),
    "AWS::SNS::Topic": (
        "TopicName DisplayName KmsMasterKeyId FifoTopic ContentBasedDeduplication SignatureVersion TracingConfig "
        "Subscription Tags"
    ),
    "AWS::SNS::Subscription": "TopicArn Protocol Endpoint RawMessageDelivery FilterPolicy",
    "AWS::SSM::Parameter": "Name Type Value Description AllowedPattern Tier DataType",
    "AWS::Serverless::Function": "FunctionName CodeUri Handler Runtime Timeout MemorySize Environment",
    "AWS::Serverless::StateMachine": "Name Type Definition DefinitionUri DefinitionSubstitutions",
    "AWS::StepFunctions::StateMachine": (
        "StateMachineName StateMachineType Definition DefinitionString DefinitionSubstitutions"
    ),
}
# The queue properties that are queue attributes in the SQS API (the rest: QueueName, Tags).
_QUEUE_ATTRIBUTES: Final = frozenset(_READ_PROPERTIES["AWS::SQS::Queue"].split()) - {"QueueName", "Tags"}
_TOPIC_ATTRIBUTES: Final = (
    "DisplayName",
    "KmsMasterKeyId",
    "FifoTopic",
    "ContentBasedDeduplication",
    "SignatureVersion",
    "TracingConfig",
)
_SKIPPED_SERVICES: Final = {"Serverless::Api": "execute-api", "Serverless::HttpApi": "execute-api"}


class StackBuilder:
    """Create the template's resources, in dependency order, in the mocked account."""

    def __init__(
        self,
        stack: LocalStack,
        router: LambdaRouter,
        template_path: Path,
        document: dict[str, Any],
        *,
        parameters: Mapping[str, str],
        substitution_overrides: Mapping[str, str],
        environment: Mapping[str, str],
        ssm_values: Mapping[str, str],
    ) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID

        self.stack = stack
        self.router = router
        self.template_dir = template_path.parent
        self.document = document
        self.account_id = str(DEFAULT_ACCOUNT_ID)
        self.substitution_overrides = dict(substitution_overrides)
        self.environment = dict(environment)
        self.serial = next(_stack_serial)
        for name, value in ssm_values.items():
            stack.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        self.resolver = Resolver(
            document,
            source=template_path.name,
            parameter_values=parameters,
            region=stack.region,
            account_id=self.account_id,
            ssm_lookup=self._ssm_value,
        )
        self.globals: dict[str, Any] = dict(document.get("Globals") or {})
        self.creators: dict[str, Callable[[str, dict[str, Any]], Resolved]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::Serverless::SimpleTable": self._simple_table,
            "AWS::SQS::Queue": self._queue,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::SSM::Parameter": self._ssm_parameter,
            "AWS::Serverless::Function": self._function,
            "AWS::Serverless::StateMachine": self._sam_state_machine,
            "AWS::StepFunctions::StateMachine": self._cfn_state_machine,
        }

    def _ssm_value(self, name: str) -> str:
        try:
            response = self.stack.client("ssm").get_parameter(Name=name, WithDecryption=True)
        except self.stack.client("ssm").exceptions.ParameterNotFound as e:
            raise TemplateError(f"SSM parameter {name} (an SSM-typed template parameter) is not seeded: {e}") from e
        return str(response["Parameter"]["Value"])

    def build(self) -> None:
        """Create every resource whose Condition holds, each after the resources it refers to."""
        resources = self.resolver.resources
        graph = graphlib.TopologicalSorter[str]()
        for logical_id, resource in resources.items():
            depends_on = resource.get("DependsOn") or []
            depends = references(resource) | set([depends_on] if isinstance(depends_on, str) else depends_on)
            graph.add(logical_id, *sorted(depends & set(resources) - {logical_id}))
        try:
            order = list(graph.static_order())
        except graphlib.CycleError as e:
            raise TemplateError(f"{self.resolver.source}: resources refer to each other in a cycle: {e.args[1]}") from e
        for logical_id in order:
            resource = resources[logical_id]
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition, f"resource {logical_id}"):
                continue
            kind = str(resource.get("Type"))
            creator = self.creators.get(kind)
            if creator is None:
                self.stack.skipped.append((logical_id, kind))
                self.resolver.resolved[logical_id] = self._placeholder(logical_id, kind)
                continue
            resolved = creator(logical_id, dict(resource.get("Properties") or {}))
            self.resolver.resolved[logical_id] = resolved
            self.stack.outputs[logical_id] = str(resolved.ref)

    def _placeholder(self, logical_id: str, kind: str) -> Resolved:
        """Give a resource that is not emulated a Ref and an Arn, so that e.g. an API URL in an env var resolves."""
        name = _physical_name(logical_id, 64)
        service = _SKIPPED_SERVICES.get(kind.removeprefix("AWS::"), kind.split("::")[1].lower())
        partition = self.resolver.pseudo["AWS::Partition"]
        arn = f"arn:{partition}:{service}:{self.stack.region}:{self.account_id}:{name}"
        return Resolved(type=kind, ref=name, attributes={"Arn": arn}, emulated=False)

    def _props(self, logical_id: str, kind: str, properties: dict[str, Any]) -> dict[str, Any]:
        """Resolve the properties read of this type (see _READ_PROPERTIES)."""
        resolved = {}
        for name in _READ_PROPERTIES[kind].split():
            if name in properties:
                value = self.resolver.resolve(properties[name], f"resource {logical_id}, property {name}")
                if value is not NO_VALUE:
                    resolved[name] = value
        return resolved

    def _where(self, logical_id: str, name: str) -> str:
        return f"{self.resolver.source}: resource {logical_id}, property {name}"

    # -- DynamoDB -------------------------------------------------------------------------

    def _table(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::DynamoDB::Table", properties)
        for required in ("KeySchema", "AttributeDefinitions"):
            if required not in p:
                raise TemplateError(f"{self._where(logical_id, required)}: required")
        billing = p.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": p.get("TableName") or _physical_name(logical_id, 255),
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            if "ProvisionedThroughput" not in p:
                raise TemplateError(f"{self._where(logical_id, 'ProvisionedThroughput')}: required when PROVISIONED")
            request["ProvisionedThroughput"] = _int_values(p["ProvisionedThroughput"])
        if "GlobalSecondaryIndexes" in p:
            keep = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
            request["GlobalSecondaryIndexes"] = [
                {key: _int_values(value) if key.endswith("Throughput") else value for key, value in index.items()}
                for index in ({k: v for k, v in gsi.items() if k in keep} for gsi in p["GlobalSecondaryIndexes"])
            ]
        if "LocalSecondaryIndexes" in p:
            request["LocalSecondaryIndexes"] = [
                {k: v for k, v in lsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                for lsi in p["LocalSecondaryIndexes"]
            ]
        if "StreamSpecification" in p:
            request["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        if "SSESpecification" in p:
            sse = p["SSESpecification"]  # CloudFormation spells the API's "Enabled" as "SSEEnabled"
            request["SSESpecification"] = {
                "Enabled": _bool(sse.get("SSEEnabled", False)),
                **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
            }
        for key in ("TableClass", "DeletionProtectionEnabled"):
            if key in p:
                request[key] = p[key]
        if p.get("Tags"):
            request["Tags"] = _tags(p["Tags"])
        dynamodb = self.stack.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        name = request["TableName"]
        if "TimeToLiveSpecification" in p:
            ttl = p["TimeToLiveSpecification"]
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": _bool(ttl["Enabled"])},
            )
        pitr = p.get("PointInTimeRecoverySpecification", {})
        if _bool(pitr.get("PointInTimeRecoveryEnabled", False)):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return Resolved("AWS::DynamoDB::Table", name, attributes, emulated=True)

    def _simple_table(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::Serverless::SimpleTable", properties)
        key = p.get("PrimaryKey", {"Name": "id", "Type": "String"})
        key_type = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
        table: dict[str, Any] = {
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": key_type}],
            "BillingMode": "PROVISIONED" if "ProvisionedThroughput" in p else "PAY_PER_REQUEST",
            **{k: v for k, v in p.items() if k in ("TableName", "ProvisionedThroughput", "SSESpecification")},
        }
        return self._table(logical_id, table)

    # -- SQS, SNS, SSM --------------------------------------------------------------------

    def _queue(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::SQS::Queue", properties)
        fifo = _bool(p.get("FifoQueue", False))
        name = p.get("QueueName") or _physical_name(logical_id, 80, ".fifo" if fifo else "")
        attributes = {
            key: json.dumps(value) if isinstance(value, dict) else to_str(value, self._where(logical_id, key))
            for key, value in p.items()
            if key in _QUEUE_ATTRIBUTES
        }
        sqs = self.stack.client("sqs")
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if p.get("Tags"):
            request["tags"] = {t["Key"]: t["Value"] for t in _tags(p["Tags"])}
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Resolved("AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url}, emulated=True)

    def _topic(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::SNS::Topic", properties)
        fifo = _bool(p.get("FifoTopic", False))
        name = p.get("TopicName") or _physical_name(logical_id, 256, ".fifo" if fifo else "")
        attributes = {key: to_str(p[key], self._where(logical_id, key)) for key in _TOPIC_ATTRIBUTES if key in p}
        sns = self.stack.client("sns")
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if p.get("Tags"):
            request["Tags"] = _tags(p["Tags"])
        arn = sns.create_topic(**request)["TopicArn"]
        for subscription in p.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        return Resolved("AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name}, emulated=True)

    def _subscription(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::SNS::Subscription", properties)
        attributes = {}
        if "RawMessageDelivery" in p:
            attributes["RawMessageDelivery"] = to_str(p["RawMessageDelivery"], self._where(logical_id, "Raw"))
        if "FilterPolicy" in p:
            attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
        arn = self.stack.client("sns").subscribe(
            TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=attributes
        )["SubscriptionArn"]
        return Resolved("AWS::SNS::Subscription", arn, {"Arn": arn}, emulated=True)

    def _ssm_parameter(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::SSM::Parameter", properties)
        kind = p.get("Type", "String")
        if kind not in ("String", "StringList"):
            raise TemplateError(
                f"{self._where(logical_id, 'Type')}: {kind} cannot be created by CloudFormation; "
                "seed it with local_stack(ssm_values=...) instead"
            )
        name = p.get("Name") or _physical_name(logical_id, 2048)
        request = {"Name": name, "Type": kind, "Value": to_str(p.get("Value"), self._where(logical_id, "Value"))}
        request |= {k: p[k] for k in ("Description", "AllowedPattern", "Tier", "DataType") if k in p}
        self.stack.client("ssm").put_parameter(**request)
        return Resolved("AWS::SSM::Parameter", name, {"Type": kind, "Value": request["Value"]}, emulated=True)

    # -- Lambda ---------------------------------------------------------------------------

    def _function(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        properties = _merge_globals(self.globals.get("Function") or {}, properties)
        p = self._props(logical_id, "AWS::Serverless::Function", properties)
        if "CodeUri" not in p or not isinstance(p["CodeUri"], str):
            raise TemplateError(f"{self._where(logical_id, 'CodeUri')}: a local directory is needed to run it")
        if "Handler" not in p:
            raise TemplateError(f"{self._where(logical_id, 'Handler')}: required")
        code_dir = (self.template_dir / p["CodeUri"]).resolve()
        handler = str(p["Handler"])
        module_path, _, attribute = handler.rpartition(".")
        source = code_dir / (module_path.replace(".", "/") + ".py")
        if not module_path or not attribute or not source.is_file():
            raise TemplateError(f"{self._where(logical_id, 'Handler')}: {handler!r} is not a function of {source}")
        variables = (p.get("Environment") or {}).get("Variables") or {}
        environment = {
            key: to_str(value, self._where(logical_id, f"Environment.Variables.{key}"))
            for key, value in variables.items()
        } | self.environment
        name = p.get("FunctionName") or _physical_name(logical_id, 64)
        timeout, memory = int(p.get("Timeout", 3)), int(p.get("MemorySize", 128))
        arn = self.stack.client("lambda").create_function(
            FunctionName=name,
            Runtime=p.get("Runtime", "python3.12"),
            Role=self._lambda_role(),
            Handler=handler,
            Code={"ZipFile": _placeholder_zip()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": environment},
        )["FunctionArn"]
        self.router.functions[name] = LocalFunction(
            logical_id=logical_id,
            name=name,
            arn=arn,
            code_dir=code_dir,
            handler=handler,
            timeout=timeout,
            memory_size=memory,
            environment=environment,
            import_paths=[code_dir, *self._layer_paths(properties.get("Layers") or [])],
            module_name=f"_crypto_bot_local_{self.serial}_{logical_id}_{module_path.replace('.', '_')}",
        )
        return Resolved("AWS::Serverless::Function", name, {"Arn": arn}, emulated=True)

    def _layer_paths(self, layers: list[Any]) -> list[Path]:
        """Put the template's own layers (`!Ref Layer` with a local ContentUri) on the handler's import path."""
        paths = []
        for layer in layers:
            if isinstance(layer, dict) and set(layer) == {"Ref"}:
                resource = self.resolver.resources.get(layer["Ref"], {})
                content = (resource.get("Properties") or {}).get("ContentUri")
                if resource.get("Type") == "AWS::Serverless::LayerVersion" and isinstance(content, str):
                    root = (self.template_dir / content).resolve()
                    # Lambda puts a layer's python/ on the path; SAM's build does that for a bare directory.
                    paths.append(root / "python" if (root / "python").is_dir() else root)
        return paths

    def _lambda_role(self) -> str:
        iam = self.stack.client("iam")
        try:
            return str(iam.get_role(RoleName=_LAMBDA_ROLE_NAME)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(RoleName=_LAMBDA_ROLE_NAME, AssumeRolePolicyDocument=_LAMBDA_TRUST_POLICY)
            return str(role["Role"]["Arn"])

    # -- Step Functions -------------------------------------------------------------------

    def _sam_state_machine(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        properties = _merge_globals(self.globals.get("StateMachine") or {}, properties)
        p = self._props(logical_id, "AWS::Serverless::StateMachine", properties)
        if "Definition" in p:
            text, suffix = json.dumps(p["Definition"]), ".json"
        elif isinstance(p.get("DefinitionUri"), str):
            path = self.template_dir / p["DefinitionUri"]
            try:
                text, suffix = path.read_text(encoding="utf-8"), path.suffix
            except OSError as e:
                raise TemplateError(f"{self._where(logical_id, 'DefinitionUri')}: {e}") from e
        else:
            raise TemplateError(f"{self._where(logical_id, 'DefinitionUri')}: a local Definition file is needed")
        return self._state_machine(
            logical_id, "AWS::Serverless::StateMachine", text, suffix, p.get("Name"), p.get("Type"), p
        )

    def _cfn_state_machine(self, logical_id: str, properties: dict[str, Any]) -> Resolved:
        p = self._props(logical_id, "AWS::StepFunctions::StateMachine", properties)
        if "Definition" in p:
            text = json.dumps(p["Definition"])
        elif "DefinitionString" in p:
            text = p["DefinitionString"]
        else:
            raise TemplateError(f"{self._where(logical_id, 'DefinitionString')}: an inline definition is needed")
        kind = "AWS::StepFunctions::StateMachine"
        return self._state_machine(
            logical_id, kind, text, ".json", p.get("StateMachineName"), p.get("StateMachineType"), p
        )

    def _state_machine(
        self,
        logical_id: str,
        kind: str,
        text: str,
        suffix: str,
        name: str | None,
        machine_type: str | None,
        p: dict[str, Any],
    ) -> Resolved:
        where = self._where(logical_id, "DefinitionSubstitutions")
        substitutions = {key: to_str(v, where) for key, v in (p.get("DefinitionSubstitutions") or {}).items()}
        substitutions |= self.substitution_overrides
        missing = sorted({m for m in SUB_VARIABLE.findall(text) if m not in substitutions})
        if missing:
            raise TemplateError(f"{where}: the definition uses {', '.join(missing)}, which have no substitution")
        # Textual, as CloudFormation does it: `"Seconds": ${WaitSeconds}` becomes a number.
        text = SUB_VARIABLE.sub(lambda m: substitutions[m.group(1)], text)
        try:
            definition = yaml.safe_load(text) if suffix in (".yaml", ".yml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise TemplateError(f"{self._where(logical_id, 'Definition')}: not valid after substitution: {e}") from e
        name = name or _physical_name(logical_id, 80)
        arn = self.stack.client("stepfunctions").create_state_machine(
            name=name,
            definition=json.dumps(definition),
            # moto does not check it, and no IAM policy is evaluated locally.
            roleArn=f"arn:aws:iam::{self.account_id}:role/{STACK_NAME}-{logical_id[:40]}-role",
            type=machine_type or "STANDARD",
        )["stateMachineArn"]
        return Resolved(kind, arn, {"Arn": arn, "Name": name}, emulated=True)


def _bool(value: Any) -> bool:
    """Read a CloudFormation boolean, which may be a YAML bool or the string "true"/"false"."""
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _int_values(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Turn numeric strings (e.g. from !Ref of a Number parameter) into the ints the API wants."""
    return {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in mapping.items()}


def _placeholder_zip() -> bytes:
    """Return a tiny deployment package: moto wants one, and the code never runs from it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "Served in-process by crypto_bot_tools.local.lambdas.\n")
    return buffer.getvalue()
