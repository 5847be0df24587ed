"""``crypto-bot cost``: the monthly AWS bill of a deployment, from counts measured by ``make bench``.

The per-cycle counts (state transitions, Lambda invocations and their durations, SQS calls,
DynamoDB capacity units, SNS publishes, log bytes, metric names) come from
``cost_profile.json`` next to this module, which ``make bench`` writes from a run of the real
state machine on the emulated stack. Nothing here is a guess about *how much work* a cycle
does; the prices below are AWS's published us-east-1 list prices, and the few modelling
assumptions are named where they are made:

* a month is 730 hours (AWS's own convention);
* every Lambda invocation of a cycle is a cold start (containers idle for more than a few
  minutes are recycled, and cycles are at least 15 minutes apart), and AWS bills the INIT
  phase; the locally measured durations are scaled by 1,769 MB / memory, because Lambda gives
  one full vCPU at 1,769 MB and proportionally less below (an upper bound for I/O-bound code);
* each alert is one API Gateway request and one authorizer invocation (the authorizer's
  5-minute cache rarely helps: alerts are hours apart);
* alerts spread over cycles: with fewer alerts than cycles, each alert gets a cycle of its own
  and the rest are empty; with more, every cycle trades ``alerts / cycles`` of them.

The seed's architecture on the same workload: API Gateway and a 128 MB x86 Lambda per alert,
a 128 MB x86 Lambda that imports all of ccxt every timeframe, a provisioned 5/5 DynamoDB table,
and the exchange key in Secrets Manager.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, Final

from crypto_bot.domain.errors import ConfigError
from crypto_bot.domain.money import plain
from crypto_bot.domain.timeframe import Timeframe

__all__ = [
    "PRICES",
    "PRICES_CHECKED",
    "Bill",
    "Profile",
    "Workload",
    "estimate",
    "estimate_seed",
    "register",
]

PROFILE_PATH: Final = Path(__file__).with_name("cost_profile.json")

# us-east-1 list prices, read from AWS's pricing pages on this date. Free tiers are the
# "always free" ones, except API Gateway's, which lasts 12 months from sign-up (see --free-tier).
PRICES_CHECKED: Final = date(2026, 11, 24)
PRICE_SOURCES: Final = {
    "API Gateway": "https://aws.amazon.com/api-gateway/pricing/ (REST: $3.50 per million, first 333 M)",
    "SQS": "https://aws.amazon.com/sqs/pricing/ (standard: $0.40 per million requests, 1 M free)",
    "Step Functions": "https://aws.amazon.com/step-functions/pricing/ "
    "(standard: $0.025 per 1,000 transitions, 4,000 free)",
    "Lambda": "https://aws.amazon.com/lambda/pricing/ ($0.20 per million requests; Arm $0.0000133334, x86 "
    "$0.0000166667 per GB-s; 1 M requests and 400,000 GB-s free; INIT billed)",
    "DynamoDB": "https://aws.amazon.com/dynamodb/pricing/ (on-demand since 2024-11-01: $0.625 per million WRU, "
    "$0.125 per million RRU; provisioned $0.00065 per WCU-hour, $0.00013 per RCU-hour, 25/25 free)",
    "SSM/Secrets Manager": "https://aws.amazon.com/systems-manager/pricing/ (standard parameters free), "
    "https://aws.amazon.com/kms/pricing/ ($0.03 per 10,000 requests, 20,000 free), "
    "https://aws.amazon.com/secrets-manager/pricing/ ($0.40 per secret-month, $0.05 per 10,000 calls)",
    "EventBridge": "https://aws.amazon.com/eventbridge/pricing/ (Scheduler: $1.00 per million, 14 M free; "
    "Pipes: $0.40 per million)",
    "CloudWatch": "https://aws.amazon.com/cloudwatch/pricing/ (logs $0.50 per GB, 5 GB free; metrics $0.30 per "
    "metric-month prorated hourly, 10 free; alarms $0.10, 10 free), https://aws.amazon.com/xray/pricing/ "
    "($5.00 per million traces, 100,000 free)",
    "SNS": "https://aws.amazon.com/sns/pricing/ ($0.50 per million publishes, 1 M free; e-mail $2.00 per 100,000, "
    "1,000 free)",
}


@dataclass(frozen=True)
class Price:
    """A unit price and the monthly quantity the free tier covers."""

    per_unit: Decimal
    free: Decimal = Decimal(0)


PRICES: Final[Mapping[str, Price]] = {
    "apigw_request": Price(Decimal("3.50") / 1_000_000, Decimal(1_000_000)),  # free 12 months only
    "sqs_request": Price(Decimal("0.40") / 1_000_000, Decimal(1_000_000)),
    "sfn_transition": Price(Decimal("0.025") / 1_000, Decimal(4_000)),
    "lambda_request": Price(Decimal("0.20") / 1_000_000, Decimal(1_000_000)),
    "lambda_gbs_arm": Price(Decimal("0.0000133334"), Decimal(400_000)),
    "lambda_gbs_x86": Price(Decimal("0.0000166667"), Decimal(400_000)),
    "dynamodb_wru": Price(Decimal("0.625") / 1_000_000),
    "dynamodb_rru": Price(Decimal("0.125") / 1_000_000),
    "dynamodb_wcu_hour": Price(Decimal("0.00065"), Decimal(25 * 730)),
    "dynamodb_rcu_hour": Price(Decimal("0.00013"), Decimal(25 * 730)),
    "kms_request": Price(Decimal("0.03") / 10_000, Decimal(20_000)),
    "secret_month": Price(Decimal("0.40")),
    "secrets_manager_call": Price(Decimal("0.05") / 10_000),
    "scheduler_invocation": Price(Decimal("1.00") / 1_000_000, Decimal(14_000_000)),
    "log_gb": Price(Decimal("0.50"), Decimal(5)),
    "metric_month": Price(Decimal("0.30"), Decimal(10)),
    "alarm_month": Price(Decimal("0.10"), Decimal(10)),
    "xray_trace": Price(Decimal("5.00") / 1_000_000, Decimal(100_000)),
    "sns_publish": Price(Decimal("0.50") / 1_000_000, Decimal(1_000_000)),
    "sns_email": Price(Decimal("2.00") / 100_000, Decimal(1_000)),
}

HOURS_PER_MONTH: Final = Decimal(730)
FULL_VCPU_MB: Final = Decimal(1769)
SEED_MEMORY_MB: Final = Decimal(128)
GB: Final = Decimal(1024**3)
SERVICES: Final = (
    "API Gateway",
    "SQS",
    "Step Functions",
    "Lambda",
    "DynamoDB",
    "SSM/Secrets Manager",
    "EventBridge",
    "CloudWatch",
    "SNS",
)


# --------------------------------------------------------------------------- the measured profile


@dataclass(frozen=True)
class CycleCounts:
    """What one cycle of the state machine costs in units, as measured by ``make bench``."""

    transitions: Decimal
    lambda_invocations: Decimal
    lambda_ms: Decimal  # handler time, summed over invocations
    functions: Decimal  # distinct functions invoked: one cold start each
    sqs_calls: Decimal
    dynamodb_wru: Decimal
    dynamodb_rru: Decimal
    sns_publishes: Decimal
    log_bytes: Decimal
    metric_names: frozenset[str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CycleCounts:
        """Read one cycle's counts; numbers are kept exact through their text."""
        return cls(
            transitions=_dec(data["transitions"]),
            lambda_invocations=_dec(data["lambda_invocations"]),
            lambda_ms=_dec(data["lambda_ms"]),
            functions=_dec(len(data["functions"])),
            sqs_calls=_dec(data["sqs_calls"]),
            dynamodb_wru=_dec(data["dynamodb_wru"]),
            dynamodb_rru=_dec(data["dynamodb_rru"]),
            sns_publishes=_dec(data["sns_publishes"]),
            log_bytes=_dec(data["log_bytes"]),
            metric_names=frozenset(data["metric_names"]),
        )

    def plus(self, other: CycleCounts, times: Decimal = Decimal(1)) -> CycleCounts:
        """Return these counts plus ``times`` × ``other`` (metric names are united)."""
        return CycleCounts(
            transitions=self.transitions + times * other.transitions,
            lambda_invocations=self.lambda_invocations + times * other.lambda_invocations,
            lambda_ms=self.lambda_ms + times * other.lambda_ms,
            functions=max(self.functions, other.functions),
            sqs_calls=self.sqs_calls + times * other.sqs_calls,
            dynamodb_wru=self.dynamodb_wru + times * other.dynamodb_wru,
            dynamodb_rru=self.dynamodb_rru + times * other.dynamodb_rru,
            sns_publishes=self.sns_publishes + times * other.sns_publishes,
            log_bytes=self.log_bytes + times * other.log_bytes,
            metric_names=self.metric_names | other.metric_names,
        )


