"""Replay the planted bugs of issue 11: each must survive the suite it slipped through, and die by its test.

Every bug is a one-line edit of the money-critical core, applied to a copy of the layer (the working
tree is shared and never touched). ``--before REF`` runs each against ``tests/unit`` as committed at
REF (the suite the bug once survived); without it, each runs against its killing tests in the working
tree. The output is the markdown table kept in docs/reliability.md.

    python mutation/planted.py                 # killed by its test?
    python mutation/planted.py --before 31dee68  # survived the unit suite before those tests?
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = "layers/core"
PACKAGE = f"{LAYER}/crypto_bot"
AGREEMENT = "tests/unit/test_model_agreement.py"
BOUNDARIES = "tests/unit/test_money_boundaries.py"


@dataclass(frozen=True)
class PlantedBug:
    name: str
    path: str  # inside crypto_bot/
    old: str
    new: str
    killers: tuple[str, ...]  # pytest node ids that must fail with the bug in place


BUGS = (
    PlantedBug(
        "buy_cost_with_fee drops the fee",
        "domain/sizing.py",
        "return amount * price * (ONE + market.taker_fee)",
        "return amount * price",
        (
            f"{BOUNDARIES}::test_buy_cost_with_fee_adds_the_taker_fee_to_the_cost",
            f"{BOUNDARIES}::test_second_entry_is_capped_by_the_cash_the_first_left_after_its_fee",
        ),
    ),
    PlantedBug(
        "allocation tracks remaining cash without fees",
        "domain/allocation.py",
        "remaining -= buy_cost_with_fee(sized.amount, price, market)",
        "remaining -= sized.amount * price",
        (f"{BOUNDARIES}::test_second_entry_is_capped_by_the_cash_the_first_left_after_its_fee",),
    ),
    PlantedBug(
        "a sell's fee in the base asset is ignored",
        "domain/ledger.py",
        "leaving = filled + base_fee",
        "leaving = filled",
        (
            f"{BOUNDARIES}::test_sell_with_a_base_asset_fee_gives_up_the_fee_too",
            f"{BOUNDARIES}::test_paper_sell_with_base_fees_leaves_the_ledger_equal_to_the_venue",
        ),
    ),
    PlantedBug(
        "a dust sweep does not realize its loss",
        "domain/ledger.py",
        "realized_pnl=position.realized_pnl - position.cost_basis,",
        "realized_pnl=position.realized_pnl,",
        (f"{BOUNDARIES}::test_dust_sweep_realizes_the_remainder_cost_basis_as_a_loss",),
    ),
    PlantedBug(
        "`amount < min_amount` becomes `<=`",
        "domain/markets.py",
        "if amount < self.min_amount:",
        "if amount <= self.min_amount:",
        (f"{BOUNDARIES}::test_an_order_of_exactly_the_minimum_amount_is_allowed",),
    ),
    PlantedBug(
        "`cost < min_cost` becomes `<=`",
        "domain/markets.py",
        "if cost < self.min_cost:",
        "if cost <= self.min_cost:",
        (f"{BOUNDARIES}::test_an_order_of_exactly_the_minimum_cost_is_allowed",),
    ),
    PlantedBug(
        "sweep_dust `sellable >= min_amount` becomes `>`",
        "domain/ledger.py",
        "sellable >= market.min_amount",
        "sellable > market.min_amount",
        (f"{BOUNDARIES}::test_a_remainder_of_exactly_the_minimum_amount_is_sold_not_swept",),
    ),
    PlantedBug(
        "a resting order crosses only strictly past its limit",
        "adapters/paper/exchange.py",
        "return last <= order.price if order.side is Side.BUY else last >= order.price",
        "return last < order.price if order.side is Side.BUY else last > order.price",
        (f"{BOUNDARIES}::test_a_resting_order_fills_as_maker_when_the_price_touches_its_limit",),
    ),
    PlantedBug(
        "a limit at the last price is not marketable",
        "adapters/paper/exchange.py",
        "return order.price >= last if order.side is Side.BUY else order.price <= last",
        "return order.price > last if order.side is Side.BUY else order.price < last",
        (f"{BOUNDARIES}::test_a_limit_at_the_last_price_is_marketable_and_fills_as_taker",),
    ),
    PlantedBug(
        "a buy reserves the smaller of maker/taker fees",
        "adapters/paper/exchange.py",
        'fee = max(market.taker_fee, market.maker_fee) if self.fee_mode == "quote" else ZERO',
        'fee = min(market.taker_fee, market.maker_fee) if self.fee_mode == "quote" else ZERO',
        (
            f"{BOUNDARIES}::test_a_resting_buy_reserves_the_larger_of_the_maker_and_taker_fees",
            f"{BOUNDARIES}::test_a_buy_the_smaller_fee_would_cover_is_refused_for_want_of_the_larger",
        ),
    ),
    PlantedBug(
        "entries under-invest by 0.05%",
        "domain/allocation.py",
        "targets: dict[str, Decimal] = {s.key: account_value * s.percentage for s in entering}",
        'targets: dict[str, Decimal] = {s.key: account_value * s.percentage * Decimal("0.9995") for s in entering}',
        (
            f"{AGREEMENT}::test_boost_matches_the_reference_model_after_every_cycle",
            f"{AGREEMENT}::test_multi_matches_the_reference_model_after_every_cycle",
        ),
    ),
)


def plant(bug: PlantedBug, layer: Path) -> None:
    target = layer / "crypto_bot" / bug.path
    source = target.read_text(encoding="utf-8")
    if source.count(bug.old) != 1:
        raise SystemExit(f"{bug.name}: {bug.old!r} is not found exactly once in {bug.path}; update the bug")
    target.write_text(source.replace(bug.old, bug.new), encoding="utf-8")


def run_pytest(tree: Path, layer: Path, tests: list[str]) -> int:
    # The mutated copy comes first on the path, ahead of the editable install of the working tree's layer.
    env = {**os.environ, "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, check=False).returncode  # noqa: S603


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REF", help="run against tests/unit as committed at REF")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="planted-") as scratch:
        tree = ROOT
        if args.before:
            tree = Path(scratch) / "tree"
            tree.mkdir()
            archive = subprocess.run(  # noqa: S603
                ["git", "archive", args.before],  # noqa: S607
                cwd=ROOT,
                capture_output=True,
                check=True,  # noqa: S607
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)  # noqa: S603, S607
        print(
            "| planted bug | file | before: tests/unit | killed by |" if args.before else "| planted bug | killed by |"
        )
        print("|---|---|---|---|" if args.before else "|---|---|")
        for bug in BUGS:
            layer = Path(scratch) / "layer"
            shutil.rmtree(layer, ignore_errors=True)
            shutil.copytree(tree / LAYER, layer)
            plant(bug, layer)
            if args.before:
                # The secret scan lists files with git, and the archive is no repository; it reads no money code.
                code = run_pytest(tree, layer, ["tests/unit", "--ignore=tests/unit/test_secret_scanning.py"])
                verdict = "survived" if code == 0 else f"killed (pytest exit {code})"
                print(f"| {bug.name} | `{bug.path}` | {verdict} | |", flush=True)
            else:
                codes = [run_pytest(tree, layer, [killer]) for killer in bug.killers]
                names = ", ".join(
                    f"`{k.split('::')[1]}` ({'fails' if c == 1 else f'exit {c}' if c else 'PASSES'})"
                    for k, c in zip(bug.killers, codes, strict=True)
                )
                print(f"| {bug.name} | {names} |", flush=True)


if __name__ == "__main__":
    main()
