"""Cold-start benchmark of the conformance gate: serial, ``-n N`` and warm-cache runs.

Each measured run is a fresh ``python -m pytest conformance`` subprocess (imports
included). Per run it records wall time, Hypothesis examples (parsed from
``--hypothesis-show-statistics``), JAX compilations and compile time (from the
``benchmarks._compile_probe`` plugin) and pytest's outcome counts; it then quotes
medians, the ``-n`` speed-up, the warm/cold ratio and whether the targets are met.

    python benchmarks/bench_gate.py [--repeats 3] [--only serial,parallel,warm,serial1]

``serial1`` (optional) is the serial run pinned to one CPU: with it the table
shows how much of the serial run's speed comes from XLA's compiler threads
using the second core.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
KINDS = ("serial", "parallel", "warm", "serial1")
DEFAULT_KINDS = ("serial", "parallel", "warm")
PACKAGES = ("flax", "jax", "jaxlib", "hypothesis", "pytest", "pytest-xdist", "numpy")

TARGET_EXAMPLES = 2000  # Hypothesis examples per gate run, at least
TARGET_COLD_PARALLEL_S = 90.0  # median cold -n N wall time, at most
TARGET_WARM_RATIO = 0.5  # warm -n N / cold -n N, at most
TARGET_SPEEDUP = 1.6  # serial / cold -n N, at least

# Hypothesis >= 6.1xx prints "40 passing, 0 failing, and 0 invalid test cases";
# older releases printed "40 passing examples, 0 failing examples, 0 invalid examples".
EXAMPLES_RE = re.compile(
    r"^\s*- (\d+) passing(?: examples)?, (\d+) failing(?: examples)?,(?: and)? (\d+) invalid", re.M
)
# pytest's final summary, e.g. "56 passed, 2 deselected, 1 warning in 41.20s".
SUMMARY_RE = re.compile(r"^=*\s*(\d+ \w+(?:, \d+ \w+)*) in [\d.]+s", re.M)


def pytest_command(profile: str, workers: int, extra: list[str]) -> list[str]:
    """The measured command; ``workers`` 0 means serial (no xdist)."""
    cmd = [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q"]
    cmd += ["-p", "benchmarks._compile_probe", f"--hypothesis-profile={profile}", "--hypothesis-show-statistics"]
    if workers:
        cmd += ["-n", str(workers)]
    return cmd + extra


def count_examples(output: str) -> int:
    """Passing + failing + invalid examples, summed over every test and phase."""
    return sum(int(p) + int(f) + int(i) for p, f, i in EXAMPLES_RE.findall(output))


def outcome_counts(output: str) -> dict[str, int]:
    """pytest's summary line as {"passed": n, "failed": n, ...} (plural forms folded)."""
    found = SUMMARY_RE.findall(output)
    counts: dict[str, int] = {}
    for part in found[-1].split(", ") if found else ():
        n, word = part.split(" ", 1)
        word = {"errors": "error", "warnings": "warning"}.get(word, word)
        counts[word] = counts.get(word, 0) + int(n)
    return counts


def read_probe(probe_dir: str) -> dict:
    """Sum the probe files of the processes that ran tests (not the xdist controller)."""
    records = [json.loads(Path(p).read_text()) for p in sorted(glob.glob(os.path.join(probe_dir, "*.json")))]
    testers = [r for r in records if r["role"] != "controller"]
    keys = ("session_s", "compile_requests", "compile_s", "cache_hits", "cache_writes", "cache_retrieval_s", "trace_lower_s")
    total = {k: sum(r[k] for r in testers) for k in keys}
    total["xla_compiles"] = total["compile_requests"] - total["cache_hits"]
    total["checking_s"] = total["session_s"] - total["compile_s"]
    total["processes"] = len(testers)
    total["cpu_s"] = sum(r.get("cpu_s", 0.0) for r in records)  # the controller's too: it is part of the run
    total["per_process"] = records
    return total