def _dec(value: Any) -> Decimal:
    if isinstance(value, float):
        return Decimal(str(value))  # through the text: never a binary-float expansion
    return Decimal(value)


@dataclass(frozen=True)
class Profile:
    """The measured counts ``make bench`` stores in ``cost_profile.json``."""

    measured_at: str
    memory_mb: Decimal
    authorizer_memory_mb: Decimal
    alarms: Decimal
    cold_start_ms: Mapping[str, Decimal]  # per function module, plus "authorizer", "seed_trader", "seed_webhook"
    authorizer_ms: Decimal
    empty: CycleCounts
    trading: Mapping[int, CycleCounts]  # strategies -> a cycle with one alert
    per_extra_signal: Mapping[int, CycleCounts]  # strategies -> what each further alert of a cycle adds
    cache_read_rru: Decimal  # the markets cache's GetItem, once per cold start on a live exchange

    @classmethod
    def load(cls, path: Path = PROFILE_PATH) -> Profile:
        """Read the profile; ConfigError if ``make bench`` never wrote it."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing: run `make bench` to measure the cycle counts") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not JSON: {e}") from None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        """Build a profile from its JSON form."""
        return cls(
            measured_at=str(data["measured_at"]),
            memory_mb=_dec(data["memory_mb"]),
            authorizer_memory_mb=_dec(data["authorizer_memory_mb"]),
            alarms=_dec(data["alarms"]),
            cold_start_ms={str(k): _dec(v) for k, v in data["cold_start_ms"].items()},
            authorizer_ms=_dec(data["authorizer_ms"]),
            empty=CycleCounts.from_json(data["empty"]),
            trading={int(k): CycleCounts.from_json(v) for k, v in data["trading"].items()},
            per_extra_signal={int(k): CycleCounts.from_json(v) for k, v in data["per_extra_signal"].items()},
            cache_read_rru=_dec(data["cache_read_rru"]),
        )

    def nearest(self, strategies: int) -> int:
        """Return the measured strategy count to use: the smallest at or above ``strategies``, else the largest."""
        measured = sorted(self.trading)
        return next((s for s in measured if s >= strategies), measured[-1])


# --------------------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class Workload:
    """What the deployment does in a month."""

    timeframe: Timeframe
    strategies: int = 3
    signals_per_day: Decimal = Decimal(2)
    free_tier: bool = True

    @property
    def cycles(self) -> Decimal:
        """Scheduled cycles per month."""
        return HOURS_PER_MONTH * 3600 / Decimal(int(self.timeframe.delta.total_seconds()))

    @property
    def signals(self) -> Decimal:
        """Alerts per month."""
        return self.signals_per_day * HOURS_PER_MONTH / 24


@dataclass
class Bill:
    """A monthly bill by service, exact to the fraction of a cent; ``notes`` say what each line counts."""

    architecture: str
    lines: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(SERVICES, Decimal(0)))
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        """Return the sum of the lines."""
        return sum(self.lines.values(), Decimal(0))

    def add(self, service: str, amount: Decimal, note: str = "") -> None:
        """Add an amount to a service's line."""
        self.lines[service] += amount
        if note:
            self.notes[service] = f"{self.notes[service]}; {note}" if service in self.notes else note


