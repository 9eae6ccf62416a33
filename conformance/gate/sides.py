"""One side of the gate: build its environment, run the suite there, parse the results; and the golden references.

A side that cannot be built or run gives no results and an error, never a
crash: the verdict then says "no verdict" for it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import traceback

from conformance.core import config
from conformance.core import versions as verified
from conformance.gate import envs
from conformance.gate.envs import Side, build_env, log, log_tail, run_suite
from conformance.gate.verdict import SEVERITY, Result, collapse, parse_junit


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
            "pytest_args": side.pytest_args, "log": log_path, "results": None, "error": None, "versions": {},
            "sources": [dataclasses.asdict(s) for s in side.sources]}
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
            traceback.print_exc(file=logfile)  # where it came from, in the side's log
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
                if config.CHECKPOINT_DIR_ENV in self.env_vars:
                    self.note += "; every side restores its orbax checkpoints (test_checkpoint_restores_*)"
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