def run_once(kind: str, cache_dir: str, profile: str, workers: int, extra: list[str]) -> dict:
    """One cold subprocess run of the gate, measured."""
    cmd = pytest_command(profile, 0 if kind.startswith("serial") else workers, extra)
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as probe_dir:
        env = dict(os.environ, CONFORMANCE_COMPILATION_CACHE=cache_dir, BENCH_PROBE_DIR=probe_dir)
        # xdist workers import the probe plugin too, so it must be importable there.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        one_cpu = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if kind == "serial1" else None
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=one_cpu)
        wall = time.perf_counter() - start
        probe = read_probe(probe_dir)
    output = proc.stdout + proc.stderr
    outcomes = outcome_counts(output)
    ok = proc.returncode == 0 and outcomes.get("passed", 0) > 0
    run = {
        "kind": kind,
        "wall_s": wall,
        "returncode": proc.returncode,
        "passed": ok,
        "outcomes": outcomes,
        "examples": count_examples(output),
        "probe": probe,
        "command": shlex.join(cmd),
    }
    if not ok:  # keep enough of the report to see why
        run["output_tail"] = output[-4000:]
    return run


def measure(kinds: list[str], repeats: int, profile: str, workers: int, extra: list[str]) -> list[dict]:
    """All runs, interleaved by repeat so slow drift of the machine hits every kind alike."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-jax-cache-") as tmp:
        for r in range(repeats):
            caches = {k: os.path.join(tmp, f"{r}-{k}") for k in ("serial", "parallel", "serial1")}
            if "warm" in kinds and "parallel" not in kinds:
                # The warm run needs a cache filled by a cold -n run; that one is not measured.
                run_once("parallel", caches["parallel"], profile, workers, extra)
            for kind in kinds:
                cache = caches["parallel" if kind == "warm" else kind]
                run = run_once(kind, cache, profile, workers, extra)
                run["repeat"] = r
                runs.append(run)
                print(f"  [{r + 1}/{repeats}] {kind:8s} {run['wall_s']:7.1f}s  "
                      f"{'pass' if run['passed'] else 'FAIL'}  {run['outcomes']}", file=sys.stderr, flush=True)
                if not run["passed"]:
                    print(run["output_tail"], file=sys.stderr)
    return runs


def medians(runs: list[dict], kinds: list[str]) -> dict:
    """Per kind: the median of each measured quantity."""
    fields = {
        "wall_s": lambda r: r["wall_s"],
        "examples": lambda r: r["examples"],
        "compile_requests": lambda r: r["probe"]["compile_requests"],
        "xla_compiles": lambda r: r["probe"]["xla_compiles"],
        "cache_hits": lambda r: r["probe"]["cache_hits"],
        "compile_s": lambda r: r["probe"]["compile_s"],
        "trace_lower_s": lambda r: r["probe"]["trace_lower_s"],
        "checking_s": lambda r: r["probe"]["checking_s"],
        "session_s": lambda r: r["probe"]["session_s"],
        "cpu_s": lambda r: r["probe"]["cpu_s"],
        "cores_used": lambda r: r["probe"]["cpu_s"] / r["wall_s"],
    }
    out = {}
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        out[kind] = {name: statistics.median(get(r) for r in mine) for name, get in fields.items()}
    return out


def targets(runs: list[dict], med: dict, workers: int) -> tuple[dict, dict]:
    """Derived ratios and the targets; a target whose runs were not taken is None."""
    wall = {k: v["wall_s"] for k, v in med.items()}
    speedup = wall["serial"] / wall["parallel"] if {"serial", "parallel"} <= wall.keys() else None
    warm_ratio = wall["warm"] / wall["parallel"] if {"warm", "parallel"} <= wall.keys() else None
    # The serial run's CPU-s per wall-s: XLA compiles on a thread pool, so one
    # process already uses part of a second core, and -n N can gain at most
    # about N / cores_used over it.
    serial_cores = med["serial"]["cores_used"] if "serial" in med else None
    derived = {
        "speedup": speedup,
        "warm_cold_ratio": warm_ratio,
        "serial_cores_used": serial_cores,
        "speedup_ceiling": None if serial_cores is None else min(workers, os.cpu_count() or 1) / serial_cores,
        "speedup_over_one_cpu_serial": wall["serial1"] / wall["parallel"] if {"serial1", "parallel"} <= wall.keys() else None,
    }

    def check(value, limit, at_least):
        met = None if value is None else (value >= limit if at_least else value <= limit)
        return {"value": value, "limit": limit, "at_least": at_least, "met": met}

    examples = min((r["examples"] for r in runs), default=None)  # every run must reach it
    result = {
        "examples": check(examples, TARGET_EXAMPLES, True),
        "cold_parallel_wall_s": check(wall.get("parallel"), TARGET_COLD_PARALLEL_S, False),
        "warm_cold_ratio": check(warm_ratio, TARGET_WARM_RATIO, False),
        "speedup": check(speedup, TARGET_SPEEDUP, True),
        "all_runs_passed": {"value": all(r["passed"] for r in runs), "met": all(r["passed"] for r in runs)},
    }
    return derived, result


def print_table(med: dict, derived: dict, result: dict, workers: int) -> None:
    label = {"serial": "serial", "parallel": f"-n {workers} cold", "warm": f"-n {workers} warm", "serial1": "serial 1 CPU"}
    print(f"{'run':12s} {'wall s':>8s} {'examples':>9s} {'compiles':>9s} {'cache hits':>10s} "
          f"{'compile s':>10s} {'trace s':>8s} {'checking s':>11s} {'CPU s':>7s} {'cores':>6s}")
    for kind, m in med.items():
        print(f"{label[kind]:12s} {m['wall_s']:8.1f} {m['examples']:9.0f} {m['xla_compiles']:9.0f} "
              f"{m['cache_hits']:10.0f} {m['compile_s']:10.1f} {m['trace_lower_s']:8.1f} {m['checking_s']:11.1f} "
              f"{m['cpu_s']:7.1f} {m['cores_used']:6.2f}")
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"speed-up serial/-n {workers}: {fmt(derived['speedup'])} (ceiling {fmt(derived['speedup_ceiling'])} = "
          f"{workers} cores / {fmt(derived['serial_cores_used'])} cores used by serial)   "
          f"1-CPU serial/-n {workers}: {fmt(derived['speedup_over_one_cpu_serial'])}   warm/cold: {fmt(derived['warm_cold_ratio'])}")
    for name, t in result.items():
        verdict = {True: "yes", False: "NO", None: "n/a"}[t["met"]]
        bound = "" if "limit" not in t else f" ({'>=' if t['at_least'] else '<='} {t['limit']})"
        value = "n/a" if t["value"] is None else t["value"] if isinstance(t["value"], (bool, int)) else round(t["value"], 2)
        print(f"target {name:22s} {str(value):>8s}{bound:12s} met: {verdict}")


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", default="gate", help="Hypothesis profile (conformance/core/config.py)")
    ap.add_argument("--only", default=",".join(DEFAULT_KINDS), help="comma-separated subset of: " + ",".join(KINDS))
    ap.add_argument("--workers", type=int, default=2, help="xdist workers of the parallel runs")
    ap.add_argument("--extra-pytest-args", default="", help="one shell-quoted string, e.g. \"-k 'oracle or shape'\"")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)

    kinds = [k for k in KINDS if k in args.only.split(",")]  # canonical order: warm after parallel
    unknown = set(args.only.split(",")) - set(KINDS)
    if unknown or not kinds:
        ap.error(f"--only takes a subset of {','.join(KINDS)}; got {args.only!r}")
    extra = shlex.split(args.extra_pytest_args)

    print(f"bench_gate: profile {args.profile}, runs {kinds} x {args.repeats}, workers {args.workers}, "
          f"{os.cpu_count()} cores", file=sys.stderr)
    runs = measure(kinds, args.repeats, args.profile, args.workers, extra)
    med = medians(runs, kinds)
    derived, result = targets(runs, med, args.workers)
    print_table(med, derived, result, args.workers)

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions(),
        "settings": {"profile": args.profile, "repeats": args.repeats, "kinds": kinds,
                     "workers": args.workers, "extra_pytest_args": extra},
        "medians": med,
        "derived": derived,
        "targets": result,
        "all_targets_met": all(t["met"] for t in result.values() if t["met"] is not None),
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0 if result["all_runs_passed"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