class _Meter:
    """Sum usage per price, then charge it once, so each free tier is applied to the month's total."""

    def __init__(self, free_tier: bool) -> None:
        self.free_tier = free_tier
        self.usage: dict[str, Decimal] = {}

    def use(self, price: str, quantity: Decimal) -> None:
        self.usage[price] = self.usage.get(price, Decimal(0)) + quantity

    def charge(self, price: str) -> Decimal:
        quantity = self.usage.get(price, Decimal(0))
        unit = PRICES[price]
        if self.free_tier:
            quantity = max(Decimal(0), quantity - unit.free)
        return quantity * unit.per_unit


def _gb_seconds(ms: Decimal, memory_mb: Decimal) -> Decimal:
    # Lambda bills whole milliseconds; below one vCPU the measured CPU time stretches by 1769 / memory.
    scaled = (ms * max(Decimal(1), FULL_VCPU_MB / memory_mb)).to_integral_value(rounding=ROUND_CEILING)
    return scaled / 1000 * memory_mb / 1024


def _month_counts(profile: Profile, workload: Workload) -> tuple[Decimal, CycleCounts, Decimal, CycleCounts]:
    """Split the month into (empty cycles, empty counts, trading cycles, counts of one trading cycle)."""
    strategies = profile.nearest(workload.strategies)
    trade, extra = profile.trading[strategies], profile.per_extra_signal[strategies]
    cycles, signals = workload.cycles, workload.signals
    if signals <= cycles:
        return cycles - signals, profile.empty, signals, trade
    return Decimal(0), profile.empty, cycles, trade.plus(extra, signals / cycles - 1)


