"""The upgrade gate: the suite in a baseline and in candidate environments, side by side.

    python -m conformance gate --baseline flax==0.12.8 --candidate flax==0.9.0 [--candidate ...]

Each side gets an isolated virtual environment built with uv and resolved as of
its flax release (``--exclude-newer`` the day after the wheel's PyPI upload),
the side's requirements plus this project's own dependencies, then this project
(not editable: the installed copy is what runs). The suite runs in every
environment (``pytest --pyargs conformance`` from a temporary directory), the
JUnit XMLs become a matrix property x environment, and a candidate *regresses*
when a property that passes on the baseline fails on it. Known deviations,
golden-record drift and skips are reported, never regressions.

This module is the command (arguments, sides, orchestration). The verdict is
pure and lives in ``conformance/verdict.py`` (tests run it on synthetic XML);
environments and PyPI dates in ``conformance/envs.py``; the Markdown, JSON and
JUnit reports in ``conformance/gate_reports.py``.

Exit codes: 0 no candidate regresses; 1 a candidate regresses; 2 the gate could
not decide (an environment would not build, or a run produced no results).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

from conformance.envs import (DEFAULT_CACHE, Side, build_env, label_for, log, project_root, read_requirements,
                              resolve_exclude_newer, run_suite)
from conformance.gate_reports import write_reports
from conformance.verdict import SEVERITY, Result, build_matrix, collapse, parse_junit, verdict


def run_side(side: Side, out_dir: str, cache_dir: str, python: str, project: str, profile: str,
             timeout: float | None) -> dict:
    """Build, run, parse: ``{"results": [...] or None, "versions": {...}, "error": str or None, ...}``."""
    start = time.monotonic()
    log_path = os.path.join(out_dir, f"{side.label.replace('#', '-')}.log")
    info = {"label": side.label, "role": side.role, "requirements": side.requirements,
            "exclude_newer": side.exclude_newer, "exclude_newer_note": side.exclude_newer_note,
            "pytest_args": side.pytest_args, "log": log_path, "results": None, "error": None, "versions": {}}
    with open(log_path, "w") as logfile:
        try:
            env_python, info["versions"] = build_env(side, cache_dir, python, project, logfile)
            info["env"] = os.path.dirname(os.path.dirname(env_python))
            info["build_seconds"] = round(time.monotonic() - start, 1)
            log(f"{side.label}: running the suite (flax {info['versions'].get('flax')}, jax {info['versions'].get('jax')})")
            t0 = time.monotonic()
            xml, code = run_suite(side, env_python, out_dir, profile, timeout, logfile)
            info["run_seconds"] = round(time.monotonic() - t0, 1)
            info["pytest_exit_code"] = code
            info["junit"] = xml
            if os.path.exists(xml) and code in (0, 1):
                info["results"] = parse_junit(xml)
            else:
                info["error"] = f"pytest exited {code} without usable results (see {log_path})"
        except Exception as exc:  # a side that cannot be built gives no verdict, it never crashes the gate
            info["error"] = f"{type(exc).__name__}: {exc}"
    info["seconds"] = round(time.monotonic() - start, 1)
    if info["results"] is not None:
        counts = collapse_counts(info["results"])
        log(f"{side.label}: done in {info['seconds']} s: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    else:
        log(f"{side.label}: NO RESULTS after {info['seconds']} s: {info['error']}")
    return info


def collapse_counts(results: list[Result]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in collapse(results).values():
        counts[cell.outcome] = counts.get(cell.outcome, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: SEVERITY[kv[0]]))


# --- the command ----------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", action="append", default=[], metavar="REQ",
                   help="a requirement of the baseline side, e.g. flax==0.12.8 (repeatable)")
    p.add_argument("--candidate", action="append", default=[], metavar="REQ",
                   help="one candidate side per use, e.g. flax==0.9.0; 'REQ,REQ' for several requirements")
    p.add_argument("--baseline-requirements", metavar="FILE", help="requirements file added to the baseline side")
    p.add_argument("--candidate-requirements", metavar="FILE",
                   help="requirements file added to every candidate (alone: one candidate from the file)")
    p.add_argument("--exclude-newer", default="auto", metavar="auto|none|DATE",
                   help="resolve as of: auto = the day after the side's flax release (PyPI upload date), "
                        "none = latest, or a date (YYYY-MM-DD or RFC 3339)")
    p.add_argument("--out", default="gate-report", help="report directory (default ./gate-report)")
    p.add_argument("--profile", default="gate", help="Hypothesis profile (default gate)")
    p.add_argument("--jobs", type=int, default=None, help="environments built and run at once (default: CPU count)")
    p.add_argument("--cache-dir", default=os.environ.get("CONFORMANCE_GATE_CACHE", DEFAULT_CACHE),
                   help=f"where environments are cached (default {DEFAULT_CACHE}, or $CONFORMANCE_GATE_CACHE)")
    p.add_argument("--python", default=sys.executable, help="interpreter the environments are made from")
    p.add_argument("--project", default=None, help="checkout of this project to install (default: this one)")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments for every side (one string)")
    p.add_argument("--candidate-pytest-args", default="",
                   help="extra pytest arguments for candidates only, e.g. '-p conformance.faults --fault NAME'")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one side's pytest run may take")


def make_sides(args, lookup=None) -> list[Side]:
    import shlex

    taken: set[str] = set()
    sides = []
    base_reqs = [r for a in args.baseline for r in a.split(",") if r.strip()] + read_requirements(args.baseline_requirements)
    if not base_reqs:
        raise ValueError("--baseline (or --baseline-requirements) is required")
    cand_file = read_requirements(args.candidate_requirements)
    cand_sets = [[r for r in a.split(",") if r.strip()] + cand_file for a in args.candidate]
    if not cand_sets and cand_file:
        cand_sets = [cand_file]
    if not cand_sets:
        raise ValueError("at least one --candidate (or --candidate-requirements) is required")
    common = shlex.split(args.pytest_args)
    for role, reqs in [("baseline", base_reqs)] + [("candidate", c) for c in cand_sets]:
        extra = common + (shlex.split(args.candidate_pytest_args) if role == "candidate" else [])
        side = Side(label_for(reqs, taken), role, reqs, pytest_args=extra)
        side.exclude_newer, side.exclude_newer_note = resolve_exclude_newer(args.exclude_newer, reqs, lookup)
        sides.append(side)
    return sides


def run(args) -> int:
    start = time.monotonic()
    try:
        sides = make_sides(args)
    except (ValueError, LookupError, OSError) as exc:  # bad arguments, or PyPI could not date a release
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    project = os.path.abspath(args.project) if args.project else project_root()
    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir))
    jobs = max(1, args.jobs or min(len(sides), os.cpu_count() or 1))
    for s in sides:
        log(f"{s.role} {s.label}: {' '.join(s.requirements)}; exclude-newer {s.exclude_newer or 'none'} ({s.exclude_newer_note})")
    log(f"{len(sides)} environments, {jobs} at a time, profile {args.profile!r}, cache {cache_dir}, report {out_dir}")
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {s.label: pool.submit(run_side, s, out_dir, cache_dir, args.python, project, args.profile, args.timeout)
                   for s in sides}
        infos = {label: f.result() for label, f in futures.items()}
    baseline = sides[0].label
    candidates = [s.label for s in sides[1:]]
    matrix = build_matrix({label: info["results"] for label, info in infos.items()})
    errors = {label: info["error"] for label, info in infos.items() if info["error"]}
    result = verdict(matrix, baseline, candidates, errors)
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    md = write_reports(out_dir, matrix, result, infos)
    print(md)
    log(f"exit {result['exit_code']} after {result['wall_seconds']} s; reports in {out_dir} (gate.md, gate.json, gate-junit.xml)")
    return result["exit_code"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance gate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
