"""`make mutate`: cosmic-ray over the money-critical core; the score and the survivors go to docs/reliability.md.

cosmic-ray edits each module in place, one mutant at a time, so it runs in a scratch copy of the
committed tree (``git archive``): the working tree is shared and must never hold a mutant. Each module
runs against the fast unit tests that exercise it. The report is written between the
``<!-- mutation:start -->`` / ``<!-- mutation:end -->`` markers only, with the commit it measured.

    python mutation/run.py                      # every module below
    python mutation/run.py domain/sizing.py domain/markets.py  # some of them
    python mutation/run.py --survivors domain/ledger.py  # only the last run's survivors, against today's tests
    python mutation/run.py --render              # the section again from mutation/results/ (after equivalent.json)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "reliability.md"
START, END = "<!-- mutation:start -->", "<!-- mutation:end -->"
RESULTS = Path(__file__).with_name("results")
"""One JSON file per module: its mutants, their outcomes, and the commit they were measured on."""
PLANTED = Path(__file__).with_name("planted.md")
"""The planted-bug table (issue 11), from the two runs of mutation/planted.py; shown with the score."""
EQUIVALENT = Path(__file__).with_name("equivalent.json")
"""Survivors judged equivalent, keyed ``module:line:operator:occurrence``, each with its one-line reason."""

_FAST = "tests/unit/test_money_boundaries.py"
MODULES: dict[str, tuple[str, ...]] = {
    "domain/sizing.py": (_FAST, "tests/unit/test_sizing.py", "tests/unit/test_allocation.py"),
    "domain/markets.py": (_FAST, "tests/unit/test_sizing.py", "tests/unit/test_paper.py"),
    "domain/ledger.py": (_FAST, "tests/unit/test_ledger.py", "tests/unit/test_workflow_orders.py"),
    "domain/allocation.py": (_FAST, "tests/unit/test_allocation.py", "tests/unit/test_properties.py"),
    "adapters/paper/exchange.py": (
        _FAST,
        "tests/unit/test_paper.py",
        "tests/unit/test_paper_exact.py",
        "tests/unit/test_workflow_orders.py",
    ),
    "engine/workflow.py": (
        "tests/unit/test_booking.py",
        "tests/unit/test_workflow_orders.py",
        "tests/unit/test_replay.py",
    ),
    # Issue 14: the protective stops book fills into the ledger; the controls decide which entries trade.
    "engine/stops.py": ("tests/unit/test_protective_stops.py", "tests/unit/test_stop_keeper.py"),
    "domain/controls.py": ("tests/unit/test_controls.py", "tests/unit/test_kill_switch_and_guards.py"),
}
"""Module (in crypto_bot/) → the fast unit tests that cover it."""

ONLY: dict[str, set[str]] = {"engine/workflow.py": {"_book", "_remember"}}
"""Where only some functions are money-critical: workflow.py books fills into the ledger in these two."""


def commit_id() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S607
    return out.stdout.strip()


def run_module(tree: Path, module: str, tests: tuple[str, ...]) -> list[dict[str, object]]:
    """Run cosmic-ray on one module; return one record per mutant."""
    path = f"layers/core/crypto_bot/{module}"
    config = tree / "cosmic-ray.toml"
    command = f"{sys.executable} -m pytest -q -x -p no:cacheprovider {' '.join(tests)}"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{path}"\n'
        "timeout = 120.0\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n'
        '[cosmic-ray.distributor]\nname = "local"\n',
        encoding="utf-8",
    )
    # The scratch copy's layer comes first on the path, ahead of the editable install of the working tree's.
    env = {**os.environ, "PYTHONPATH": str(tree / "layers/core"), "PYTHONDONTWRITEBYTECODE": "1"}
    session = tree / f"{module.replace('/', '_')}.sqlite"
    cosmic = str(Path(sys.executable).with_name("cosmic-ray"))
    subprocess.run([cosmic, "init", str(config), str(session)], cwd=tree, env=env, check=True)  # noqa: S603
    if module in ONLY:
        with sqlite3.connect(session) as db:
            specs = db.execute("SELECT job_id, definition_name FROM mutation_specs").fetchall()
            others = [(job,) for job, name in specs if name not in ONLY[module]]
            db.executemany("DELETE FROM mutation_specs WHERE job_id = ?", others)
            db.executemany("DELETE FROM work_items WHERE job_id = ?", others)
    execute = [cosmic, "exec", str(config), str(session)]
    subprocess.run(execute, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    dump = subprocess.run([cosmic, "dump", str(session)], cwd=tree, capture_output=True, text=True, check=True)  # noqa: S603
    records = []
    source = (tree / path).read_text(encoding="utf-8").splitlines()
    for line in dump.stdout.splitlines():
        job, result = json.loads(line)
        (mutation,) = job["mutations"]
        row = mutation["start_pos"][0]
        records.append(
            {
                "module": module,
                "line": row,
                "operator": mutation["operator_name"],
                "occurrence": mutation["occurrence"],
                "code": source[row - 1].strip(),
                "outcome": (result or {}).get("test_outcome", "not run"),
            }
        )
    return records


def result_path(module: str) -> Path:
    return RESULTS / f"{module.replace('/', '_')}.json"


def recheck(tree: Path, module: str, commit: str) -> None:
    """Run only the mutants that survived the module's last full run again, against the committed tests of now."""
    path = result_path(module)
    result = json.loads(path.read_text(encoding="utf-8"))
    source = tree / "layers/core/crypto_bot" / module
    pristine = source.read_text(encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tree / "layers/core"), "PYTHONDONTWRITEBYTECODE": "1"}
    cosmic = str(Path(sys.executable).with_name("cosmic-ray"))
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *MODULES[module]]
    for record in result["mutants"]:
        if record["outcome"] == "killed":
            continue
        mutation = [f"layers/core/crypto_bot/{module}", str(record["operator"]), str(record["occurrence"])]
        subprocess.run([cosmic, "apply", *mutation], cwd=tree, env=env, check=True)  # noqa: S603
        code = subprocess.run(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, check=False).returncode  # noqa: S603
        source.write_text(pristine, encoding="utf-8")
        record["outcome"] = "killed" if code == 1 else "survived"
        record["rechecked"] = commit
    result["rechecked"] = commit
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def render() -> str:
    """Render every module's latest result; a module never run says so."""
    equivalent: dict[str, str] = json.loads(EQUIVALENT.read_text(encoding="utf-8")) if EQUIVALENT.exists() else {}
    lines = [
        START,
        "## Mutation score (`make mutate`, cosmic-ray)",
        "",
        "Each module against the fast unit tests that cover it (`mutation/run.py`); a survivor is either killed",
        "by a later test (the next run counts it killed) or explained in one line in `mutation/equivalent.json`:",
        "equivalent, or not yet killed and what test it needs.",
        "",
        "| module | measured on | mutants | killed | survived | score |",
        "|---|---|---|---|---|---|",
    ]
    records: list[dict[str, object]] = []
    for module in MODULES:
        path = result_path(module)
        if not path.exists():
            lines.append(f"| `{module}` | not run yet | | | | |")
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        records += result["mutants"]
        outcomes = Counter(str(r["outcome"]) for r in result["mutants"])
        total, killed = sum(outcomes.values()), outcomes["killed"]
        rerun = f", survivors rerun on `{result['rechecked']}`" if "rechecked" in result else ""
        partial = f" (stopped after {result['partial']})" if "partial" in result else ""
        measured = f"`{result['commit']}`{rerun}{partial}"
        only = f" ({', '.join(f'`{f}`' for f in sorted(ONLY[module]))} only)" if module in ONLY else ""
        label = f"`{module}`{only}"
        lines.append(f"| {label} | {measured} | {total} | {killed} | {total - killed} | {killed / total:.1%} |")
    lines += ["", "### Survivors", "", "| mutant | code | verdict |", "|---|---|---|"]
    for r in records:
        if r["outcome"] == "killed":
            continue
        key = f"{r['module']}:{r['line']}:{r['operator']}:{r['occurrence']}"
        verdict = equivalent.get(key, f"{r['outcome']}: not yet accounted for")
        code = str(r["code"]).replace("|", "\\|")
        lines.append(f"| `{key}` | `{code}` | {verdict} |")
    if PLANTED.exists():
        lines += ["", PLANTED.read_text(encoding="utf-8").rstrip("\n")]
    lines.append(END)
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace the text between the markers (appending them if absent); nothing else in the file changes."""
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    REPORT.write_text(text, encoding="utf-8")


def main() -> None:
    if sys.argv[1:] == ["--render"]:
        write_section(render())  # the section again from the committed results, after editing equivalent.json
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--survivors", action="store_true", help="rerun only the last run's survivors")
    args = parser.parse_args()
    modules: list[str] = args.modules or list(MODULES)
    unknown = set(modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown modules {sorted(unknown)}; choose from {', '.join(MODULES)}")
    commit = commit_id()
    with tempfile.TemporaryDirectory(prefix="mutate-") as scratch:
        tree = Path(scratch)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout  # noqa: S607
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)  # noqa: S603, S607
        RESULTS.mkdir(exist_ok=True)
        for module in modules:
            if args.survivors:
                recheck(tree, module, commit)
                write_section(render())
                continue
            records = run_module(tree, module, MODULES[module])
            result = {"commit": commit, "tests": list(MODULES[module]), "mutants": records}
            result_path(module).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
            print(f"{module}: {Counter(str(r['outcome']) for r in records)}", flush=True)
            write_section(render())


if __name__ == "__main__":
    main()