def estimate(profile: Profile, workload: Workload) -> Bill:
    """Estimate this deployment's monthly bill (SSM SecureString holds the exchange key)."""
    bill = Bill("crypto-bot")
    meter = _Meter(workload.free_tier)
    empty_cycles, empty, trading_cycles, trade = _month_counts(profile, workload)
    cycles = empty_cycles + trading_cycles
    signals = workload.signals

    meter.use("apigw_request", signals)
    meter.use("sqs_request", signals + empty_cycles * empty.sqs_calls + trading_cycles * trade.sqs_calls)
    meter.use("sfn_transition", empty_cycles * empty.transitions + trading_cycles * trade.transitions)

    # Lambda: every function's INIT once per cycle, the handlers' time, and the authorizer per alert.
    cold = sum((v for k, v in profile.cold_start_ms.items() if k in _STEP_MODULES), Decimal(0))
    mean_cold = cold / len(_STEP_MODULES)
    step_gbs = empty_cycles * _gb_seconds(empty.lambda_ms + empty.functions * mean_cold, profile.memory_mb)
    step_gbs += trading_cycles * _gb_seconds(trade.lambda_ms + trade.functions * mean_cold, profile.memory_mb)
    authorizer_ms = profile.cold_start_ms["authorizer"] + profile.authorizer_ms
    meter.use("lambda_gbs_arm", step_gbs + signals * _gb_seconds(authorizer_ms, profile.authorizer_memory_mb))
    invocations = empty_cycles * empty.lambda_invocations + trading_cycles * trade.lambda_invocations + signals
    meter.use("lambda_request", invocations)

    cold_starts = empty_cycles * empty.functions + trading_cycles * trade.functions
    meter.use("dynamodb_wru", empty_cycles * empty.dynamodb_wru + trading_cycles * trade.dynamodb_wru)
    rru = empty_cycles * empty.dynamodb_rru + trading_cycles * trade.dynamodb_rru
    meter.use("dynamodb_rru", rru + cold_starts * profile.cache_read_rru)
    # One SecureString read (a KMS Decrypt) per cold start that opens the exchange, one per authorizer call.
    meter.use("kms_request", cold_starts + signals)
    meter.use("scheduler_invocation", workload.cycles)

    log_bytes = empty_cycles * empty.log_bytes + trading_cycles * trade.log_bytes
    meter.use("log_gb", log_bytes / GB)
    meter.use("metric_month", _metric_months(empty_cycles, empty, trading_cycles, trade))
    meter.use("alarm_month", profile.alarms)
    meter.use("xray_trace", cycles + invocations)
    publishes = trading_cycles * trade.sns_publishes
    meter.use("sns_publish", publishes)
    meter.use("sns_email", publishes)

    bill.add("API Gateway", meter.charge("apigw_request"), f"{_n(signals)} REST requests")
    bill.add("SQS", meter.charge("sqs_request"), f"{_n(meter.usage['sqs_request'])} requests")
    bill.add("Step Functions", meter.charge("sfn_transition"), f"{_n(meter.usage['sfn_transition'])} transitions")
    lambda_cost = meter.charge("lambda_request") + meter.charge("lambda_gbs_arm")
    bill.add("Lambda", lambda_cost, f"{_n(invocations)} invocations, {_n(meter.usage['lambda_gbs_arm'])} GB-s")
    ddb = meter.charge("dynamodb_wru") + meter.charge("dynamodb_rru")
    bill.add(
        "DynamoDB", ddb, f"on-demand: {_n(meter.usage['dynamodb_wru'])} WRU, {_n(meter.usage['dynamodb_rru'])} RRU"
    )
    bill.add("SSM/Secrets Manager", meter.charge("kms_request"), "SSM SecureString (free) + KMS Decrypt")
    bill.add("EventBridge", meter.charge("scheduler_invocation"), f"{_n(workload.cycles)} scheduled starts")
    watch = sum((meter.charge(p) for p in ("log_gb", "metric_month", "alarm_month", "xray_trace")), Decimal(0))
    bill.add("CloudWatch", watch, "logs, metrics, alarms, X-Ray")
    bill.add("SNS", meter.charge("sns_publish") + meter.charge("sns_email"), f"{_n(publishes)} summaries")
    return bill


