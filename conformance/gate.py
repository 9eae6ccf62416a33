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

This module is the command (arguments, sides, orchestration, progress). The
verdict rules and accept files are pure and live in ``conformance/verdict.py``;
attribution and bisection in ``conformance/attribution.py`` (environments
injected); environments, PyPI dates and release lists in ``conformance/envs.py``;
the Markdown, JSON and JUnit reports in ``conformance/gate_reports.py``.

Exit codes: 0 safe; 1 a candidate changes or regresses; 2 no verdict (bad
arguments, an environment would not build or a run produced no results, Ctrl-C).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import threading
import time

from conformance import attribution, config, envs
from conformance import versions as verified
from conformance.envs import (
    DEFAULT_CACHE,
    UV_MISSING,
    Side,
    build_env,
    find_uv,
    flax_releases,
    label_for,
    log,
    log_tail,
    read_requirements,
    resolve_exclude_newer,
    run_suite,
)
from conformance.gate_reports import write_reports
from conformance.verdict import (
    SEVERITY,
    Result,
    build_matrix,
    collapse,
    load_accepts,
    parse_junit,
    verdict,
)


def run_side(side: Side, out_dir: str, cache_dir: str, python: str, project: str, profile: str,
             timeout: float | None, deps: list[str] | None = None, prepare=None) -> dict:
    """Build, run, parse: ``{"results": [...] or None, "versions": {...}, "error": str or None, ...}``.

    ``prepare(side, env_python, info, logfile)``, if given, runs between the build and the suite
    (the baseline records its golden records there; candidates wait for them).
    """
    start = time.monotonic()
    log_path = os.path.join(out_dir, f"{side.label.replace('#', '-')}.log")
    info = {"label": side.label, "role": side.role, "requirements": side.requirements,
            "exclude_newer": side.exclude_newer, "exclude_newer_note": side.exclude_newer_note,
            "pytest_args": side.pytest_args, "log": log_path, "results": None, "error": None, "versions": {}}
    with open(log_path, "w") as logfile:
        try:
            env_python, info["versions"] = build_env(side, cache_dir, python, project, logfile, deps)
            info["env"] = os.path.dirname(os.path.dirname(env_python))
            info["build_seconds"] = round(time.monotonic() - start, 1)
            info["unverified"] = verified.newer_than_verified(info["versions"])
            note = f"; {verified.verification_note(info['versions'])}" if info["unverified"] else ""
            if prepare is not None:
                prepare(side, env_python, info, logfile)
            log(f"{side.label}: running the suite (flax {info['versions'].get('flax')}, jax {info['versions'].get('jax')}){note}")
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
        tail = log_tail(log_path)
        log(f"{side.label}: NO RESULTS after {info['seconds']} s: {info['error']}"
            + (f"\n--- last lines of {log_path} ---\n{tail.rstrip()}\n---" if tail else ""))
    return info


