"""Self-check: run the suite against every fault of the corpus, and against none.

Prints fault -> the properties that caught it (or MISSED) and exits non-zero if
any fault survives or the clean run fails.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from conformance.faults import FAULTS

CLEAN = "(no fault)"


def _pytest(fault: str | None, profile: str, out_dir: str, extra: list[str]) -> dict:
    xml = os.path.join(out_dir, f"{fault or 'clean'}.xml")
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
           f"--hypothesis-profile={profile}", f"--junitxml={xml}", "-p", "conformance.faults"]
    if fault:
        cmd += ["--fault", fault]
    start = time.monotonic()
    proc = subprocess.run(cmd + extra, cwd=out_dir, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    failed, total = set(), 0
    if os.path.exists(xml):
        for case in ET.parse(xml).iter("testcase"):
            total += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed.add(case.get("name").split("[")[0])
    return {"fault": fault or CLEAN, "caught_by": sorted(failed), "tests": total, "returncode": proc.returncode,
            "seconds": round(elapsed, 1), "tail": proc.stdout[-2000:] if proc.returncode not in (0, 1) or not total else ""}


def run(faults=None, profile: str = "selfcheck", jobs: int | None = None, extra=(), json_path: str | None = None,
        first_catch: bool = False) -> int:
    """Run the suite per fault; ``first_catch`` stops each run at its first failing property (fast, for CI)."""
    names = list(faults or FAULTS)
    extra = list(extra) + (["--maxfail=1"] if first_catch else [])
    jobs = jobs or os.cpu_count() or 1
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as out_dir, concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(_pytest, f, profile, out_dir, extra) for f in [None] + names]
        results = []
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            results.append(r)
            mark = "ok" if (r["fault"] == CLEAN) != bool(r["caught_by"]) else "!!"
            print(f"  [{len(results)}/{len(futures)}] {mark} {r['fault']} ({r['seconds']} s)", file=sys.stderr, flush=True)
    wall = time.monotonic() - start
    by_name = {r["fault"]: r for r in results}
    clean = by_name[CLEAN]
    missed = [n for n in names if not by_name[n]["caught_by"]]
    width = max(len(n) for n in names)
    print(f"\n{'fault'.ljust(width)}  caught by")
    print(f"{'-' * width}  ---------")
    for n in names:
        caught = by_name[n]["caught_by"]
        print(f"{n.ljust(width)}  {', '.join(caught) if caught else 'MISSED'}")
    clean_ok = clean["returncode"] == 0 and clean["tests"] > 0
    print(f"\nclean run: {'passed' if clean_ok else 'FAILED: ' + ', '.join(clean['caught_by'])} ({clean['tests']} tests)")
    coverage: dict[str, list[str]] = {}
    for n in names:
        for prop in by_name[n]["caught_by"]:
            coverage.setdefault(prop, []).append(n)
    print(f"faults caught: {len(names) - len(missed)} of {len(names)}; wall {wall:.0f} s with {jobs} jobs, profile {profile!r}")
    for r in results:
        if r["tail"]:
            print(f"\n--- {r['fault']}: pytest exited {r['returncode']}\n{r['tail']}")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"profile": profile, "wall_seconds": round(wall, 1), "jobs": jobs, "results": results,
                       "properties": coverage, "missed": missed, "clean_passed": clean_ok}, fh, indent=2)
    return 0 if clean_ok and not missed else 1
