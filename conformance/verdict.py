"""The gate's verdict: JUnit XML -> outcomes -> a property x environment matrix -> exit code.

Pure functions only (``parse_junit`` -> ``build_matrix`` -> ``verdict``), so the
project's tests run them on synthetic XML; nothing here builds or runs anything.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

# --- outcomes ---------------------------------------------------------------------------

PASS, SKIPPED, DEVIATION, DRIFT, FIXED, FAIL, MISSING = "pass", "skipped", "deviation", "drift", "fixed", "fail", "missing"
# Collapsing a property's device instances: the worst outcome wins.
SEVERITY = {PASS: 0, SKIPPED: 1, DEVIATION: 2, DRIFT: 3, FIXED: 4, MISSING: 5, FAIL: 6}
GOLDEN = {"test_golden_numerics": "numerics drift", "test_golden_structure": "structure change"}
DEVIATION_PREFIX = "known deviation"
DEVICE_ID = re.compile(r"^(cpu|gpu|tpu|cuda|rocm|METAL|mps):\d+$", re.I)


@dataclasses.dataclass
class Result:
    """One testcase of a JUnit XML, classified."""

    property: str
    test: str  # the full test id, device included
    outcome: str
    message: str = ""
    category: str = ""  # for drift: "numerics drift" or "structure change"


@dataclasses.dataclass
class Cell:
    """One property in one environment, device instances collapsed."""

    outcome: str
    message: str = ""
    category: str = ""
    tests: int = 0


# --- parsing ---------------------------------------------------------------------------


def property_of(name: str) -> str:
    """``test_x[cpu:0]`` -> ``test_x``; a non-device parameter stays (``test_x[a]``); device parts of ``a-cpu:0`` go."""
    m = re.match(r"^(?P<base>[^\[]+)\[(?P<param>.*)\]$", name)
    if not m:
        return name
    kept = [p for p in m.group("param").split("-") if not DEVICE_ID.match(p)]
    return m.group("base") + (f"[{'-'.join(kept)}]" if kept else "")


def _first_line(text: str | None, limit: int = 400) -> str:
    text = (text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def classify(case: ET.Element) -> Result:
    """A JUnit ``<testcase>`` as a :class:`Result`."""
    name = case.get("name", "")
    prop = property_of(name)
    for child in case:
        tag = child.tag
        msg = child.get("message") or (child.text or "")
        if tag in ("failure", "error"):
            if "XPASS(strict)" in msg:
                return Result(prop, name, FIXED, _first_line(msg.replace("[XPASS(strict)]", "").strip()))
            if prop in GOLDEN and tag == "failure":
                return Result(prop, name, DRIFT, _first_line(msg), GOLDEN[prop])
            return Result(prop, name, FAIL, _first_line(msg))
    for child in case:
        if child.tag == "skipped":
            msg = child.get("message") or (child.text or "")
            if child.get("type") == "pytest.xfail":
                if msg.startswith(DEVIATION_PREFIX):
                    return Result(prop, name, DEVIATION, _first_line(msg))
                return Result(prop, name, SKIPPED, _first_line("xfail: " + msg))
            return Result(prop, name, SKIPPED, _first_line(msg))
    return Result(prop, name, PASS)


def parse_junit(source) -> list[Result]:
    """Every testcase of a JUnit XML (a path, a file object or the XML text), classified."""
    if isinstance(source, str) and source.lstrip().startswith("<"):
        root = ET.fromstring(source)
    else:
        root = ET.parse(source).getroot()
    return [classify(c) for c in root.iter("testcase")]


def collapse(results: list[Result]) -> dict[str, Cell]:
    """One cell per property: the worst outcome of its instances, with the first message of that outcome."""
    cells: dict[str, Cell] = {}
    for r in results:
        cell = cells.get(r.property)
        if cell is None:
            cells[r.property] = Cell(r.outcome, r.message, r.category, 1)
            continue
        cell.tests += 1
        if SEVERITY[r.outcome] > SEVERITY[cell.outcome]:
            cell.outcome, cell.message, cell.category = r.outcome, r.message, r.category
        elif r.outcome == cell.outcome and not cell.message and r.message:
            cell.message = r.message
    return cells


# --- the matrix and the verdict --------------------------------------------------------------


def build_matrix(results_by_env: dict[str, list[Result] | None]) -> dict:
    """``{"properties": [...], "envs": [...], "cells": {env: {property: Cell}}}``.

    ``None`` for an environment means it produced no results: its column is
    ``missing`` throughout. Properties keep their order of first appearance.
    """
    order: list[str] = []
    seen = set()
    cells: dict[str, dict[str, Cell]] = {}
    for env, results in results_by_env.items():
        collapsed = collapse(results or [])
        cells[env] = collapsed
        for p in collapsed:
            if p not in seen:
                seen.add(p)
                order.append(p)
    for env in cells:
        for p in order:
            cells[env].setdefault(p, Cell(MISSING, "no result for this property in this environment"))
    return {"properties": order, "envs": list(results_by_env), "cells": cells}


def compare(matrix: dict, baseline: str, candidate: str) -> dict:
    """The candidate against the baseline: regressions, drift, fixed deviations and every change."""
    base, cand = matrix["cells"][baseline], matrix["cells"][candidate]
    out = {"candidate": candidate, "regressions": [], "drift": [], "fixed": [], "new_deviations": [], "changes": []}
    for p in matrix["properties"]:
        b, c = base[p], cand[p]
        if b.outcome == PASS and c.outcome in (FAIL, MISSING):
            out["regressions"].append({"property": p, "message": c.message})
        if c.outcome == DRIFT:
            out["drift"].append({"property": p, "category": c.category, "message": c.message})
        if c.outcome == FIXED:
            out["fixed"].append({"property": p, "message": c.message})
        if c.outcome == DEVIATION and b.outcome != DEVIATION:
            out["new_deviations"].append({"property": p, "message": c.message})
        if b.outcome != c.outcome:
            out["changes"].append({"property": p, "baseline": b.outcome, "candidate": c.outcome, "message": c.message})
    out["regressed"] = bool(out["regressions"])
    return out


def verdict(matrix: dict, baseline: str, candidates: list[str], errors: dict[str, str] | None = None) -> dict:
    """Per-candidate comparisons and the exit code (0 ok, 1 a candidate regresses, 2 undecided)."""
    errors = errors or {}
    comparisons = [] if baseline in errors else [compare(matrix, baseline, c) for c in candidates if c not in errors]
    if baseline in errors:
        code = 2
    elif any(c["regressed"] for c in comparisons):
        code = 1
    elif any(c in errors for c in candidates):
        code = 2
    else:
        code = 0
    return {"baseline": baseline, "candidates": candidates, "comparisons": comparisons, "errors": errors, "exit_code": code}
