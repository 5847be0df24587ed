"""``crypto-bot verify``: check a deployed stack, or the secrets a deploy is about to read.

``verify --stack NAME`` runs after every deploy. Each check prints one line (``ok``, ``warn`` or
``FAIL``) and, when it fails, what to do; the command exits 1 on any failure:

* the stack's Outputs and Parameters (CloudFormation DescribeStacks, through :mod:`crypto_bot_tools.ops.stack`);
* the SSM parameters it reads exist and decrypt (GetParameter WithDecryption; values are never printed);
* the cycle schedule fires one minute after each bar close of the stack's Timeframe;
* the API key reads balances (the layer's ccxt adapter, with the key as the functions read it);
* the key cannot withdraw, where the venue says so (Binance's API key permission endpoint);
* a test alert goes through the webhook's real integration (API Gateway's TestInvokeMethod: a call from the
  service itself, so the IP allowlist stays closed) and reaches the queue marked ``"test": true``, which the
  core records as ignored and never trades (:func:`crypto_bot.domain.signals.is_test_alert`).

``verify --pre-deploy --config-env ENV`` runs before ``sam deploy`` (``make deploy``): it reads the parameter
names that deploy will pass (samconfig.toml's section, else template.yaml's defaults) and fails if a secret is
missing, so that a stack is never deployed to read a parameter that is not there.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.timeframe import Schedule, Timeframe
from crypto_bot_tools.ops.stack import (
    DEFAULT_STACK,
    STACK_ENV,
    STATE_MACHINE_OUTPUT,
    StackResources,
    aws_errors,
    boto3_session,
    stack_resources,
)

__all__ = ["Check", "pre_deploy_checks", "register", "stack_checks", "test_alert"]

Status = Literal["ok", "warn", "fail"]
Clients = Callable[[str], Any]

# What template.yaml's Outputs and Parameters give the commands; a stack missing one was deployed from another template.
REQUIRED_OUTPUTS: Final = (
    "TableName",
    STATE_MACHINE_OUTPUT,
    "SignalsQueueUrl",
    "UrgentQueueUrl",
    "NotificationsTopicArn",
    "WebhookUrl",
)
REQUIRED_PARAMETERS: Final = (
    "Stage",
    "ExchangeName",
    "Timeframe",
    "CycleSchedule",
    "PaperTrading",
    "Sandbox",
    "SecretStore",
    "ApiKeyParameterName",
    "WebhookTokenParameterName",
)
# The cycle runs this long after each bar close (crypto_bot.entrypoints.settings.DEFAULT_SCHEDULE_OFFSET; the
# template sets no SCHEDULE_OFFSET), so the schedule must fire then.
SCHEDULE_OFFSET: Final = timedelta(minutes=1)
FIRINGS_CHECKED: Final = 6
# template.yaml's WebhookUrl output: https://${WebhookApi}.execute-api.${AWS::Region}.amazonaws.com/${Stage}/signals
_WEBHOOK_URL: Final = re.compile(r"^https://([a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com/[^/]+(/signals)$")
_FIX_NAMES: Final = "make deploy with samconfig.toml's names, or create the parameter (README, Deploy to AWS, step 2)"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and what to do when it did not."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[self.status]
        text = f"{mark}  {self.name}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if self.fix and self.status != "ok" else text


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if not isinstance(e, ConfigError) else str(e)


# --------------------------------------------------------------------------- secrets


def _read_secret(client: Clients, store: str, name: str) -> str:
    """Return a secret's value (never shown), raising ConfigError naming it when it is missing or cannot decrypt."""
    from botocore.exceptions import ClientError

    try:
        if store == "secretsmanager":
            return str(client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
        # SSM API reference, GetParameter: WithDecryption returns a SecureString's plain value; a missing name is
        # ParameterNotFound, a key the caller may not use is AccessDeniedException (or a KMS error).
        return str(client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        raise ConfigError(f"{name} in {store}: {code}") from None


def secret_checks(client: Clients, parameters: Mapping[str, str], *, where: str) -> list[Check]:
    """Check the webhook token and the API key the parameters name exist, decrypt and have the expected shape."""
    from crypto_bot.adapters.aws.secrets import read_api_key

    checks = []
    stage = parameters.get("Stage", "")
    store = parameters.get("SecretStore", "ssm")
    paper = parameters.get("PaperTrading", "false").lower() == "true"
    token_name = parameters.get("WebhookTokenParameterName", "")
    key_name = parameters.get("ApiKeyParameterName", "")
    for label, name in (("webhook token", token_name), ("API key", key_name)):
        if stage and f"/{stage}/" not in name:
            checks.append(
                Check(
                    f"{label} name",
                    "warn",
                    f"{name} ({where}) is not under /crypto-bot/{stage}/ although Stage={stage}",
                    f"use /crypto-bot/{stage}/... in samconfig.toml's section for this stage, so stages never share",
                )
            )
    try:
        token = _read_secret(client, "ssm", token_name)
        checks.append(
            Check("webhook token", "ok", f"{token_name} exists and decrypts")
            if token.strip()
            else Check("webhook token", "fail", f"{token_name} is empty", "put a long random token (README, step 2)")
        )
    except ConfigError as e:
        checks.append(Check("webhook token", "fail", f"cannot read {e}: every alert is refused 403", _FIX_NAMES))
    try:
        read_api_key(
            client("ssm") if store == "ssm" else None,
            client("secretsmanager") if store == "secretsmanager" else None,
            key_name,
            store,
        )
        checks.append(Check("API key", "ok", f"{key_name} exists, decrypts and holds apiKey and secret"))
    except ConfigError as e:
        if paper:
            checks.append(Check("API key", "warn", f"{e}; PaperTrading=true does not use it", _FIX_NAMES))
        else:
            checks.append(Check("API key", "fail", f"{e}: every cycle would fail", _FIX_NAMES))
    return checks


# --------------------------------------------------------------------------- the schedule


def expected_schedule(timeframe: Timeframe) -> str | None:
    """Return a cron expression firing one minute after each bar close of ``timeframe``, where cron can say it."""
    minutes = timeframe.seconds // 60
    if minutes < 60:
        return f"cron(1/{minutes} * * * ? *)"
    if minutes < 24 * 60:
        return f"cron(1 0/{minutes // 60} * * ? *)"
    if minutes == 24 * 60:
        return "cron(1 0 * * ? *)"
    return None  # bars of several days are aligned to 1970-01-01, which cron cannot count from


def _deployed_schedule(client: Clients, state_machine_arn: str) -> tuple[str, str, str, str]:
    """Return (what, expression, timezone, state) of the schedule that starts ``state_machine_arn``."""
    scheduler = client("scheduler")
    # EventBridge Scheduler API reference: ListSchedules' ScheduleSummary carries Target.Arn and State;
    # GetSchedule adds ScheduleExpression and ScheduleExpressionTimezone. SAM's ScheduleV2 event makes one.
    for page in scheduler.get_paginator("list_schedules").paginate():
        for summary in page.get("Schedules", []):
            if summary.get("Target", {}).get("Arn") == state_machine_arn:
                found = scheduler.get_schedule(Name=summary["Name"], GroupName=summary.get("GroupName", "default"))
                return (
                    f"schedule {summary['Name']}",
                    str(found["ScheduleExpression"]),
                    str(found.get("ScheduleExpressionTimezone") or "UTC"),
                    str(found.get("State", "ENABLED")),
                )
    # A `Schedule` (EventBridge rule) event instead: ListRuleNamesByTarget, then DescribeRule.
    events = client("events")
    for name in events.list_rule_names_by_target(TargetArn=state_machine_arn).get("RuleNames", []):
        rule = events.describe_rule(Name=name)
        if rule.get("ScheduleExpression"):
            return f"rule {name}", str(rule["ScheduleExpression"]), "UTC", str(rule.get("State", "ENABLED"))
    raise ConfigError(f"no EventBridge schedule or rule starts {state_machine_arn}")


def schedule_check(resources: StackResources, client: Clients, now: datetime) -> Check:
    """Check the schedule that starts the state machine fires one minute after each bar close of the Timeframe."""
    from zoneinfo import ZoneInfo

    from crypto_bot_tools.local.schedule import parse_schedule

    timeframe = Timeframe.parse(resources.parameter("Timeframe"))
    wanted = expected_schedule(timeframe)
    fix = f"deploy with CycleSchedule={wanted!r}" if wanted else "set CycleSchedule to fire after each bar close"
    try:
        what, expression, zone, state = _deployed_schedule(client, resources.output(STATE_MACHINE_OUTPUT))
    except ConfigError as e:
        return Check("schedule", "fail", f"{e}: no cycle runs on schedule", f"redeploy template.yaml; {fix}")
    if state != "ENABLED":
        return Check("schedule", "fail", f"{what} is {state}: no cycle runs on schedule", "enable it, or redeploy")
    ticks = Schedule(timeframe, SCHEDULE_OFFSET)
    fired: list[datetime] = []
    try:
        schedule = parse_schedule(expression, anchor=now, zone=UTC if zone == "UTC" else ZoneInfo(zone))
        moment = now
        for _ in range(FIRINGS_CHECKED):
            following = schedule.next_after(moment)
            if following is None:
                break
            fired.append(following.astimezone(UTC))
            moment = following
    except ValueError as e:
        return Check("schedule", "fail", f"{what}: {e}", fix)
    expected = []
    tick = ticks.tick_at_or_after(now + timedelta(microseconds=1))
    for _ in range(FIRINGS_CHECKED):
        expected.append(tick)
        tick += timeframe.delta
    if fired == expected:
        return Check("schedule", "ok", f"{what} {expression} fires one minute after each {timeframe.label} bar close")
    shown = ", ".join(f"{m:%Y-%m-%d %H:%M}" for m in fired[:3]) or "never"
    due = ", ".join(f"{m:%Y-%m-%d %H:%M}" for m in expected[:3])
    return Check(
        "schedule",
        "fail",
        f"{what} {expression} ({zone}) next fires {shown} UTC; Timeframe={timeframe.label} wants {due} UTC",
        fix,
    )


# --------------------------------------------------------------------------- the exchange


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def exchange_checks(resources: StackResources, client: Clients) -> list[Check]:
    """Read balances with the stack's key and, where the venue says so, whether the key may withdraw."""
    from crypto_bot.adapters.aws.secrets import read_api_key
    from crypto_bot.adapters.ccxt.exchange import CcxtExchange, translate_error

    exchange_id = resources.parameter("ExchangeName")
    paper = resources.paper_trading
    store = resources.parameter("SecretStore")
    try:
        credentials = read_api_key(
            client("ssm") if store == "ssm" else None,
            client("secretsmanager") if store == "secretsmanager" else None,
            resources.parameter("ApiKeyParameterName"),
            store,
        )
    except ConfigError as e:
        status: Status = "warn" if paper else "fail"
        return [Check("balances", status, f"not checked: {e}", _FIX_NAMES)]
    secrets = [credentials.get("apiKey", ""), credentials.get("secret", ""), credentials.get("password", "")]
    sandbox = resources.parameter("Sandbox").lower() == "true"
    try:
        exchange = CcxtExchange(
            exchange_id,
            api_key=credentials.get("apiKey"),
            secret=credentials.get("secret"),
            password=credentials.get("password"),
            sandbox=sandbox,
            options=resources.exchange_options,
        )
        balances = exchange.fetch_balances()
    except Exception as e:  # any failure is the check's answer; the message is scrubbed of the key
        return [
            Check(
                "balances",
                "warn" if paper else "fail",
                _scrub(_error(e), secrets),
                f"give the key on {exchange_id} permission to read the account (and trade), and check it is the "
                "key stored under ApiKeyParameterName",
            )
        ]
    assets = f"{len(balances)} asset{'' if len(balances) == 1 else 's'}"
    checks = [Check("balances", "ok", f"the API key reads {exchange_id}'s balances ({assets})")]
    if exchange_id != "binance" or sandbox:
        why = "the testnet has no wallet endpoints" if sandbox else f"{exchange_id} has no endpoint for it here"
        checks.append(
            Check(
                "withdrawals",
                "warn",
                f"not checked ({why})",
                f"open the key's settings on {exchange_id} and make sure withdrawals are off",
            )
        )
        return checks
    try:
        # Binance wallet API, "Get API Key Permission (USER_DATA)": GET /sapi/v1/account/apiRestrictions, signed,
        # answers ipRestrict, enableReading, enableWithdrawals, enableSpotAndMarginTrading ... as booleans
        # (developers.binance.com/docs/wallet/account/api-key-permission). ccxt names it sapiGetAccountApiRestrictions.
        answer = exchange.client.sapi_get_account_apirestrictions()
    except Exception as e:  # ccxt's error, named as the adapter would translate it
        try:
            error = translate_error(e).__name__
        except TypeError:
            error = type(e).__name__
        return [
            *checks,
            Check(
                "withdrawals",
                "fail",
                f"cannot read the key's permissions ({error}: {_scrub(str(e), secrets)})",
                "allow the key to read the account; retry",
            ),
        ]
    withdrawals = answer.get("enableWithdrawals") if isinstance(answer, Mapping) else None
    if withdrawals is False:
        checks.append(Check("withdrawals", "ok", "the key cannot withdraw (enableWithdrawals false)"))
    elif withdrawals is True:
        checks.append(
            Check(
                "withdrawals",
                "fail",
                "the key may withdraw (enableWithdrawals true): a stolen key could empty the account",
                "Binance, API Management: edit the key and untick Enable Withdrawals (or make a new trade-only key)",
            )
        )
    else:
        checks.append(Check("withdrawals", "fail", f"the answer has no enableWithdrawals: {answer!r}", "retry"))
    return checks


# --------------------------------------------------------------------------- the webhook


def test_alert(now: datetime) -> dict[str, Any]:
    """Return the test alert verify sends: marked ``"test": true`` and with no ticker, so it cannot trade.

    The core records an alert marked as a test as ignored, never trading it; a layer older than the marker
    rejects it for its missing fields, which never trades either.
    """
    return {
        "test": True,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "order_comment": "crypto-bot verify",
    }


def webhook_check(resources: StackResources, client: Clients, now: datetime) -> Check:
    """Send a test alert through POST /signals' integration with TestInvokeMethod; check the queue took it."""
    url = resources.output("WebhookUrl")
    found = _WEBHOOK_URL.match(url)
    if found is None:
        return Check("test alert", "fail", f"WebhookUrl {url} is not an API Gateway URL", "redeploy template.yaml")
    api_id, path = found.group(1), found.group(2)
    apigateway = client("apigateway")
    # API Gateway API reference, GetResources: items with id and path (limit at most 500).
    items = apigateway.get_resources(restApiId=api_id, limit=500).get("items", [])
    resource_id = next((item["id"] for item in items if item.get("path") == path), None)
    if resource_id is None:
        return Check("test alert", "fail", f"API {api_id} has no {path} resource", "redeploy template.yaml")
    try:
        token = _read_secret(client, "ssm", resources.parameter("WebhookTokenParameterName"))
    except ConfigError as e:
        return Check("test alert", "fail", f"not sent: cannot read the webhook token {e}", _FIX_NAMES)
    body = json.dumps(test_alert(now))
    # API Gateway API reference, TestInvokeMethod: simulates a call of the method with the given path, query
    # string, headers and body, and answers status, body, headers, log and latency. The call comes from the API
    # Gateway service, not from an address on the internet, so the resource policy's IP allowlist stays as it is.
    # The token goes along as TradingView sends it, so that the answer is the same whether or not the simulation
    # runs the authorizer; neither it nor the execution log (which may hold the query string) is ever printed.
    answer = apigateway.test_invoke_method(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod="POST",
        pathWithQueryString=f"{path}?token={quote(token, safe='')}",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    status = int(answer.get("status", 0))
    try:
        reply = json.loads(answer.get("body") or "{}")
    except json.JSONDecodeError:
        reply = {}
    if status == 200 and isinstance(reply, Mapping) and reply.get("accepted") is True:
        return Check(
            "test alert",
            "ok",
            f"POST {path} queued it as message {reply.get('id')}; the next cycle records it as an ignored test "
            "alert that never trades (crypto-bot signals)",
        )
    reason = reply.get("reason") if isinstance(reply, Mapping) else None
    return Check(
        "test alert",
        "fail",
        f"POST {path} answered {status}: {_scrub(str(reason or answer.get('body')), [token])}",
        "read the execution log: aws apigateway test-invoke-method --rest-api-id "
        f"{api_id} --resource-id {resource_id} --http-method POST --path-with-query-string "
        "'/signals?token=<the token>' --body '{\"test\": true}'",
    )


# --------------------------------------------------------------------------- the runs


def stack_checks(
    stack: str, client: Clients, *, now: datetime | None = None, with_test_alert: bool = True
) -> Iterator[Check]:
    """Yield the checks of a deployed stack, one at a time (the first failure to find the stack ends them)."""
    moment = now or datetime.now(UTC)
    try:
        resources = stack_resources(client("cloudformation"), stack)
    except ConfigError as e:
        yield Check("stack", "fail", str(e), "deploy it (make deploy) or pass --stack NAME --region R")
        return
    missing = [f"output {k}" for k in REQUIRED_OUTPUTS if not resources.outputs.get(k)]
    missing += [f"parameter {k}" for k in REQUIRED_PARAMETERS if k not in resources.parameters]
    if missing:
        yield Check("stack", "fail", f"{stack} lacks {', '.join(missing)}", "deploy the current template.yaml")
        return
    yield Check("stack", "ok", f"{stack} in {resources.region} has every output and parameter")
    yield from secret_checks(client, resources.parameters, where=f"stack {stack}")
    yield _guarded("schedule", lambda: schedule_check(resources, client, moment))
    yield from exchange_checks(resources, client)
    if with_test_alert:
        yield _guarded("test alert", lambda: webhook_check(resources, client, moment))


def _guarded(name: str, run: Callable[[], Check]) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return run()
    except ClientError as e:
        error = e.response.get("Error", {})
        return Check(
            name,
            "fail",
            f"AWS {e.operation_name}: {error.get('Code')}: {error.get('Message', '')}",
            "check your AWS credentials may read the stack (and retry)",
        )
    except (BotoCoreError, ConfigError, ValueError) as e:
        return Check(name, "fail", _error(e), "retry; if it persists, redeploy template.yaml")


def deploy_parameters(config_env: str, samconfig: Path, template: Path) -> tuple[dict[str, str], str | None]:
    """Return the parameters ``sam deploy --config-env`` passes (template defaults, then overrides) and its region."""
    from crypto_bot_tools.local.template import TemplateError, load_template

    try:
        declared = load_template(template).get("Parameters", {})
    except TemplateError as e:
        raise ConfigError(str(e)) from None
    parameters = {k: str(v["Default"]) for k, v in declared.items() if isinstance(v, dict) and "Default" in v}
    region = None
    if samconfig.exists():
        try:
            document = tomllib.loads(samconfig.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{samconfig}: {e}") from None
        if config_env not in document:
            raise ConfigError(f"{samconfig} has no [{config_env}] section: pass --config-env default or prod")
        section = document[config_env]
        deploy = section.get("deploy", {}).get("parameters", {})
        overrides = deploy.get("parameter_overrides")
        # samconfig.toml takes parameter_overrides as a list of "Key=Value" or as one string of them.
        items = shlex.split(overrides) if isinstance(overrides, str) else [str(i) for i in overrides or ()]
        parameters.update(item.partition("=")[::2] for item in items if "=" in item)
        region = deploy.get("region") or section.get("global", {}).get("parameters", {}).get("region")
    elif config_env != "default":
        raise ConfigError(f"no {samconfig}: --config-env {config_env} names nothing")
    return parameters, region


def pre_deploy_checks(client: Clients, parameters: Mapping[str, str], config_env: str) -> list[Check]:
    """Check the secrets a deploy with ``parameters`` will read exist and decrypt."""
    return secret_checks(client, parameters, where=f"samconfig.toml [{config_env}]")


# --------------------------------------------------------------------------- the command


def register(commands: Any) -> None:
    """Add ``verify`` to the CLI."""
    verify = commands.add_parser(
        "verify",
        help="self-check a deployed stack (or, with --pre-deploy, the secrets a deploy will read)",
        description="Check a deployed stack: outputs and parameters, secrets, schedule, API key, withdrawals, "
        "and a test alert through the webhook's integration. One line per check; exits 1 on any failure.",
    )
    verify.add_argument(
        "--stack", help=f"CloudFormation stack name (default ${STACK_ENV}, else {DEFAULT_STACK})", metavar="NAME"
    )
    verify.add_argument("--region", help="AWS region (default: samconfig.toml's, else the AWS CLI's)", metavar="R")
    verify.add_argument(
        "--pre-deploy",
        action="store_true",
        help="before sam deploy: check the SSM parameters samconfig.toml's --config-env section names exist",
    )
    verify.add_argument("--config-env", default="default", help="samconfig.toml section (default: default)")
    verify.add_argument("--samconfig", type=Path, default=Path("samconfig.toml"), help=argparse.SUPPRESS)
    verify.add_argument("--template", type=Path, default=Path("template.yaml"), help=argparse.SUPPRESS)
    verify.add_argument("--no-test-alert", action="store_true", help="do not send the test alert")
    verify.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    import os

    if args.pre_deploy:
        parameters, region = deploy_parameters(args.config_env, args.samconfig, args.template)
        with aws_errors():
            checks = pre_deploy_checks(boto3_session(args.region or region), parameters, args.config_env)
    else:
        stack = args.stack or os.environ.get(STACK_ENV) or DEFAULT_STACK
        with aws_errors():
            checks = []
            for check in stack_checks(stack, boto3_session(args.region), with_test_alert=not args.no_test_alert):
                print(check.line(), flush=True)
                checks.append(check)
            failed = sum(c.status == "fail" for c in checks)
            print(f"{len(checks)} checks, {failed} failed" if failed else f"{len(checks)} checks passed")
            return 1 if failed else 0
    for check in checks:
        print(check.line())
    failed = sum(c.status == "fail" for c in checks)
    if failed:
        print(f"crypto-bot: {failed} secret(s) this deploy reads cannot be used; nothing was deployed", file=sys.stderr)
    return 1 if failed else 0
