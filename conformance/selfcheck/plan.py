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
