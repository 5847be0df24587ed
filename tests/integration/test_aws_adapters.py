"""The small AWS adapters under moto: SQS intake, credentials, lease times, notifications (the lock: test_lock.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from crypto_bot.adapters.aws.lock import lease_time
from crypto_bot.adapters.aws.secrets import AwsSecrets
from crypto_bot.adapters.aws.sqs_intake import drain_queue, sent_at
from crypto_bot.domain.errors import ConfigError, StoreUnavailable


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    # Powertools caches parameters per process, as it should in Lambda; tests must not share them.
    parameters.clear_caches()
    with mock_aws():
        yield
    parameters.clear_caches()


def test_a_poison_message_is_left_for_the_dlq_and_never_blocks_its_batch(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    for n in range(23):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    seen: list[int] = []

    def handle(body: str, message_id: str, _queued_at: datetime | None) -> None:
        n = json.loads(body)["n"]
        if n == 7:
            raise KeyError("a bug this message triggers")
        seen.append(n)

    result = drain_queue(sqs, url, handle)
    assert sorted(seen) == [n for n in range(23) if n != 7]
    assert (result.received, result.deleted, len(result.failed)) == (23, 22, 1)
    assert "KeyError" in result.failed[0]
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert left["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"  # back after the visibility timeout


def test_a_store_outage_stops_the_drain_so_the_step_is_retried(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")

    def handle(body: str, message_id: str, _queued_at: datetime | None) -> None:
        raise StoreUnavailable("throttled")

    with pytest.raises(StoreUnavailable):
        drain_queue(sqs, url, handle)


def test_drain_hands_on_the_time_sqs_accepted_each_message(aws: None) -> None:
    # SentTimestamp (epoch milliseconds) is returned only when asked for: that is the time the webhook
    # received the alert, which the signal keeps beside the time a cycle collected it.
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    before = datetime.now(UTC).replace(microsecond=0)
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    after = datetime.now(UTC)
    seen: list[datetime | None] = []
    drain_queue(sqs, url, lambda body, mid, queued_at: seen.append(queued_at), wait_seconds=0)
    [queued_at] = seen
    assert queued_at is not None
    assert before <= queued_at <= after


def test_sent_at_reads_the_pipe_shape_and_refuses_what_is_not_a_timestamp() -> None:
    assert sent_at({"SentTimestamp": "1545082649183"}) == datetime(2018, 12, 17, 21, 37, 29, 183000, tzinfo=UTC)
    assert [sent_at(v) for v in (None, {}, {"SentTimestamp": "soon"}, {"SentTimestamp": 1545082649183})] == [
        None,
        None,
        None,
        None,
    ]


def test_drain_reads_in_batches_of_ten_until_empty(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    for n in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    bodies: list[str] = []
    result = drain_queue(sqs, url, lambda body, mid, _at: bodies.append(body))
    assert sorted(bodies, key=int) == [str(n) for n in range(25)]
    assert result.deleted == 25
    assert result.batches == 4  # 10 + 10 + 5, then one empty receive: at most ceil(N/10) + 1 calls


API_KEY = "/crypto-bot/test/exchange-api-key"


@pytest.mark.parametrize("store", ["ssm", "secretsmanager"])
def test_credentials_come_from_the_configured_secret_store(aws: None, store: str) -> None:
    value = json.dumps({"apiKey": "key-123", "secret": "s3cr3t", "password": "pw"})
    if store == "ssm":
        boto3.client("ssm").put_parameter(Name=API_KEY, Value=value, Type="SecureString")
    else:
        boto3.client("secretsmanager").create_secret(Name=API_KEY, SecretString=value)
    secrets = AwsSecrets(lambda service: boto3.client(service), API_KEY, store)
    assert secrets.api_key() == {"apiKey": "key-123", "secret": "s3cr3t", "password": "pw"}


def test_malformed_credentials_are_refused_without_echoing_them(aws: None) -> None:
    boto3.client("ssm").put_parameter(Name=API_KEY, Value="not-json-s3cr3t", Type="SecureString")
    with pytest.raises(ConfigError) as info:
        AwsSecrets(lambda service: boto3.client(service), API_KEY, "ssm").api_key()
    assert "s3cr3t" not in str(info.value)
    assert "must be JSON with apiKey and secret" in str(info.value)


def test_a_missing_key_is_named_with_the_store_that_lacks_it(aws: None) -> None:
    with pytest.raises(ConfigError, match=f"^cannot read the API key {API_KEY} from secretsmanager: "):
        AwsSecrets(lambda service: boto3.client(service), API_KEY, "secretsmanager").api_key()


def test_lease_times_sort_as_strings_in_time_order() -> None:
    base = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n * 999_999) for n in range(50)] + [base.replace(year=2025)]
    assert sorted(lease_time(m) for m in moments) == [lease_time(m) for m in sorted(moments)]


def test_the_drain_long_polls_so_an_empty_answer_means_empty(aws: None) -> None:
    calls: list[dict[str, Any]] = []
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    original = sqs.receive_message

    def recording(**request: Any) -> Any:
        calls.append(request)
        return original(**request)

    sqs.receive_message = recording
    drain_queue(sqs, url, lambda body, mid, _at: None)
    assert [c["WaitTimeSeconds"] for c in calls] == [1]