class GoldenReference:
    """The golden records every side's golden properties compare against.

    ``baseline`` (the default): the baseline's own, recorded in its environment as soon as it
    is built; candidates wait for them. A candidate whose numbers or masks differ from the
    baseline's then changes, even where both differ from the committed record (which a known
    deviation may excuse on either side). ``committed``, or when recording fails: the suite's
    committed records, with a note.
    """

    def __init__(self, choice: str, out_dir: str, modules: list[str], timeout: float | None):
        self.choice, self.dir, self.modules, self.timeout = choice, os.path.join(out_dir, "golden"), modules, timeout
        self.env_vars: dict[str, str] = {}
        self.ready = threading.Event()
        self.note = "the committed records (--golden committed)"
        if choice == "committed":
            self.ready.set()

    def record(self, side: Side, env_python: str, info: dict, logfile) -> None:
        """The baseline's ``prepare``: record, then release the candidates."""
        try:
            if self.choice == "baseline":
                log(f"{side.label}: recording the golden references every side compares against")
                self.env_vars = envs.record_golden(side, env_python, self.dir, self.modules, self.timeout, logfile)
                v = info.get("versions") or {}
                self.note = (f"the baseline's own records ({side.label}: flax {v.get('flax')}, jax {v.get('jax')}), "
                             f"{os.path.relpath(self.dir, os.path.dirname(self.dir))}/")
        except Exception as exc:  # no verdict is lost: the committed records still judge every side
            self.note = f"the committed records (recording the baseline's failed: {exc})"
            log(f"note: golden reference: {self.note}")
        finally:
            self.ready.set()
        side.env_vars.update(self.env_vars)

    def wait(self, side: Side, env_python: str, info: dict, logfile) -> None:
        """A candidate's ``prepare``: the baseline's records, once they exist."""
        while not self.ready.wait(0.5):
            if envs._STOPPING.is_set():
                raise KeyboardInterrupt
        side.env_vars.update(self.env_vars)

    def abandon(self, _future=None) -> None:
        """The baseline finished without recording (its build failed): candidates use the committed records."""
        if not self.ready.is_set():
            self.note = "the committed records (the baseline gave no environment to record in)"
            self.ready.set()


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
    p.add_argument("--cache-dir", default=None,
                   help=f"where environments are cached (default {DEFAULT_CACHE}, or $CONFORMANCE_GATE_CACHE)")
    p.add_argument("--python", default=sys.executable, help="interpreter the environments are made from")
    p.add_argument("--project", default=None,
                   help="install the suite from this checkout (default: a wheel of the installed suite)")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments for every side (one string)")
    p.add_argument("--candidate-pytest-args", default="",
                   help="extra pytest arguments for candidates only, e.g. '-p conformance.faults --fault NAME'")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one side's pytest run may take")
    p.add_argument("--module", action="append", default=[], metavar="PACKAGE.MODULE:FACTORY",
                   help="a team's module declaration, forwarded to every side's suite (repeatable); the package must "
                        "import in every side: install it through --*-requirements, or name its directory with --module-path")
    p.add_argument("--module-path", action="append", default=[], metavar="DIR",
                   help="a directory put on every side's PYTHONPATH (a team's layers, not installed; repeatable)")
    p.add_argument("--accept", action="append", default=[], metavar="FILE",
                   help="accepted changes, one 'property | release range | reason' a line, e.g. "
                        "'test_apply_rejects_missing_leaf | flax>=0.12,<0.13 | we never restore partial params' "
                        "(repeatable; the range is pip specifiers on the candidate's versions)")
    p.add_argument("--golden", choices=config.GATE_GOLDEN_CHOICES, default=config.GATE_GOLDEN,
                   help="what the golden properties compare against: baseline = the baseline's own records, "
                        "recorded in its environment (default), committed = the suite's committed records")
    p.add_argument("--no-attribution", dest="attribute", action="store_false",
                   help="skip the cross environments that tell whether a change comes from flax or from jax")
    p.add_argument("--bisect", action="store_true",
                   help="find the first flax release (with the jax of its time) showing each change, by binary "
                        "search over the releases between baseline and candidate")


EPILOG = """exit codes:
  0  safe: no candidate behaves worse than the baseline (accepted changes, improvements, drift within
     the error model and skips are reported, never failed)
  1  a candidate changes or regresses: a property that passes on the baseline is a known deviation
     or fails on it (changed numerics beyond the error model included), or a known deviation now
     fails, and no --accept entry covers it
  2  no verdict: bad arguments, a side that would not build or produced no results, or Ctrl-C

Attribution (unless --no-attribution) re-runs each change in two cross environments: the
candidate's flax with the baseline's jax, and the baseline's flax with the candidate's jax,
resolved as of the later side's date. --bisect searches the flax releases in between; it
assumes one flip per change and reports any release that contradicts it.
"""


def module_paths(args) -> list[str]:
    """--module-path directories, absolute; a missing one is a clear error."""
    paths = []
    for d in getattr(args, "module_path", []):
        if not os.path.isdir(d):
            raise ValueError(f"--module-path must be an existing directory; got {d!r}")
        paths.append(os.path.abspath(d))
    return paths


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
    from conformance import declare

    modules = [declare.check_factory_path(m) for m in getattr(args, "module", [])]
    paths = module_paths(args)
    common = shlex.split(args.pytest_args) + [a for m in modules for a in ("--module", m)]
    for role, reqs in [("baseline", base_reqs)] + [("candidate", c) for c in cand_sets]:
        extra = common + (shlex.split(args.candidate_pytest_args) if role == "candidate" else [])
        side = Side(label_for(reqs, taken), role, reqs, pytest_args=extra, pythonpath=list(paths))
        side.exclude_newer, side.exclude_newer_note = resolve_exclude_newer(args.exclude_newer, reqs, lookup)
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

    def __init__(self, args, out_dir: str, cache_dir: str, project: str, pytest_args: list[str],
                 env_vars: dict | None = None):
        self.args, self.out_dir, self.cache_dir, self.project = args, out_dir, cache_dir, project
        self.pytest_args = pytest_args
        self.env_vars = dict(env_vars or {})  # the golden references the sides compared against
        self.count = 0

    def __call__(self, spec: attribution.EnvSpec, properties: list[str], role: str = "cross") -> attribution.EnvRun:
        self.count += 1
        os.makedirs(self.out_dir, exist_ok=True)
        side = Side(spec.name, role, spec.requirements, pytest_args=narrowed(self.pytest_args, properties),
                    exclude_newer=spec.exclude_newer, exclude_newer_note=spec.note, pythonpath=module_paths(self.args),
                    env_vars=dict(self.env_vars))
        log(f"{role} environment {spec.name} ({spec.note}; exclude-newer {spec.exclude_newer or 'none'}): "
            f"{len(properties)} properties")
        info = run_side(side, self.out_dir, self.cache_dir, self.args.python, self.project, self.args.profile,
                        self.args.timeout)
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


