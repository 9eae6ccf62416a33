"""The upgrade gate: the suite in a baseline and in candidate environments, side by side.

    python -m conformance gate --baseline flax==0.12.8 --candidate flax==0.9.0 [--candidate ...]

Each side gets an isolated virtual environment built with uv and resolved as of
its flax release (``--exclude-newer`` the day after the wheel's PyPI upload),
the side's requirements plus this project's own dependencies, then this project
(not editable: the installed copy is what runs). The suite runs in every
environment (``pytest --pyargs conformance`` from a temporary directory), the
JUnit XMLs become a matrix property x environment, and a candidate *changes*
when a property's outcome gets worse from the baseline to it (pass -> known
deviation, pass -> fail, known deviation -> fail), unless an ``--accept`` entry
covers it. The golden properties compare every side with the baseline's own
records, recorded in its environment first (``--golden committed``: with the
suite's committed records). Each change (and improvement) is then traced: cross
environments say whether flax or jax brings it, ``--bisect`` finds the first
flax release showing it (and every later step of a fingerprinted value).

This module runs the gate a :class:`~conformance.gate.plan.GatePlan` describes
(sides, orchestration, extra environments, progress); ``conformance/cli.py``
parses the command line into that plan. One side's run and the golden
references are in ``conformance/gate/sides.py``. The verdict rules and accept files are pure and live in ``conformance/gate/verdict.py``;
attribution and bisection in ``conformance/gate/attribution.py`` (environments
injected); environments, PyPI dates and release lists in ``conformance/gate/envs.py``;
the Markdown, JSON and JUnit reports in ``conformance/gate/reports.py``.

Exit codes: 0 safe; 1 a candidate changes or regresses; 2 no verdict (bad
arguments, an environment would not build or a run produced no results, Ctrl-C).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import time

from conformance.core import cachedirs
from conformance.gate import attribution, dist, envs, merge, sources
from conformance.gate.envs import UV_MISSING, Side, find_uv, flax_releases, label_for, log, resolve_exclude_newer
from conformance.gate.plan import GatePlan
from conformance.gate.reports import write_reports
from conformance.gate.sides import GoldenReference, run_side
from conformance.gate.verdict import build_matrix, collapse, load_accepts, verdict


def make_sides(plan: GatePlan, lookup=None) -> list[Side]:
    """The baseline side, then one per candidate, each dated (``lookup`` stands in for PyPI in tests)."""
    if not plan.baseline:
        raise ValueError("--baseline (or --baseline-requirements) is required")
    if not plan.candidates:
        raise ValueError("at least one --candidate (or --candidate-requirements) is required")
    taken: set[str] = set()
    sides = []
    for role, reqs in [("baseline", plan.baseline)] + [("candidate", c) for c in plan.candidates]:
        found = {r: sources.resolve(r) for r in reqs}  # checkouts, git references, wheels: what they hold now
        srcs = [s for s in found.values() if s is not None]
        installed = [found[r].requirement if found[r] else r for r in reqs]  # a git reference pinned to its commit
        side = Side(label_for(installed, taken, srcs), role, installed, pytest_args=plan.side_pytest_args(role),
                    pythonpath=list(plan.module_paths), sources=srcs)
        side.exclude_newer, side.exclude_newer_note = resolve_exclude_newer(plan.exclude_newer, list(reqs), lookup)
        sides.append(side)
    return sides


def narrowed(pytest_args: list[str], properties: list[str]) -> list[str]:
    """The side's pytest arguments with its ``-k`` replaced by one selecting only ``properties``."""
    out, skip = [], False
    for arg in pytest_args:
        if skip:
            skip = False
            continue
        if arg == "-k":
            skip = True
            continue
        if arg.startswith("-k"):
            continue
        out.append(arg)
    names = sorted({p.split("[", 1)[0] for p in properties})
    return out + ["-k", " or ".join(names)]


