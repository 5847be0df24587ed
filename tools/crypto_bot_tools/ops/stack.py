"""A deployed stack found by its CloudFormation name, and botocore's errors said as the CLI says them.

Every resource (table, state machine, queues, topic) comes from the stack's Outputs and every
setting from its Parameters, so there are no physical names to type. boto3 is imported only
when a command talks to AWS: it is not a runtime dependency of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from crypto_bot.domain.config import parse_exchange_options
from crypto_bot.domain.errors import ConfigError, StoreError

__all__ = [
    "DEFAULT_STACK",
    "NOTIFICATIONS_OUTPUT",
    "NO_CREDENTIALS",
    "STACK_ENV",
    "STATE_MACHINE_OUTPUT",
    "TABLE_OUTPUT",
    "StackResources",
    "aws_errors",
    "boto3_session",
    "stack_resources",
]

DEFAULT_STACK: Final = "crypto-bot-dev"  # samconfig.toml's default stack_name
STACK_ENV: Final = "CRYPTO_BOT_STACK"
NO_CREDENTIALS: Final = "configure AWS credentials (aws configure) or pass --local URL"
NO_BOTO3: Final = "the ops commands need boto3 to talk to AWS: uv sync (dev group) or pip install boto3"
# Outputs of template.yaml the commands read.
TABLE_OUTPUT: Final = "TableName"
STATE_MACHINE_OUTPUT: Final = "TradeCycleStateMachineArn"
NOTIFICATIONS_OUTPUT: Final = "NotificationsTopicArn"  # the NotificationsTopic the cycles' summaries go to


@dataclass(frozen=True)
class StackResources:
    """A deployed stack as the commands need it: its Outputs and Parameters by key."""

    name: str
    region: str
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]

    def output(self, key: str) -> str:
        """Return one output's value; raise ConfigError naming the output when the stack lacks it."""
        value = self.outputs.get(key)
        if not value:
            raise ConfigError(
                f"stack {self.name} has no output {key}: deploy the current template.yaml (sam deploy) "
                f"so that its Outputs include {key}"
            )
        return value

    def parameter(self, key: str) -> str:
        """Return one parameter's value; raise ConfigError naming the parameter when the stack lacks it."""
        if key not in self.parameters:
            raise ConfigError(
                f"stack {self.name} has no parameter {key}: is it a crypto-bot stack deployed from template.yaml?"
            )
        return self.parameters[key]

    @property
    def paper_trading(self) -> bool:
        return self.parameter("PaperTrading").lower() == "true"

    @property
    def exchange_options(self) -> dict[str, Any]:
        """Return the stack's ccxt options (its ExchangeOptions parameter), as every ccxt client it builds uses."""
        if "ExchangeOptions" not in self.parameters:
            return {}  # a stack deployed before the parameter existed: its functions ran without options
        return parse_exchange_options(self.parameters["ExchangeOptions"], f"stack {self.name} ExchangeOptions")


def stack_resources(cfn: Any, stack: str) -> StackResources:
    """Describe ``stack`` with a CloudFormation client; raise ConfigError if it does not exist."""
    from botocore.exceptions import ClientError

    region = str(cfn.meta.region_name)
    try:
        found = cfn.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as e:
        error = e.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            raise ConfigError(
                f"stack {stack} not found in {region}: pass --stack NAME (or set {STACK_ENV}) and --region, "
                "or --local URL for crypto-bot local"
            ) from None
        raise
    if not found:
        raise ConfigError(f"stack {stack} not found in {region}")
    description = found[0]
    return StackResources(
        name=stack,
        region=region,
        outputs={o["OutputKey"]: str(o.get("OutputValue", "")) for o in description.get("Outputs", [])},
        parameters={
            p["ParameterKey"]: str(p.get("ResolvedValue", p.get("ParameterValue", "")))
            for p in description.get("Parameters", [])
        },
    )


def boto3_session(region: str | None) -> Callable[[str], Any]:
    """Open a boto3 session in ``region`` (None: the AWS CLI's); return a function giving one client per service."""
    try:
        import boto3
    except ImportError:
        raise ConfigError(NO_BOTO3) from None
    session = boto3.session.Session(region_name=region)
    cache: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(service)
        return cache[service]

    return client


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore's credential, region and service errors into ConfigErrors the CLI reports."""
    try:
        import botocore.exceptions as boto
    except ImportError:
        raise ConfigError(NO_BOTO3) from None
    try:
        yield
    except (boto.NoCredentialsError, boto.PartialCredentialsError) as e:
        raise ConfigError(f"no usable AWS credentials ({e}): {NO_CREDENTIALS}") from None
    except boto.ProfileNotFound as e:
        raise ConfigError(f"{e}: {NO_CREDENTIALS}") from None
    except boto.NoRegionError:
        raise ConfigError("no AWS region: pass --region or set AWS_REGION (aws configure)") from None
    except boto.EndpointConnectionError as e:
        raise ConfigError(f"cannot reach AWS: {e}") from None
    except boto.ClientError as e:
        error = e.response.get("Error", {})
        raise ConfigError(f"AWS {e.operation_name}: {error.get('Code', 'error')}: {error.get('Message', '')}") from None
    except StoreError as e:
        # The DynamoDB adapter wraps every botocore error; a missing credential is still the user's to fix.
        if isinstance(e.__cause__, boto.NoCredentialsError | boto.PartialCredentialsError):
            raise ConfigError(f"no usable AWS credentials: {NO_CREDENTIALS}") from None
        raise
