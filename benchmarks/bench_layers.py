"""The cold cost one declared layer adds to a ``-n 2`` run: per layer, from one cold run of its tests.

    python benchmarks/bench_layers.py --module conformance.modules.zoo_layers:real_layer_specs [--module ...]
        [--pythonpath tests] [--json benchmarks/results/layers.json]

Runs the module properties and the declared-module golden test of every
declared layer once, with a fresh cache directory (no compiled program, no
record), ``-n 2``. A layer's tests run in one worker (conformance/conftest.py
groups them by declared module), so its cost is the sum of its tests' times
in the JUnit XML: compiles included, what it takes one worker. On two workers
running side by side, adding it to a run adds about half of that to the wall
time; the table gives both, per layer, and their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_PER_LAYER_S = 3.0  # issue #28: the cold cost one declared layer adds to a -n 2 run, at most
LAYER_RE = re.compile(r"\[([^\]]+)\]$")


def run(modules: list[str], pythonpath: list[str], workers: int) -> tuple[float, dict, str]:
    """(wall seconds, {layer: summed test seconds}, pytest's last line) of one cold run."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "out.xml")
        cmd = [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
               "-n", str(workers), f"--junitxml={xml}", "-k", "test_module_ or declared_modules", "-W",
               "ignore::DeprecationWarning"]
        for m in modules:
            cmd += ["--module", m]
        env = {**os.environ, "CONFORMANCE_CACHE_DIR": os.path.join(tmp, "cache"),
               "PYTHONPATH": os.pathsep.join([*pythonpath, os.environ.get("PYTHONPATH", "")])}
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        per: dict[str, float] = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            m = LAYER_RE.search(case.get("name", ""))
            if m:
                per[m.group(1)] = per.get(m.group(1), 0.0) + float(case.get("time", 0))
        tail = (proc.stdout.strip().splitlines() or [""])[-1]
        return wall, per, tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", action="append", required=True, help="a factory PKG.MOD:FUNCTION (repeatable)")
    ap.add_argument("--pythonpath", action="append", default=[], help="a directory the factories import from")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    wall, per, tail = run(args.module, [str(Path(p).resolve()) for p in args.pythonpath], args.workers)
    declared = {k: v for k, v in per.items() if not k.startswith(("zoo_", "none"))}
    print(f"cold run: {wall:.1f} s wall, {len(declared)} declared layers; pytest: {tail}")
    print(f"{'layer':32} {'one worker (s)':>15} {'added to -n 2 (s)':>18}")
    for name, s in sorted(declared.items(), key=lambda kv: -kv[1]):
        print(f"{name:32} {s:15.1f} {s / args.workers:18.1f}")
    med = statistics.median(declared.values()) if declared else float("nan")
    print(f"median: {med:.1f} s on one worker, {med / args.workers:.1f} s added to a -n {args.workers} run "
          f"(target {TARGET_PER_LAYER_S:.0f} s: {'met' if med / args.workers <= TARGET_PER_LAYER_S else 'not met'})")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "workers": args.workers, "per_layer_s": declared,
                                         "median_one_worker_s": med, "median_added_s": med / args.workers,
                                         "pytest": tail, "modules": args.module}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