class EnvRunner:
    """Runs some properties in an extra environment (cross or bisection): build, run, parse, report progress."""

    def __init__(self, plan: GatePlan, out_dir: str, cache_dir: str, project: str, pytest_args: list[str],
                 env_vars: dict | None = None):
        self.plan, self.out_dir, self.cache_dir, self.project = plan, out_dir, cache_dir, project
        self.pytest_args = pytest_args
        self.env_vars = dict(env_vars or {})  # the golden references the sides compared against
        self.count = 0

    def __call__(self, spec: attribution.EnvSpec, properties: list[str], role: str = "cross") -> attribution.EnvRun:
        self.count += 1
        os.makedirs(self.out_dir, exist_ok=True)
        side = Side(spec.name, role, spec.requirements, pytest_args=narrowed(self.pytest_args, properties),
                    exclude_newer=spec.exclude_newer, exclude_newer_note=spec.note, pythonpath=list(self.plan.module_paths),
                    env_vars=dict(self.env_vars))
        log(f"{role} environment {spec.name} ({spec.note}; exclude-newer {spec.exclude_newer or 'none'}): "
            f"{len(properties)} properties")
        info = run_side(side, self.out_dir, self.cache_dir, self.plan.python, self.project, self.plan.profile,
                        self.plan.timeout)
        cells = collapse(info["results"]) if info["results"] is not None else None
        return attribution.EnvRun(cells, info.get("versions") or {}, info["error"], spec)

    def release(self, version: str, properties: list[str], others: list[str]) -> attribution.EnvRun:
        """flax ``version`` with the jax of its time (resolved as of the day after its upload)."""
        reqs = [f"flax=={version}"] + others
        try:
            when, note = resolve_exclude_newer("auto", reqs)
        except (LookupError, OSError, ValueError) as exc:
            return attribution.EnvRun(None, {}, f"cannot date flax {version}: {exc}")
        return self(attribution.EnvSpec(f"flax-{version}", reqs, when, note), properties, role="bisect")


def side_view(info: dict, cells: dict) -> dict:
    return {"versions": info.get("versions") or {}, "requirements": info.get("requirements") or [],
            "exclude_newer": info.get("exclude_newer"), "cells": cells,
            "spec": attribution.EnvSpec(info["label"], info.get("requirements") or [], info.get("exclude_newer"),
                                        info.get("exclude_newer_note", ""))}


def trace_changes(plan: GatePlan, result: dict, matrix: dict, infos: dict, runner: EnvRunner) -> None:
    """Attribution (cross environments) and, with ``--bisect``, the first release of each change; into ``result``."""
    baseline = result["baseline"]
    base = side_view(infos[baseline], matrix["cells"][baseline])
    releases_all = None
    for comp in result["comparisons"]:
        cand_label = comp["candidate"]
        cand = side_view(infos[cand_label], matrix["cells"][cand_label])
        props = [c["property"] for c in comp["changes"] + comp["accepted"] + comp["improvements"]]
        if not props:
            continue
        if plan.attribute:
            log(f"attribution of {len(props)} changes of {cand_label}: {', '.join(props)}")
            found = attribution.attribute(props, base, cand, runner)
            comp["cross_envs"], comp["origins"] = found["cross_envs"], found["origins"]
        if plan.bisect:
            fb, fc = base["versions"].get("flax"), cand["versions"].get("flax")
            if not fb or not fc:
                comp["bisection"] = {p: {"first": None, "explanation": "flax version unknown on a side"} for p in props}
                continue
            if releases_all is None:
                try:
                    releases_all = flax_releases()
                except LookupError as exc:
                    releases_all = exc
            if isinstance(releases_all, LookupError):
                comp["bisection"] = {p: {"first": None, "explanation": str(releases_all)} for p in props}
                continue
            releases = attribution.releases_from(releases_all, fb, fc)
            log(f"bisection of {len(props)} changes over {len(releases)} flax releases from {fb} to {fc}")
            others = attribution.other_requirements(cand["requirements"])
            memo: dict = {}  # release -> run, for this candidate's changes
            bis = attribution.bisect_changes(props, base, cand, releases,
                                             lambda v, ps: runner.release(v, ps, others), memo)
            if plan.attribute:
                attribution.attribute_boundaries(bis, base, memo, runner)
            comp["bisection"] = bis


