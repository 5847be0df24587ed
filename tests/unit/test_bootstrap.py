"""The composition root, wired with hand-written fakes for the AWS clients and the key's store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from botocore.exceptions import ClientError

from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.errors import ConfigError
from crypto_bot.entrypoints import steps
from crypto_bot.entrypoints.bootstrap import App, bootstrap
from crypto_bot.entrypoints.settings import Settings
from tests.support.environment import template_environment

NOW = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)


class FakeDynamoDB:
    """The table: one item per key; ``outage`` answers every read with a throttling error."""

    def __init__(self, *, outage: bool = False) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self.outage = outage

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803 (boto3's)
        if self.outage:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")
        item = self.items.get((Key["pk"]["S"], Key["sk"]["S"]))
        return {} if item is None else {"Item": item}

    def put_item(self, *, TableName: str, Item: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        self.items[(Item["pk"]["S"], Item["sk"]["S"])] = Item
        return {}

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        return {}


class FakeSQS:
    def __init__(self, bodies: list[str]) -> None:
        self.waiting = [{"MessageId": f"m{n}", "Body": body, "ReceiptHandle": f"r{n}"} for n, body in enumerate(bodies)]
        self.receives: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def receive_message(self, **request: Any) -> dict[str, Any]:
        self.receives.append(request)
        batch, self.waiting = self.waiting[:10], self.waiting[10:]
        return {"Messages": batch}

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:  # noqa: N803
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]
        return {"Successful": Entries}


class FakeSNS:
    def __init__(self) -> None:
        self.published: list[dict[str, str]] = []

    def publish(self, **request: str) -> dict[str, Any]:
        self.published.append(request)
        return {"MessageId": "1"}


class CountingSecrets:
    def __init__(self) -> None:
        self.reads = 0

    def api_key(self) -> dict[str, str]:
        self.reads += 1
        return {"apiKey": "key", "secret": "secret"}  # pragma: allowlist secret (a fake)


def clients_of(**fakes: Any) -> Callable[[str], Any]:
    def client(service: str) -> Any:
        if service not in fakes:
            raise AssertionError(f"bootstrap asked for a {service} client the test did not expect")
        return fakes[service]

    return client


def settings(**values: str) -> Settings:
    return Settings.from_env(template_environment(TABLE_NAME="table", **values))


def paper_settings(**values: str) -> Settings:
    return settings(**{"PAPER_TRADING": "true", "PAPER_PRICES": "alerts", "PAPER_MARKETS": "permissive", **values})


def test_a_paper_stage_priced_by_the_alerts_hands_the_steps_its_account_as_the_alert_priced_market() -> None:
    table = FakeDynamoDB()
    app = bootstrap(paper_settings(PAPER_STARTING_CASH="2500"), clients_of(dynamodb=table))

    with app.session() as session:
        account = session.workflow.exchange
        assert isinstance(account, PaperExchange)
        assert session.alert_prices is account
        assert account.fetch_balances()["USDT"].free == D("2500")
        session.alert_prices.set_price("BTC/USDT", D("60000"))

    assert ("PAPER", "STATE") in table.items  # the account is saved when the step succeeds
    with app.session() as session:
        assert session.alert_prices is not None
        assert session.alert_prices.prices == {"BTC/USDT": D("60000")}


def test_a_live_priced_paper_stage_has_no_alert_priced_market() -> None:
    app = bootstrap(paper_settings(PAPER_PRICES="live"), clients_of(dynamodb=FakeDynamoDB()))

    with app.session() as session:
        account = session.workflow.exchange
        assert isinstance(account, PaperExchange)
        assert account.price_feed is not None
        assert session.alert_prices is None


def test_a_paper_stage_never_reads_the_api_key() -> None:
    secrets = CountingSecrets()
    app = bootstrap(paper_settings(), clients_of(dynamodb=FakeDynamoDB()), secrets=secrets)

    with app.session():
        pass

    assert secrets.reads == 0


def test_a_live_stage_reads_the_key_once_per_container_and_keeps_its_exchange() -> None:
    secrets = CountingSecrets()
    # The markets cache cannot be read: ccxt is left to download the markets when it needs them.
    app = bootstrap(settings(), clients_of(dynamodb=FakeDynamoDB(outage=True)), secrets=secrets)

    with app.session() as first:
        exchange = first.workflow.exchange
        assert first.alert_prices is None
    with app.session() as second:
        assert second.workflow.exchange is exchange

    assert isinstance(exchange, CcxtExchange)
    assert exchange.client.apiKey == "key"  # pragma: allowlist secret (the fake's)
    assert secrets.reads == 1


def test_the_workflow_takes_the_template_settings() -> None:
    app = bootstrap(paper_settings(MAX_SIGNAL_AGE_MINUTES="30"), clients_of(dynamodb=FakeDynamoDB()))

    assert app.workflow_settings.max_signal_age == timedelta(minutes=30)
    assert app.workflow_settings.fill_timeout == timedelta(seconds=60)
    assert app.workflow_settings.max_reprice_attempts == 2
    assert app.workflow_settings.retry.attempts == 2
    assert sorted(app.config.strategies) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]  # the repository's strategy_config.json


def test_the_signals_queue_drains_into_the_step_and_deletes_what_it_took() -> None:
    sqs = FakeSQS(["a", "b"])
    app = bootstrap(
        paper_settings(SIGNALS_QUEUE_URL="https://sqs/signals", SQS_WAIT_SECONDS="0"),
        clients_of(dynamodb=FakeDynamoDB(), sqs=sqs),
    )
    assert app.alert_queue is not None
    taken: list[tuple[str, str]] = []

    drained = app.alert_queue(lambda body, message_id, _at: taken.append((body, message_id)), refused=lambda *_: None)

    assert taken == [("a", "m0"), ("b", "m1")]
    assert sqs.deleted == ["r0", "r1"]
    assert drained.failed == []
    assert {(r["QueueUrl"], r["WaitTimeSeconds"]) for r in sqs.receives} == {("https://sqs/signals", 0)}


def test_the_notifier_publishes_to_the_topic_and_the_lease_is_renewed_in_the_table() -> None:
    sns, table = FakeSNS(), FakeDynamoDB()
    app = bootstrap(
        paper_settings(NOTIFICATIONS_TOPIC_ARN="arn:aws:sns:us-east-1:1:topic", LOCK_LEASE_SECONDS="600"),
        clients_of(dynamodb=table, sns=sns),
    )
    assert app.notifier is not None

    app.notifier("subject", "message")
    assert app.renew_lease("execution-1", NOW)

    assert sns.published == [{"TopicArn": "arn:aws:sns:us-east-1:1:topic", "Subject": "subject", "Message": "message"}]
    [update] = table.updates
    assert update["ExpressionAttributeValues"][":me"] == {"S": "execution-1"}
    assert update["ExpressionAttributeValues"][":until"] == {"S": "2024-08-10T08:11:00.000000Z"}


@pytest.mark.parametrize(
    ("run", "event", "name"),
    [
        (steps.collect, {"started_at": NOW.isoformat(), "execution_name": "x", "input": {}}, "SIGNALS_QUEUE_URL"),
        (steps.finalize, {"cycle_id": "c"}, "NOTIFICATIONS_TOPIC_ARN"),
    ],
    ids=["collect", "finalize"],
)
def test_a_step_refuses_to_run_without_the_setting_only_its_function_has(
    run: Callable[[Any, App], Any], event: dict[str, Any], name: str
) -> None:
    app = bootstrap(paper_settings(), clients_of(dynamodb=FakeDynamoDB()))

    with pytest.raises(ConfigError, match=f"^{name} is required by the {run.__name__} step but not set$"):
        run(event, app)
