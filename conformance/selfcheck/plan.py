"""Where a fault's first-catch run looks first: only the suite's files that hold its known catchers.

``selfcheck --first-catch`` stops each fault's run at its first failing
property and puts the fault's known catchers first (``config.FAULT_FIRST_CATCHERS``,
and ``config.PIPELINE_FIRST_CATCH_ORDER`` for a pipeline fault). Collecting
the whole suite for a run that stops at its first test costs more than that
test in many runs, so a fault with known catchers first runs over the files
that define them. Only a catch counts there: a restricted run that catches
nothing (or ends in an error of its own) is run again over the whole suite,
as before, so a fault is reported MISSED only after a whole-suite run.
"""

from __future__ import annotations

import os
import re

from conformance.core import config

_PROPERTY_DEF = re.compile(r"^def (test_\w+)", flags=re.M)


def property_files(properties_dir: str = config.PROPERTIES_DIR) -> dict[str, tuple[str, ...]]:
    """Each property name the suite defines -> the test files (absolute paths) that define it."""
    where: dict[str, list[str]] = {}
    for dirpath, _, fnames in os.walk(properties_dir):
        for fname in sorted(fnames):
            if fname.startswith("test_") and fname.endswith(".py"):
                path = os.path.join(dirpath, fname)
                with open(path) as fh:
                    for name in _PROPERTY_DEF.findall(fh.read()):
                        where.setdefault(name, []).append(path)
    return {name: tuple(paths) for name, paths in where.items()}


def first_catchers(fault: str, area: str) -> tuple[str, ...]:
    """The properties a fault's first-catch run tries before the general order: its own, else a pipeline's."""
    own = config.FAULT_FIRST_CATCHERS.get(fault, ())
    if own:
        return tuple(own)
    return tuple(config.PIPELINE_FIRST_CATCH_ORDER) if area.startswith("pipelines") else ()


def ignored_files(catchers, files: dict[str, tuple[str, ...]]) -> list[str] | None:
    """The suite's test files that define none of ``catchers``: what a restricted run leaves out.

    None (run the whole suite) when there are no catchers, or when one of
    them is defined nowhere (a renamed property must not narrow a run to nothing).
    """
    if isinstance(catchers, str):
        raise TypeError(f"catchers must be a sequence of property names, not the string {catchers!r}")
    if not catchers or any(c not in files for c in catchers):
        return None
    keep = {path for c in catchers for path in files[c]}
    every = {path for paths in files.values() for path in paths}
    return sorted(every - keep)


def _caught(result: dict) -> bool:
    """A restricted run proves a catch only with tests run, exit 1 and a property failed or errored."""
    return result["returncode"] == 1 and result["tests"] > 0 and bool(result["caught_by"])


def first_catch_run(run_suite, fault: str, profile: str, out_dir: str, extra: list[str]) -> dict:
    """``run_suite(fault, profile, out_dir, extra)`` over the files of the fault's catchers, else the whole suite.

    ``run_suite`` is the runner's suite run. The result says which run decided:
    ``restricted_to`` holds the catchers a restricted run looked for, and
    ``widened`` is True when that run caught nothing and the whole suite ran.
    """
    from conformance.selfcheck.faults import FAULTS

    if fault not in FAULTS:
        raise ValueError(f"fault must be one of the corpus' faults; got {fault!r}")
    catchers = first_catchers(fault, FAULTS[fault].area)
    ignore = ignored_files(catchers, property_files())
    if ignore is None:
        return run_suite(fault, profile, out_dir, list(extra))
    narrow = run_suite(fault, profile, out_dir, list(extra) + [f"--ignore={path}" for path in ignore])
    if _caught(narrow):
        return {**narrow, "restricted_to": list(catchers), "widened": False}
    whole = run_suite(fault, profile, out_dir, list(extra))
    return {**whole, "restricted_to": list(catchers), "widened": True,
            "seconds": round(whole["seconds"] + narrow["seconds"], 1)}


def snippet_run(run_suite, fault: str, profile: str, out_dir: str, extra: list[str], fallback_extra: list[str]) -> dict:
    """The properties whose repro snippets ``fault`` proves (``config.SNIPPET_FAULTS``) and its known first catchers,
    over their files, each to its end, with their failures kept; a run that catches nothing is the first-catch run
    instead (``fallback_extra``)."""
    props = list(dict.fromkeys([*config.SNIPPET_FAULTS[fault], *config.FAULT_FIRST_CATCHERS.get(fault, ())]))
    ignore = ignored_files(props, property_files()) or []
    run = run_suite(fault, profile, out_dir, list(extra) + ["-k", " or ".join(props)] + [f"--ignore={p}" for p in ignore],
                    keep_failures=True)
    if _caught(run):
        return {**run, "snippet_properties": list(props)}
    return first_catch_run(run_suite, fault, profile, out_dir, list(fallback_extra))


def benign_order(names) -> list[str]:
    """``names`` in order, except that each perturbation reusing another's programs (``config.BENIGN_REUSES``)
    comes last, after the one it reuses: started beside it, both would compile those programs."""
    names = list(names)
    later = [n for n in names if config.BENIGN_REUSES.get(n) in names]
    return [n for n in names if n not in later] + later


def run_clean_first(clean, benign, faults, jobs: int, report) -> None:
    """Run every callable on ``jobs`` threads: the clean run first, the benign runs only after it, faults between.

    A benign run recompiles only what its perturbation changes when the clean
    run has filled the compilation cache first; started beside it, both compile
    every program. Fault runs (short, restricted to their catchers' files) fill
    the other threads meanwhile, and what is left of them evens out the end.
    ``report(result)`` is called with each result as it comes, one at a time.
    """
    import threading

    lock = threading.Condition()
    queue = {"clean": [clean], "benign": list(benign), "faults": list(faults)}
    state = {"clean_done": False, "error": None}

    def take():
        with lock:
            while True:
                if state["error"] is not None:
                    return None
                if queue["clean"]:
                    return queue["clean"].pop(0), True
                if state["clean_done"] and queue["benign"]:
                    return queue["benign"].pop(0), False
                if queue["faults"]:
                    return queue["faults"].pop(0), False
                if not queue["benign"]:
                    return None
                lock.wait()  # only benign runs are left, and they wait for the clean run

    def worker():
        while (item := take()) is not None:
            job, is_clean = item
            try:
                result = job()
            except BaseException as exc:  # re-raised in the caller
                with lock:
                    state["error"] = exc
                    lock.notify_all()
                return
            with lock:
                report(result)
                if is_clean:
                    state["clean_done"] = True
                lock.notify_all()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["error"] is not None:
        raise state["error"]