# --- merge: the verdict of side reports (conformance/gate/merge.py) -------------------------------------


def trace_merged(matrix: dict, result: dict, infos: dict, out_dir: str, plan: dict, golden: dict | None,
                 cache_dir: str | None) -> None:
    """Attribution of every change, in cross environments, as the single-process gate traces it (into ``result``)."""
    baseline = result["baseline"]
    base_info = infos[baseline]
    gate_plan = GatePlan(baseline=tuple(base_info.get("requirements") or []), candidates=(), profile=plan["profile"],
                         timeout=plan["timeout"], module_paths=tuple(plan.get("module_paths") or ()),
                         python=sys.executable, attribute=True)
    # The baseline's records, copied beside the report: the cross environments compare against them, as in one process.
    env_vars = {k: os.path.join(out_dir, rel) for k, rel in ((golden or {}).get("files") or {}).items()}
    project, _ = dist.install_source(None, cachedirs.part("wheels"))
    cache = os.path.abspath(os.path.expanduser(cache_dir or cachedirs.gate_envs()))
    runner = EnvRunner(gate_plan, os.path.join(out_dir, "origins"), cache, project,
                       list(base_info.get("pytest_args") or []), env_vars)
    trace_changes(gate_plan, result, matrix, infos, runner)


def run_merge(directories: list[str], out: str, accept_files: list[str], attribute: bool = True,
              cache_dir: str | None = None) -> int:
    """``python -m conformance merge``: the verdict and reports of the sides' reports; its exit code is the gate's."""
    try:
        extra = [a for path in accept_files for a in load_accepts(path)]
        out_dir = os.path.abspath(out)
        matrix, result, infos = merge.merge(directories, out_dir, extra)
        docs = [d for directory in directories for d in merge.read_dir(directory)]
        plan = next((d["plan"] for d in docs if d.get("plan")), None)
        golden = next((d.get("golden") for d in docs if d["label"] == result["baseline"]), None)
    except (ValueError, OSError, KeyError) as exc:
        print(f"python -m conformance merge: {exc}", file=sys.stderr)
        return 2
    if attribute and plan and plan.get("attribute") and any(c["changes"] or c["accepted"] or c["improvements"]
                                                             for c in result["comparisons"]):
        trace_merged(matrix, result, infos, out_dir, plan, golden, cache_dir)
    result["wall_seconds"] = max((info.get("seconds") or 0.0 for info in infos.values()), default=0.0)
    md = write_reports(out_dir, matrix, result, infos)
    print(md)
    log(f"exit {result['exit_code']}: {len(infos)} sides merged from {len(directories)} directories; reports in "
        f"{out_dir} (gate.md, gate.html, gate.json, gate-junit.xml)")
    return result["exit_code"]


def _interrupt(signum, frame):
    envs.stop_children()  # first, so worker threads stop waiting on builds and suites
    raise KeyboardInterrupt


def run(plan: GatePlan) -> int:
    import signal
    import threading

    envs.reset_clock()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt) if main_thread else None
    try:
        return _run_gate(plan)
    except KeyboardInterrupt:
        envs.stop_children()
        log("interrupted: no verdict (environments being built were removed, finished ones stay cached)")
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        envs._STOPPING.clear()


def write_side_reports(plan: GatePlan, sides: list[Side], selected: list[Side], infos: dict, accepts: list,
                       reference: GoldenReference, out_dir: str) -> int:
    """``--side``: each selected side's report for ``merge``; exit 0 when every one gave results, else 2."""
    labels = [s.label for s in sides]
    for s in selected:
        golden = None
        if s.role == "baseline" and plan.golden == "baseline" and reference.env_vars:
            golden = merge.golden_files(reference.dir, reference.env_vars, reference.note)
        path = merge.write_side(out_dir, s, labels.index(s.label), labels, infos[s.label], accepts, golden,
                                reference.note, plan)
        log(f"{s.role} {s.label}: side report {path}")
    missing = [s.label for s in selected if infos[s.label]["results"] is None]
    log(f"merge every side's directory for the verdict: python -m conformance merge DIR... "
        f"({'no results from ' + ', '.join(missing) if missing else 'results from ' + ', '.join(s.label for s in selected)})")
    return 2 if missing else 0


