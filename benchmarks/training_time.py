"""Wall time and peak memory of ``lifecycle train``, and what each part of it costs.

Simulates N customers with ``lifecycle simulate`` (cached under benchmarks/.cache/, and timed
apart from training), then runs the real ``lifecycle train --events ... --truth ... --trials T``
as a child process whose MLflow store (sqlite), artifacts and reports live in a temporary
folder, so the user's mlflow.db is never touched. The child's output is read line by line as it
arrives and each line is stamped in this process; the time between two of the pipeline's
progress messages is charged to the part the earlier one names (startup, features, labels,
tuning with seconds per trial, fit + calibration + evaluation, customer-split protocol, MLflow
logging, exit). Peak RSS is the child's own (``os.wait4``), which includes any process it
waited for.

    .venv/bin/python benchmarks/training_time.py                      # 100,000 customers, 50 trials
    .venv/bin/python benchmarks/training_time.py --quick              # 5,000 customers, 3 trials
    .venv/bin/python benchmarks/training_time.py --customers 20000 --trials 10

Results: benchmarks/results/training_time-<UTC time>.json, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
LIFECYCLE = str(BIN / "lifecycle") if (BIN / "lifecycle").exists() else "lifecycle"
PACKAGES = ("lightgbm", "optuna", "mlflow", "duckdb", "pandas", "pyarrow", "numpy")
QUICK = {"customers": 3_000, "trials": 2}
DEFAULTS = {"customers": 100_000, "trials": 50}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Lines that start a part: (pattern, kind). Every other line is recorded but moves no boundary.
MARKERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^features at (?P<cutoffs>\d+) cutoffs"), "features"),
    (re.compile(r"^(?P<task>\w+): labels$"), "labels"),
    (
        re.compile(
            r"^(?P<task>\w+): tuning on (?P<train_rows>[\d,]+) rows, "
            r"validating on (?P<valid_rows>[\d,]+)"
        ),
        "tuning",
    ),
    (re.compile(r"^(?P<task>\w+): trial (?P<trial>\d+) (?P<state>\w+), best"), "trial"),
    (re.compile(r"^(?P<task>\w+): fitting and calibrating"), "fit"),
    (re.compile(r"^data fingerprint"), "fingerprint"),
    (re.compile(r"^(?P<task>\w+): baselines"), "baselines"),
    (re.compile(r"^(?P<task>\w+): metrics"), "metrics"),
    (re.compile(r"^(?P<task>\w+): customer-split protocol"), "customer_split"),
    (re.compile(r"^(?P<task>\w+): evaluation rows and SHAP sample"), "shap"),
    (re.compile(r"^logging to MLflow"), "mlflow"),
    (re.compile(r"^Created version '(?P<version>\d+)' of model '(?P<model>[^']+)'"), "registered"),
    (re.compile(r"^run (?P<run_id>\w+): registered .* in (?P<seconds>\d+) s"), "done"),
)

PART_NAMES = {
    "startup": "startup: imports, config, truth table, cutoffs",
    "features": "features at {cutoffs} cutoffs",
    "fingerprint": "data fingerprint (hash and count of the event log)",
    "labels": "{task}: labels",
    "tuning": "{task}: tuning",
    "fit": "{task}: fit + calibrate + score the eval rows",
    "baselines": "{task}: baselines (RFM, last period, BG/NBD, oracle)",
    "metrics": "{task}: metrics (overall and per stage)",
    "customer_split": "{task}: customer-split protocol",
    "shap": "{task}: evaluation rows and SHAP sample",
    "mlflow": "MLflow: run, plots, tables, evaluation sets, log + register {model}",
    "registered": "MLflow: log + register {model}",
    "report": "MLflow: model cards, HTML report, artifacts; metric tables",
    "exit": "exit (interpreter teardown)",
}

GROUPS = {
    "startup": "startup",
    "features": "features",
    "fingerprint": "features",
    "labels": "labels",
    "tuning": "tuning",
    "fit": "fit + calibrate",
    "baselines": "baselines (BG/NBD, RFM, last period)",
    "metrics": "metrics and SHAP sample",
    "shap": "metrics and SHAP sample",
    "customer_split": "customer-split protocol",
    "mlflow": "MLflow logging and report",
    "registered": "MLflow logging and report",
    "report": "MLflow logging and report",
    "exit": "exit",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Line:
    """One line of the child's output, stamped in seconds since the child was started."""

    t: float
    text: str
    kind: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 3), "text": self.text}
        if self.kind:
            out["marker"] = self.kind
        return out


