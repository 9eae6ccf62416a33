"""Every repro snippet runs and reproduces its failure.

The self-check that tests/test_selfcheck.py runs (one run for both checks) runs each fault of
``config.SNIPPET_FAULTS`` over the properties whose snippets it proves, to their end, and keeps their failures
(``selfcheck --snippets``). Each failing property's repro note is read from that failure and executed as printed, as ``python -c`` runs it: the first of each kind (pipeline or not, x64 or not) in a
fresh interpreter, the others forked from a server that imported jax and flax once (``forked.run_python``). It must re-apply the
fault itself and end in the property's failure (an exception). Properties that carry a
snippet are found in the suite's source, so a new one without a fault here
fails the coverage test.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import textwrap

from conformance.core import deviations
from conformance.core.config import SNIPPET_FAULTS
from conformance.selfcheck import forked
from conformance.selfcheck.faults import FAULTS

SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conformance")

REPRO = re.compile(r"^E\s+repro:\s*$")


def properties_with_snippets() -> set[str]:
    """Properties whose body reports through ``reporting(...)``: each failure carries a snippet."""
    found = set()
    for root, _, names in os.walk(SUITE):  # properties/<area>/test_*.py
        for name in names:
            if name.startswith("test_") and name.endswith(".py"):
                with open(os.path.join(root, name)) as fh:
                    for func, body in re.findall(r"^def (test_\w+)\(.*?\):\n(.*?)(?=^\S)", fh.read() + "\nEND", re.M | re.S):
                        if "reporting(" in body:
                            found.add(func)
    return found


def deviating_here() -> set[str]:
    """Properties that are known deviations of the installed flax: under a fault they xfail, no snippet to run."""
    versions = deviations.installed_versions()
    return {d.test for d in deviations.load() if d.applies(versions)}


def snippet_of(failure_text: str) -> str | None:
    """The repro note of a pytest failure text: the lines indented under ``E   repro:`` (pytest's ``E`` removed)."""
    lines = failure_text.splitlines()
    for i, line in enumerate(lines):
        if REPRO.match(line):
            depth = len(line[1:]) - len(line[1:].lstrip())
            body = []
            for nxt in lines[i + 1:]:
                text = nxt[1:] if nxt.startswith("E") else None
                if text is None or len(text) - len(text.lstrip()) <= depth:
                    break
                body.append(text)
            return textwrap.dedent("\n".join(body))
    return None


def snippets_found(report: dict, fault: str, props: list[str]) -> dict[str, str]:
    """property -> snippet, from the self-check's run of ``fault`` (``--snippets``: its properties, failures kept)."""
    run = next((r for r in report["results"] if r["fault"] == fault), None)
    assert run is not None, f"{fault}: not in the self-check's report"
    assert run.get("snippet_properties"), f"{fault}: its run was not the snippet run (it caught: {run['caught_by']})"
    return {p: snippet_of(text) for p, text in run.get("failures", {}).items() if p in props}


def run_snippet(code: str, cwd, fresh: bool) -> str:
    """The snippet's output (stderr last), run as ``python -c`` runs it: in a fresh interpreter, or forked
    from a server that imported numpy, jax, flax, optax, orbax, Hypothesis and pytest (not the project).
    Raises nothing: the caller reads the exit code from the returned process."""
    if fresh:
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout + proc.stderr, "")
    return forked.run_python(code, cwd=cwd, timeout=600)


def test_every_snippet_property_has_a_fault():
    covered = {p for props in SNIPPET_FAULTS.values() for p in props}
    every_case_deviates = {d for d in deviating_here() if "[" not in d}  # a property deviating in one case only still needs a fault
    missing = properties_with_snippets() - covered - every_case_deviates
    assert not missing, f"properties with a repro snippet but no fault in SNIPPET_FAULTS: {sorted(missing)}"


def test_snippet_of_reads_pytest_failure_text():
    text = ("E   AssertionError: y differs\nE   property: p\nE   repro:\nE       import jax\nE       x = 1\n"
            "E   Failing test case: test_p(\nE       device='cpu:0',\nE   )\n\nfile.py:3: AssertionError")
    assert snippet_of(text) == "import jax\nx = 1"
    assert snippet_of("E   AssertionError: no note") is None


def snippet_problems(report: dict, tmp_path) -> list[str]:
    """What is wrong with the repro snippets of a ``selfcheck --snippets`` report: each must re-apply its fault and
    end in its property's failure. tests/test_selfcheck.py calls it on the self-check it runs (one run for both)."""
    skip = deviating_here()
    jobs = {f: [p for p in props if p not in skip] for f, props in SNIPPET_FAULTS.items()}
    found = {f: snippets_found(report, f, props) for f, props in jobs.items()}
    problems, snippets = [], []
    for fault, props in jobs.items():
        for prop in props:
            code = found[fault].get(prop)
            if code is None:
                problems.append(f"{prop}: no failure with a repro note under --fault {fault}")
                continue
            if f'faults.install("{fault}")' not in code:
                problems.append(f"{prop}: the snippet does not re-apply --fault {fault}:\n{code}")
                continue
            snippets.append((fault, prop, code))
    # The first snippet of each kind in a fresh interpreter, exactly as a reader runs it; the rest forked (one
    # generator, repro_snippet, writes every preamble: about 2.5 s of imports saved each). A kind is whether the
    # fault acts in a pipeline and whether the snippet switches x64 on: what a fresh start can differ by.
    fresh, kinds = [], set()
    for fault, _, code in snippets:
        kind = (FAULTS[fault].area.startswith("pipelines"), "jax_enable_x64" in code)
        fresh.append(kind not in kinds)
        kinds.add(kind)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda s: run_snippet(s[0][2], str(tmp_path), s[1]), zip(snippets, fresh)))
    for (fault, prop, code), proc in zip(snippets, results):
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode == 0:
            problems.append(f"{prop} (--fault {fault}): the snippet ran without failing:\n{code}")
        elif re.match(r"^(NameError|SyntaxError|ImportError|ModuleNotFoundError|IndentationError)\b", last):
            problems.append(f"{prop} (--fault {fault}): the snippet is broken: {last}\n{code}")
    return problems
