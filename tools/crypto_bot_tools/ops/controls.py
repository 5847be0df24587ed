"""The operator's kill switch, ``crypto-bot pause|resume|flatten``: one command applied to the controls record.

:func:`apply_command` runs the core's operations (:mod:`crypto_bot.domain.controls`) on a store under the
record's version, so a cycle writing meanwhile loses nothing, and says in a sentence what changed. A command
that would change nothing (pausing what is paused, resuming what runs) writes nothing. Both sources use it:
:class:`~crypto_bot_tools.ops.aws_source.AwsSource` on the deployed table, and ``crypto-bot local``'s
``POST /_local/controls`` on its own (:mod:`crypto_bot_tools.local.controls`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from crypto_bot.domain.controls import Controls, Hold, pause, request_flatten, resume
from crypto_bot.domain.errors import ConfigError
from crypto_bot.engine.notices import MAX_SUBJECT
from crypto_bot_tools.ops.rows import iso

if TYPE_CHECKING:
    from crypto_bot.engine.ports import Store

__all__ = ["COMMANDS", "ControlsChange", "apply_command", "check_strategy", "held", "is_active"]

COMMANDS: Final = ("pause", "resume", "flatten")
PAUSE_MEANS: Final = "entries are ignored; exits and stop losses still run"


@dataclass(frozen=True)
class ControlsChange:
    """What one command did: the record after it, whether it wrote anything, and the sentence that says so."""

    command: str
    strategy: str | None  # None: the whole account
    by: str
    reason: str
    at: datetime
    changed: bool
    message: str
    controls: Controls
    notification_error: str | None = None  # written, but the trader was not told

    @property
    def scope(self) -> str:
        return "the whole account" if self.strategy is None else f"strategy {self.strategy}"

    def notification(self) -> tuple[str, str]:
        """Return the trader's message about this change: a subject and a plain-text body."""
        verb = {"pause": "paused", "resume": "resumed", "flatten": "flatten requested"}[self.command]
        target = "" if self.strategy is None else f" {self.strategy}"
        subject = f"crypto-bot{target} {verb} by {self.by}"
        # SNS API Reference, Publish: a Subject is ASCII, without line breaks, and less than 100 characters.
        subject = subject.encode("ascii", "replace").decode("ascii").replace("\n", " ")[: MAX_SUBJECT - 1]
        lines = [
            f"crypto-bot{target} {verb}.",
            "",
            f"scope: {self.scope}",
            f"who:   {self.by}",
            f"why:   {self.reason or '(no reason given)'}",
            f"when:  {self.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
            "",
            self.message,
        ]
        return subject, "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "strategy": self.strategy,
            "by": self.by,
            "reason": self.reason,
            "at": iso(self.at),
            "changed": self.changed,
            "message": self.message,
            "controls": self.controls.to_dict(),
            "notification_error": self.notification_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> ControlsChange:
        """Read :meth:`to_json`'s shape (``crypto-bot local``'s answer); ConfigError names what is wrong."""
        try:
            command = str(data["command"])
            strategy = data.get("strategy")
            return cls(
                command=command,
                strategy=None if strategy is None else str(strategy),
                by=str(data["by"]),
                reason=str(data.get("reason") or ""),
                at=datetime.fromisoformat(str(data["at"])),
                changed=bool(data["changed"]),
                message=str(data["message"]),
                controls=Controls.from_dict(data["controls"]),
                notification_error=None if data.get("notification_error") is None else str(data["notification_error"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"{where}: not a controls change ({type(e).__name__}: {e})") from None


def check_strategy(strategy: str | None, known: Collection[str], field: str, source: str) -> None:
    """Refuse a ``strategy`` that is not a key of the strategy config ``source``, naming the keys it has."""
    if strategy is None or strategy in known:
        return
    keys = ", ".join(sorted(known)) or "none"
    raise ConfigError(f"{field} {strategy!r}: not a strategy of {source} (its strategies: {keys})")


def held(controls: Controls, strategy: str | None) -> Hold | None:
    """Return the operator's pause of that scope (the account when ``strategy`` is None), or None."""
    return controls.paused if strategy is None else controls.paused_strategies.get(strategy)


def is_active(controls: Controls) -> bool:
    """Say whether anything holds entries back or waits to be done: a pause, a tripped guard, a cooldown, a flatten."""
    return bool(
        controls.paused
        or controls.paused_strategies
        or controls.account_trip
        or controls.strategy_trips
        or controls.cooldowns
        or controls.flatten
    )


def apply_command(
    store: Store, command: str, *, strategy: str | None, by: str, reason: str, at: datetime
) -> ControlsChange:
    """Apply ``command`` (pause, resume, flatten) to the store's controls; write nothing when nothing changes."""
    from crypto_bot.engine.workflow import change_controls

    if command not in COMMANDS:
        raise ConfigError(f"command {command!r}: not a controls command (use {', '.join(COMMANDS)})")
    if command == "resume" and reason:
        raise ConfigError(f"reason {reason!r}: resume takes no reason (the record keeps who resumed and when)")
    before: list[Controls] = []  # the record the last attempt read (change_controls re-reads after a conflict)

    def change(current: Controls) -> Controls:
        before[:] = [current]
        if _already_done(current, command, strategy):
            return current
        if command == "pause":
            return pause(current, by=by, reason=reason, at=at, strategy=strategy)
        if command == "resume":
            return resume(current, by=by, at=at, strategy=strategy)
        return request_flatten(current, by=by, reason=reason, at=at, strategy=strategy)

    after = change_controls(store, change)
    changed = after != before[0]
    return ControlsChange(
        command=command,
        strategy=strategy,
        by=by,
        reason=reason,
        at=at,
        changed=changed,
        message=_sentence(command, strategy, before[0], after, changed),
        controls=after,
    )


def _already_done(controls: Controls, command: str, strategy: str | None) -> bool:
    if command == "pause":
        return held(controls, strategy) is not None
    if command == "resume":
        trip = controls.account_trip if strategy is None else controls.strategy_trips.get(strategy)
        return held(controls, strategy) is None and trip is None
    pending = controls.flatten is not None and (
        controls.flatten.strategies is None if strategy is None else controls.flatten.covers(strategy)
    )
    return pending and held(controls, strategy) is not None


def _sentence(command: str, strategy: str | None, before: Controls, after: Controls, changed: bool) -> str:
    scope = "the whole account" if strategy is None else f"strategy {strategy}"
    if command == "pause":
        if not changed:
            return f"{_capital(scope)} was already {_hold_text(held(before, strategy))}; nothing changed."
        return f"Paused {scope}: {PAUSE_MEANS}; crypto-bot resume lifts it."
    if command == "flatten":
        flatten = after.flatten
        sells = "every long position" if strategy is None else f"{strategy}'s position"
        if not changed and flatten is not None:
            return (
                f"A flatten of {scope} was already requested by {flatten.by} at {_clock(flatten.at)} and "
                f"{scope} is paused: nothing changed; the next cycle sells {sells}."
            )
        return (
            f"Asked the next cycle to sell {sells} and paused {scope}: {PAUSE_MEANS}; it stays paused after the "
            "sale until crypto-bot resume."
        )
    if not changed:
        return f"{_capital(scope)} was not paused and no drawdown guard of it had tripped: nothing changed."
    parts = [f"Resumed {scope}: its entries are taken again"]
    if any(e.what == "released" for e in after.events if e not in before.events):
        parts.append("released its tripped drawdown guard, whose peak restarts from the next cycle's equity")
    still = _still_held(after, strategy)
    if still:
        parts.append(f"still held: {'; '.join(still)}")
    return "; ".join(parts) + "."


def _still_held(controls: Controls, strategy: str | None) -> list[str]:
    """What still holds back the entries a resume of ``strategy`` (None: the account) meant to let in."""
    if strategy is not None:
        holds = {"the account": controls.paused, "the account's guard": controls.account_trip}
        found = [f"{what}: {hold.reason}" for what, hold in holds.items() if hold is not None]
        cooldown = controls.cooldowns.get(strategy)
        return found + ([f"{strategy}: {cooldown.reason}"] if cooldown is not None else [])
    kinds = (controls.paused_strategies, controls.strategy_trips, controls.cooldowns)
    return [f"{key}: {hold.reason}" for key in sorted({k for kind in kinds for k in kind})
            for kind in kinds if (hold := kind.get(key)) is not None]  # fmt: skip


def _hold_text(hold: Hold | None) -> str:
    if hold is None:
        return "paused"
    return f"paused since {_clock(hold.at)}: {hold.reason}"


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