def simulated(customers: int, seed: int, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Return the folder of a ``lifecycle simulate`` run and its summary (simulating once)."""
    folder = workdir / f"cli-sim-{customers}-{seed}"
    summary_file = folder / "simulate.json"
    if summary_file.exists() and (folder / "truth.parquet").exists():
        summary = json.loads(summary_file.read_text())
        log(f"simulated {customers:,} customers: cached in {folder}")
        return folder, {**summary, "cached": True}
    partial = workdir / f"{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"simulating {customers:,} customers (seed {seed})")
    began = time.perf_counter()
    command = [LIFECYCLE, "simulate", "--customers", str(customers), "--seed", str(seed)]
    out = subprocess.run(
        [*command, "--out", str(partial), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - began
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    summary.pop("files", None)
    summary["wall_seconds"] = round(wall, 2)
    (partial / "simulate.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log(f"simulated {summary['events']:,} events in {wall:.1f} s")
    return folder, {**summary, "cached": False}


def run_train(
    folder: Path, trials: int, scratch: Path, max_rows: int | None = None
) -> tuple[list[Line], float, int, int]:
    """Run ``lifecycle train`` in ``scratch``; return its lines, wall seconds, max RSS KB, rc."""
    command = [
        LIFECYCLE,
        "train",
        "--events",
        str(folder / "events.parquet"),
        "--truth",
        str(folder / "truth.parquet"),
        "--trials",
        str(trials),
        "--tracking-uri",
        f"sqlite:///{scratch / 'mlflow.db'}",
        "--report-dir",
        str(scratch / "reports"),
    ]
    if max_rows is not None:
        command += ["--tuning-max-rows", str(max_rows)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", NO_COLOR="1", TERM="dumb")
    lines: list[Line] = []
    began = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=scratch,  # MLflow puts its artifact folder beside the working directory
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    for raw in iter(proc.stdout.readline, ""):
        now = time.perf_counter() - began
        text = ANSI.sub("", raw).rstrip()
        line = Line(now, text)
        for pattern, kind in MARKERS:
            match = pattern.match(text.strip())
            if match:
                line.kind, line.fields = kind, match.groupdict()
                log(f"{now:8.1f} s  {text.strip()}")
                break
        lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    return lines, wall, usage.ru_maxrss, proc.returncode


def _int(value: str | None) -> int | None:
    return int(value.replace(",", "")) if value else None


def parts(lines: list[Line], wall: float) -> list[dict[str, Any]]:
    """Charge the time between consecutive markers to the part the earlier one starts."""
    markers = [line for line in lines if line.kind and line.kind != "trial"]
    starts: list[tuple[float, str, dict[str, str]]] = [(0.0, "startup", {})]
    models = [m.fields["model"] for m in markers if m.kind == "registered"]
    for marker in markers:
        kind, fields = marker.kind or "", dict(marker.fields)
        if kind == "mlflow":
            fields["model"] = models[0] if models else "the models"
        elif kind == "registered":
            following = models.index(fields["model"]) + 1
            if following >= len(models):
                kind = "report"
            else:
                fields["model"] = models[following]
        elif kind == "done":
            kind = "exit"
        starts.append((marker.t, kind, fields))
    out = []
    for (t0, kind, fields), nxt in zip(starts, [*starts[1:], (wall, "", {})], strict=True):
        end = nxt[0]
        task = fields.get("task")
        part: dict[str, Any] = {
            "part": PART_NAMES[kind].format(
                task=task, cutoffs=fields.get("cutoffs", "?"), model=fields.get("model", "")
            ),
            "kind": kind,
            "group": GROUPS[kind],
            "task": task,
            "start": round(t0, 3),
            "seconds": round(end - t0, 3),
        }
        if nxt[1] == "mlflow":  # train_and_log opens the tracking store before saying so
            part["part"] += " + opening the MLflow store"
        if kind == "features":
            part["cutoffs"] = _int(fields.get("cutoffs"))
        if kind == "tuning":
            part["train_rows"] = _int(fields.get("train_rows"))
            part["valid_rows"] = _int(fields.get("valid_rows"))
            trials = [
                line
                for line in lines
                if line.kind == "trial" and t0 <= line.t <= end and line.fields["task"] == task
            ]
            stamps = [t0, *(line.t for line in trials)]
            per_trial = [b - a for a, b in itertools.pairwise(stamps)]
            states: dict[str, int] = {}
            for line in trials:
                states[line.fields["state"]] = states.get(line.fields["state"], 0) + 1
            part["trials"] = len(trials)
            part["trial_states"] = states
            part["trial_seconds"] = [round(s, 3) for s in per_trial]
            if per_trial:
                part["seconds_per_trial_mean"] = round(statistics.fmean(per_trial), 3)
                part["seconds_per_trial_median"] = round(statistics.median(per_trial), 3)
                part["after_last_trial_seconds"] = round(end - stamps[-1], 3)
        out.append(part)
    return out


def detail(part: dict[str, Any]) -> str:
    """A short note for the Markdown table: rows, trials and seconds per trial."""
    if part["kind"] == "tuning":
        bits = [f"{part['train_rows']:,} train / {part['valid_rows']:,} valid rows"]
        if part.get("trials"):
            states = ", ".join(f"{n} {s}" for s, n in sorted(part["trial_states"].items()))
            bits.append(
                f"{part['trials']} trials ({states}), "
                f"{part['seconds_per_trial_mean']:.2f} s/trial mean, "
                f"{part['seconds_per_trial_median']:.2f} median"
            )
        return "; ".join(bits)
    return ""


def run_files(scratch: Path) -> dict[str, Any]:
    """What the run wrote: its config (``config.yaml``) and, per task, rows and tuning counts."""
    import yaml

    out: dict[str, Any] = {}
    configs = sorted(scratch.glob("**/config.yaml"))
    if configs:
        out["config"] = yaml.safe_load(configs[0].read_text(encoding="utf-8"))
    summaries = sorted((scratch / "reports").glob("*/summary.json"))
    if summaries:
        summary = json.loads(summaries[0].read_text(encoding="utf-8"))
        out["data"] = summary.get("data")
        out["tasks"] = {
            task: {
                "rows": block.get("rows"),
                "cutoffs": block.get("cutoffs"),
                "tuning": {k: v for k, v in block.get("tuning", {}).items() if k != "best_params"},
                "metrics": {
                    name: values.get("overall")
                    for name, values in block.get("metrics", {}).items()
                    if isinstance(values, dict)
                },
            }
            for task, block in summary.get("tasks", {}).items()
        }
    return out


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None

    def output(*args: str) -> str:
        done = subprocess.run([git, *args], cwd=ROOT, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    try:
        commit = output("rev-parse", "--short=12", "HEAD")
        dirty = output("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" (uncommitted changes)" if dirty else "")


def main() -> None:
    """Simulate, train once in a child process, and write the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--customers",
        type=int,
        help=f"default {DEFAULTS['customers']:,} ({QUICK['customers']:,} with --quick)",
    )
    parser.add_argument(
        "--trials",
        type=int,
        help=f"trials per model; default {DEFAULTS['trials']} ({QUICK['trials']} with --quick)",
    )
    parser.add_argument(
        "--tuning-max-rows", type=int, help="tune on a sample of at most N rows (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="a small run (2-3 minutes on 2 cores)")
    parser.add_argument("--seed", type=int, default=11, help="simulation seed")
    parser.add_argument("--workdir", type=Path, default=HERE / ".cache", help="simulation cache")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--keep", type=Path, help="copy the child's MLflow store and reports here afterwards"
    )
    args = parser.parse_args()
    preset = QUICK if args.quick else DEFAULTS
    customers = args.customers or preset["customers"]
    trials = preset["trials"] if args.trials is None else args.trials

    folder, sim = simulated(customers, args.seed, args.workdir)
    log(f"training on {sim['events']:,} events with {trials} trials per model")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="training_time-") as tmp:
        scratch = Path(tmp)
        lines, wall, maxrss_kb, rc = run_train(folder, trials, scratch, args.tuning_max_rows)
        written = run_files(scratch) if rc == 0 else {}
        if args.keep:
            shutil.copytree(scratch, args.keep, dirs_exist_ok=True)
    if rc != 0:
        tail = "\n".join(line.text for line in lines[-30:])
        raise SystemExit(f"lifecycle train failed (exit {rc}):\n{tail}")
    table = parts(lines, wall)
    done = next((line for line in lines if line.kind == "done"), None)
    groups: dict[str, float] = {}
    for part in table:
        groups[part["group"]] = groups.get(part["group"], 0.0) + part["seconds"]
    tuning = [p for p in table if p["kind"] == "tuning"]
    report = {
        "benchmark": "training_time",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": versions(),
        "customers": customers,
        "seed": args.seed,
        "events": sim["events"],
        "truth_rows": sim.get("truth_rows"),
        "trials": trials,
        "tuning_max_rows": args.tuning_max_rows,
        "config": written.get("config"),
        "simulate_seconds": sim["wall_seconds"],
        "simulate_seconds_in_simulator": sim.get("seconds"),
        "simulate_cached": sim["cached"],
        "train_wall_seconds": round(wall, 2),
        "train_seconds_reported": int(done.fields["seconds"]) if done else None,
        "peak_rss_mb": round(maxrss_kb / 1024, 1),
        "rows": {p["task"]: {"train": p["train_rows"], "valid": p["valid_rows"]} for p in tuning},
        "tasks": written.get("tasks"),
        "data": written.get("data"),
        "parts": table,
        "groups": {k: round(v, 3) for k, v in groups.items()},
        "lines": [line.as_dict() for line in lines],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.out / f"training_time-{stamp}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {target}")

    print(
        f"`lifecycle train`, {customers:,} simulated customers ({sim['events']:,} events), "
        f"{trials} Optuna trials per model, {os.cpu_count()} cores: "
        f"{wall:.1f} s wall, peak RSS {report['peak_rss_mb']:,} MB "
        f"(simulation, not counted: {sim['wall_seconds']:.1f} s)\n"
    )
    print("| part | seconds | share of total | detail |")
    print("|---|---:|---:|---|")
    for part in table:
        print(
            f"| {part['part']} | {part['seconds']:.1f} | {part['seconds'] / wall:.1%} "
            f"| {detail(part)} |"
        )
    print(f"| **total (wall)** | **{wall:.1f}** | 100% | |")
    print("\n| part (all tasks) | seconds | share of total |")
    print("|---|---:|---:|")
    for name, seconds in groups.items():
        print(f"| {name} | {seconds:.1f} | {seconds / wall:.1%} |")
    print_quality(report.get("tasks") or {})


QUALITY = {  # task -> the metrics shown for it, model against its baselines and the oracle
    "next_stage": ("roc_auc", "pr_auc", "brier", "ece"),
    "churn": ("roc_auc", "pr_auc", "brier", "ece"),
    "clv": ("mae", "rmse", "normalized_gini", "spearman", "total_bias"),
}


def print_quality(tasks: dict[str, Any]) -> None:
    """Print each task's time-honest evaluation: the model beside its baselines and the oracle."""
    for task, block in tasks.items():
        metrics = block.get("metrics") or {}
        shown = QUALITY.get(task, ())
        if not metrics or not shown:
            continue
        print(f"\n**{task}** (time-honest evaluation of this run)\n")
        print("| | " + " | ".join(shown) + " |")
        print("|---|" + "---:|" * len(shown))
        for name, values in metrics.items():
            if not values:
                continue
            cells = " | ".join(f"{values.get(k, float('nan')):.4f}" for k in shown)
            print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
