"""The exchange API key, read from SSM Parameter Store or Secrets Manager: the one reader of it.

The key is JSON with ``apiKey`` and ``secret`` (and ``password`` where the venue needs one). No message
raised here ever carries the value, even a malformed one: it is a secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from crypto_bot.domain.errors import ConfigError

__all__ = ["AwsSecrets", "CachedParameter", "read_api_key"]


def read_api_key(ssm: Any, secretsmanager: Any, name: str, store: str) -> dict[str, str]:
    """Read the API key ``name`` from ``store`` (``ssm`` or ``secretsmanager``) with the client for it."""
    try:
        if store == "ssm":
            raw: Any = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        elif store == "secretsmanager":
            raw = secretsmanager.get_secret_value(SecretId=name)["SecretString"]
        else:
            raise ConfigError(f"SecretStore={store!r}: must be ssm or secretsmanager")
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        raise ConfigError(f"cannot read the API key {name} from {store}: {code}") from None
    except BotoCoreError as e:
        raise ConfigError(f"cannot read the API key {name} from {store}: {type(e).__name__}") from None
    try:
        data = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise ConfigError(f"{name}: the API key must be JSON with apiKey and secret") from None
    if not isinstance(data, dict) or not data.get("apiKey") or not data.get("secret"):
        raise ConfigError(f"{name}: the API key must be JSON with apiKey and secret")
    return {str(k): str(v) for k, v in data.items()}


class AwsSecrets:
    """The :class:`~crypto_bot.engine.ports.Secrets` of a stack: its key's name and store, clients on demand."""

    def __init__(self, clients: Callable[[str], Any], name: str, store: str) -> None:
        self._clients = clients
        self.name = name
        self.store = store

    def api_key(self) -> dict[str, str]:
        """Read the key; only the client of the configured store is created."""
        ssm = self._clients("ssm") if self.store == "ssm" else None
        secretsmanager = self._clients("secretsmanager") if self.store == "secretsmanager" else None
        return read_api_key(ssm, secretsmanager, self.name, self.store)

    def __repr__(self) -> str:
        return f"AwsSecrets({self.name!r} in {self.store})"


# The webhook authorizer's cache (functions/authorizer): a rotated chat token is read within 5 minutes.
PARAMETER_MAX_AGE: Final = 300.0


class CachedParameter:
    """One SSM SecureString (a chat channel's token, chat id or webhook URL), read on first use and kept a while.

    Calling it returns the value; ConfigError names the parameter and the error code, never the value.
    """

    def __init__(
        self,
        clients: Callable[[str], Any],
        name: str,
        *,
        max_age: float = PARAMETER_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self.name = name
        self.max_age = max_age
        self._clock = clock
        self._value: str | None = None
        self._read_at = 0.0

    def __call__(self) -> str:
        now = self._clock()
        if self._value is None or now - self._read_at >= self.max_age:
            try:
                value = self._clients("ssm").get_parameter(Name=self.name, WithDecryption=True)["Parameter"]["Value"]
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "error")
                raise ConfigError(f"cannot read the SSM parameter {self.name}: {code}") from None
            except BotoCoreError as e:
                raise ConfigError(f"cannot read the SSM parameter {self.name}: {type(e).__name__}") from None
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"the SSM parameter {self.name} is empty")
            self._value, self._read_at = value, now
        return self._value

    def __repr__(self) -> str:
        return f"CachedParameter({self.name!r})"