_STEP_MODULES: Final = ("collect", "plan", "place_order", "reconcile", "finalize")


def _metric_months(empty_cycles: Decimal, empty: CycleCounts, trading_cycles: Decimal, trade: CycleCounts) -> Decimal:
    # Custom metrics are billed per hour in which they are sent: a cycle's metrics fall in one hour, and
    # cycles closer than an hour share it.
    hours = min(HOURS_PER_MONTH, empty_cycles + trading_cycles)
    trading_hours = min(hours, trading_cycles)
    extra = len(trade.metric_names - empty.metric_names)
    return (hours * len(empty.metric_names) + trading_hours * extra) / HOURS_PER_MONTH


def estimate_seed(profile: Profile, workload: Workload) -> Bill:
    """Estimate the seed's bill on the same workload: API Gateway, two Lambdas, DynamoDB 5/5, Secrets Manager."""
    bill = Bill("seed")
    meter = _Meter(workload.free_tier)
    signals, cycles = workload.signals, workload.cycles
    meter.use("apigw_request", signals)
    webhook = signals * _gb_seconds(profile.cold_start_ms["seed_webhook"], SEED_MEMORY_MB)
    # The trading Lambda imports all of ccxt on every (cold) run, then does the same work as our steps.
    strategies = profile.nearest(workload.strategies)
    work = profile.trading[strategies].lambda_ms
    trader = cycles * _gb_seconds(profile.cold_start_ms["seed_trader"] + work, SEED_MEMORY_MB)
    meter.use("lambda_gbs_x86", webhook + trader)
    meter.use("lambda_request", signals + cycles)
    meter.use("dynamodb_wcu_hour", 5 * HOURS_PER_MONTH)
    meter.use("dynamodb_rcu_hour", 5 * HOURS_PER_MONTH)
    meter.use("secret_month", Decimal(1))
    meter.use("secrets_manager_call", cycles)
    bill.add("API Gateway", meter.charge("apigw_request"), f"{_n(signals)} REST requests")
    lambda_cost = meter.charge("lambda_request") + meter.charge("lambda_gbs_x86")
    bill.add("Lambda", lambda_cost, f"{_n(signals + cycles)} invocations, {_n(meter.usage['lambda_gbs_x86'])} GB-s")
    bill.add("DynamoDB", meter.charge("dynamodb_wcu_hour") + meter.charge("dynamodb_rcu_hour"), "provisioned 5/5")
    bill.add("SSM/Secrets Manager", meter.charge("secret_month") + meter.charge("secrets_manager_call"), "1 secret")
    bill.add("EventBridge", Decimal(0), "scheduled rule (free)")
    return bill


def _n(value: Decimal) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


def money(value: Decimal) -> str:
    """Format dollars to a hundredth of a cent, rounded up: a bill never rounds down to free."""
    return f"${value.quantize(Decimal('0.0001'), rounding=ROUND_CEILING)}"