def _run_gate(plan: GatePlan) -> int:
    start = time.monotonic()
    try:
        sides = make_sides(plan)
        selected = merge.select(sides, plan.side) if plan.side else sides  # --side: this job's share
        accepts = []
        for path in plan.accept_files:
            try:
                accepts += load_accepts(path)
            except OSError as exc:
                raise ValueError(f"--accept {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, LookupError, OSError) as exc:  # bad arguments, or PyPI could not date a release
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    cache_dir = os.path.abspath(os.path.expanduser(plan.cache_dir or cachedirs.gate_envs()))
    try:  # the suite each side installs, before anything is written
        deps = dist.dependencies(plan.project)
        project, source_note = dist.install_source(plan.project, cachedirs.part("wheels"))
    except (LookupError, OSError) as exc:
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(plan.out)
    os.makedirs(out_dir, exist_ok=True)
    jobs = max(1, plan.jobs or min(len(selected), os.cpu_count() or 1))
    log(f"suite: {source_note}")
    if find_uv() is None:
        log(f"note: {UV_MISSING}")
    for s in sides:
        log(f"{s.role} {s.label}: {' '.join(s.requirements)}; exclude-newer {s.exclude_newer or 'none'} ({s.exclude_newer_note})"
            + "".join(f"; {src.describe()}" for src in s.sources))
    log(f"{len(selected)} environments, {jobs} at a time, profile {plan.profile!r}, cache {cache_dir}, report {out_dir}")
    reference = GoldenReference(plan.golden, out_dir, list(plan.modules), plan.timeout)
    if plan.golden == "baseline" and not any(s.role == "baseline" for s in selected):  # a candidates' job
        try:
            reference.env_vars, reference.note = merge.adopt_golden(plan.golden_from)
        except (ValueError, OSError) as exc:
            print(f"python -m conformance gate: {exc}", file=sys.stderr)
            return 2
        reference.ready.set()
    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    try:
        futures = {}
        for s in selected:  # the baseline first: with one job at a time it must not wait behind a candidate
            prepare = reference.record if s.role == "baseline" else reference.wait
            futures[s.label] = pool.submit(run_side, s, out_dir, cache_dir, plan.python, project, plan.profile,
                                           plan.timeout, deps, prepare)
            if s.role == "baseline":
                futures[s.label].add_done_callback(reference.abandon)
        infos = {label: f.result() for label, f in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    log(f"golden reference: {reference.note}")
    if plan.side:
        return write_side_reports(plan, sides, selected, infos, accepts, reference, out_dir)
    baseline = sides[0].label
    candidates = [s.label for s in sides[1:]]
    matrix = build_matrix({label: info["results"] for label, info in infos.items()})
    errors = {label: info["error"] for label, info in infos.items() if info["error"]}
    versions = {label: info.get("versions") or {} for label, info in infos.items()}
    result = verdict(matrix, baseline, candidates, errors, versions, accepts)
    result["golden_reference"] = reference.note
    if plan.attribute or plan.bisect:
        runner = EnvRunner(plan, os.path.join(out_dir, "origins"), cache_dir, project, sides[0].pytest_args,
                           reference.env_vars)
        trace_changes(plan, result, matrix, infos, runner)
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    md = write_reports(out_dir, matrix, result, infos)
    print(md)
    log(f"exit {result['exit_code']} after {result['wall_seconds']} s; reports in {out_dir} (gate.md, gate.html, gate.json, gate-junit.xml)")
    return result["exit_code"]