def trace_changes(args, result: dict, matrix: dict, infos: dict, runner: EnvRunner) -> None:
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
        if args.attribute:
            log(f"attribution of {len(props)} changes of {cand_label}: {', '.join(props)}")
            found = attribution.attribute(props, base, cand, runner)
            comp["cross_envs"], comp["origins"] = found["cross_envs"], found["origins"]
        if args.bisect:
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
            if args.attribute:
                attribution.attribute_boundaries(bis, base, memo, runner)
            comp["bisection"] = bis


def _interrupt(signum, frame):
    envs.stop_children()  # first, so worker threads stop waiting on builds and suites
    raise KeyboardInterrupt


def run(args) -> int:
    import signal
    import threading

    envs.reset_clock()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt) if main_thread else None
    try:
        return _run_gate(args)
    except KeyboardInterrupt:
        envs.stop_children()
        log("interrupted: no verdict (environments being built were removed, finished ones stay cached)")
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        envs._STOPPING.clear()


def _run_gate(args) -> int:
    start = time.monotonic()
    try:
        sides = make_sides(args)
        accepts = []
        for path in args.accept:
            try:
                accepts += load_accepts(path)
            except OSError as exc:
                raise ValueError(f"--accept {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, LookupError, OSError) as exc:  # bad arguments, or PyPI could not date a release
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    from conformance import cachedirs, dist

    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir or cachedirs.gate_envs()))
    try:  # the suite each side installs, before anything is written
        deps = dist.dependencies(args.project)
        project, source_note = dist.install_source(args.project, cachedirs.part("wheels"))
    except (LookupError, OSError) as exc:
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    jobs = max(1, args.jobs or min(len(sides), os.cpu_count() or 1))
    log(f"suite: {source_note}")
    if find_uv() is None:
        log(f"note: {UV_MISSING}")
    for s in sides:
        log(f"{s.role} {s.label}: {' '.join(s.requirements)}; exclude-newer {s.exclude_newer or 'none'} ({s.exclude_newer_note})")
    log(f"{len(sides)} environments, {jobs} at a time, profile {args.profile!r}, cache {cache_dir}, report {out_dir}")
    reference = GoldenReference(getattr(args, "golden", config.GATE_GOLDEN), out_dir,
                                list(getattr(args, "module", [])), args.timeout)
    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    try:
        futures = {}
        for s in sides:  # the baseline first: with one job at a time it must not wait behind a candidate
            prepare = reference.record if s.role == "baseline" else reference.wait
            futures[s.label] = pool.submit(run_side, s, out_dir, cache_dir, args.python, project, args.profile,
                                           args.timeout, deps, prepare)
            if s.role == "baseline":
                futures[s.label].add_done_callback(reference.abandon)
        infos = {label: f.result() for label, f in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    log(f"golden reference: {reference.note}")
    baseline = sides[0].label
    candidates = [s.label for s in sides[1:]]
    matrix = build_matrix({label: info["results"] for label, info in infos.items()})
    errors = {label: info["error"] for label, info in infos.items() if info["error"]}
    versions = {label: info.get("versions") or {} for label, info in infos.items()}
    result = verdict(matrix, baseline, candidates, errors, versions, accepts)
    result["golden_reference"] = reference.note
    if args.attribute or args.bisect:
        runner = EnvRunner(args, os.path.join(out_dir, "origins"), cache_dir, project, sides[0].pytest_args,
                           reference.env_vars)
        trace_changes(args, result, matrix, infos, runner)
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    md = write_reports(out_dir, matrix, result, infos)
    print(md)
    log(f"exit {result['exit_code']} after {result['wall_seconds']} s; reports in {out_dir} (gate.md, gate.json, gate-junit.xml)")
    return result["exit_code"]


def main(argv=None) -> int:
    """``python -m conformance.gate ...`` is ``python -m conformance gate ...`` (the same checks)."""
    from conformance.__main__ import main as conformance_main

    return conformance_main(["gate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