# --------------------------------------------------------------------------- the command


def register(commands: Any) -> None:
    """Add ``crypto-bot cost`` to the command line."""
    cost = commands.add_parser(
        "cost",
        help="estimate the monthly AWS bill from the measured cycle counts",
        description="Estimate the monthly AWS bill (us-east-1 list prices) from the counts `make bench` measured, "
        "beside the seed's architecture on the same workload.",
    )
    cost.add_argument("--timeframe", type=_timeframe, default=Timeframe.parse("8h"), help="cycle period (default 8h)")
    cost.add_argument("--strategies", type=_positive_int, default=3, help="number of strategies (default 3)")
    cost.add_argument("--signals-per-day", type=_positive_decimal, default=Decimal(2), help="alerts a day (default 2)")
    cost.add_argument(
        "--free-tier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="subtract the monthly free tiers (default: yes; API Gateway's lasts 12 months from sign-up)",
    )
    cost.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cost.set_defaults(run=run)


def _timeframe(text: str) -> Timeframe:
    try:
        return Timeframe.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _positive_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number at least 0")
    return value


def run(args: argparse.Namespace) -> int:
    """Print the estimate of ours and the seed's."""
    profile = Profile.load()
    workload = Workload(args.timeframe, args.strategies, args.signals_per_day, args.free_tier)
    ours, seed = estimate(profile, workload), estimate_seed(profile, workload)
    if args.json:
        print(json.dumps(as_json(workload, profile, ours, seed), indent=2))
        return 0
    print(render_table(workload, ours, seed))
    return 0


def as_json(workload: Workload, profile: Profile, ours: Bill, seed: Bill) -> dict[str, Any]:
    """Return the estimate as JSON-ready data; money as strings of exact decimals."""
    return {
        "workload": {
            "timeframe": workload.timeframe.label,
            "strategies": workload.strategies,
            "measured_strategies": profile.nearest(workload.strategies),
            "signals_per_day": str(workload.signals_per_day),
            "cycles_per_month": str(workload.cycles),
            "free_tier": workload.free_tier,
        },
        "prices_checked": PRICES_CHECKED.isoformat(),
        "profile_measured_at": profile.measured_at,
        "currency": "USD",
        "ours": _bill_json(ours),
        "seed": _bill_json(seed),
    }


def _bill_json(bill: Bill) -> dict[str, Any]:
    # Exact, in plain notation without trailing zeros ("0.00155125", never "0E-7"); readers round as they need.
    return {
        "total": plain(bill.total),
        "services": {k: plain(v) for k, v in bill.lines.items()},
        "notes": bill.notes,
    }


def render_table(workload: Workload, ours: Bill, seed: Bill) -> str:
    """Return a plain-text table of both bills by service."""
    tier = "after the free tier" if workload.free_tier else "without free tiers"
    head = (
        f"monthly estimate, us-east-1, {tier}: {workload.timeframe.label} cycles, {workload.strategies} strategies, "
        f"{workload.signals_per_day} alerts a day (prices of {PRICES_CHECKED.isoformat()})"
    )
    rows = [("service", "crypto-bot", "seed", "what crypto-bot pays for")]
    rows += [(s, money(ours.lines[s]), money(seed.lines[s]), ours.notes.get(s, "")) for s in SERVICES]
    rows.append(("total", money(ours.total), money(seed.total), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [head, ""]
    for r in rows:
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
    return "\n".join(lines)


def markdown_table(profile: Profile, timeframes: Sequence[str], strategies: Sequence[int]) -> str:
    """Return the docs' cost table: totals of ours and the seed's per timeframe and strategy count."""
    lines = [
        "| timeframe | strategies | crypto-bot, free tier | seed, free tier | crypto-bot, no free tier "
        "| seed, no free tier |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for text in timeframes:
        for count in strategies:
            cells = []
            for free in (True, False):
                workload = Workload(Timeframe.parse(text), count, Decimal(2), free)
                cells += [money(estimate(profile, workload).total), money(estimate_seed(profile, workload).total)]
            lines.append(f"| {text} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
