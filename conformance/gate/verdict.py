"""The gate's verdict: JUnit XML -> outcomes -> a property x environment matrix -> exit code.

Pure functions only (``parse_junit`` -> ``build_matrix`` -> ``verdict``), so the
project's tests run them on synthetic XML; nothing here builds or runs anything.

The rules, candidate against baseline, per property:

* a *change* (fails the gate, exit 1) is an outcome that gets worse: pass ->
  known deviation, pass -> fail (a numerical property or golden record beyond
  the error model included), known deviation -> fail, or a property that
  disappears. A recorded known deviation excuses a test on the release it is
  recorded for; it never excuses the move from a release that behaves to one
  that does not.
* a change is *accepted* when an accept entry (``--accept FILE``) names the
  property and the candidate's versions satisfy its specifiers: reported, not
  failed.
* an *improvement* is an outcome that gets better (a deviation or a failure
  gone); *drift* is a pass within the error model where the baseline was
  identical; *fixed* is a recorded deviation that no longer deviates. Reported,
  never failed; skips likewise.
* a *premise* skip (``config.PREMISE_SKIP``) names a fact about the layer taken
  from its class run natively (it samples in evaluation, its params do not
  depend on the key...). The fact starting or stopping to hold between the
  sides is a change: the layer behaves otherwise, whatever the bridge does.
"""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET

from conformance.core.config import PREMISE_SKIP
from conformance.numerics import drift

# --- outcomes ---------------------------------------------------------------------------

PASS, SKIPPED, DEVIATION, DRIFT, FIXED, FAIL, MISSING = "pass", "skipped", "deviation", "drift", "fixed", "fail", "missing"
# Collapsing a property's device instances: the worst outcome wins.
SEVERITY = {PASS: 0, DRIFT: 1, SKIPPED: 2, DEVIATION: 3, FIXED: 4, MISSING: 5, FAIL: 6}
# What a pipeline sees, for comparing two environments: drift and fixed pass; a skip says nothing.
BEHAVIOUR = {PASS: "pass", DRIFT: "pass", FIXED: "pass", DEVIATION: "deviation", FAIL: "fail", MISSING: "fail",
             SKIPPED: None}
RANK = {"pass": 0, "deviation": 1, "fail": 2}  # worse is higher
GOLDEN = {"test_golden_numerics": "numerics change", "test_golden_structure": "structure change",
          "test_zoo_golden_dropout_masks": "dropout routing change", "test_zoo_golden_batch_stats": "numerics change",
          "test_zoo_golden_declared_modules": "numerics change"}
DEVIATION_PREFIX = "known deviation"
DEVICE_ID = re.compile(r"^(cpu|gpu|tpu|cuda|rocm|METAL|mps):\d+$", re.I)
EVIDENCE = "docs/known-deviations.md"  # where each recorded deviation's facts live


@dataclasses.dataclass
class Result:
    """One testcase of a JUnit XML, classified."""

    property: str
    test: str  # the full test id, device included
    outcome: str
    message: str = ""
    category: str = ""  # for a golden-record failure: "numerics change" or "structure change"
    drift: dict | None = None  # for drift: the conformance_drift property (comparisons, drifted, max_ulps, ...)
    fingerprint: str = ""  # the conformance_fingerprint property: which value a bitwise property saw


@dataclasses.dataclass
class Cell:
    """One property in one environment, device instances collapsed."""

    outcome: str
    message: str = ""
    category: str = ""
    tests: int = 0
    drift: dict | None = None
    fingerprint: str = ""


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


def _drift_of(case: ET.Element) -> dict | None:
    for prop in case.iter("property"):
        if prop.get("name") == drift.PROPERTY:
            try:
                return json.loads(prop.get("value") or "{}")
            except ValueError:
                return {"worst": prop.get("value") or ""}
    return None


def _fingerprint_of(case: ET.Element) -> str:
    for prop in case.iter("property"):
        if prop.get("name") == drift.FINGERPRINT:
            return prop.get("value") or ""
    return ""


def classify(case: ET.Element) -> Result:
    """A JUnit ``<testcase>`` as a :class:`Result` (its fingerprint, if it has one, attached)."""
    result = _classify(case)
    result.fingerprint = _fingerprint_of(case)
    return result


def _classify(case: ET.Element) -> Result:
    name = case.get("name", "")
    prop = property_of(name)
    for child in case:
        tag = child.tag
        msg = child.get("message") or (child.text or "")
        if tag in ("failure", "error"):
            if "XPASS(strict)" in msg:
                return Result(prop, name, FIXED, _first_line(msg.replace("[XPASS(strict)]", "").strip()))
            # A golden-record assertion is a change beyond the error model; its category is kept for the report.
            category = GOLDEN.get(prop, "") if tag == "failure" else ""
            return Result(prop, name, FAIL, _first_line(msg), category)
    for child in case:
        if child.tag == "skipped":
            msg = child.get("message") or (child.text or "")
            if child.get("type") == "pytest.xfail":
                if msg.startswith(DEVIATION_PREFIX):
                    return Result(prop, name, DEVIATION, _first_line(msg))
                return Result(prop, name, SKIPPED, _first_line("xfail: " + msg))
            return Result(prop, name, SKIPPED, _first_line(msg))
    size = _drift_of(case)
    if size is not None and size.get("drifted", 1):
        return Result(prop, name, DRIFT, _first_line(str(size.get("worst", ""))), "drift", size)
    return Result(prop, name, PASS)


def parse_junit(source) -> list[Result]:
    """Every testcase of a JUnit XML (a path, a file object or the XML text), classified."""
    if isinstance(source, str) and source.lstrip().startswith("<"):
        root = ET.fromstring(source)
    else:
        root = ET.parse(source).getroot()
    return [classify(c) for c in root.iter("testcase")]


def merge_drift(a: dict | None, b: dict | None) -> dict | None:
    """Two drift records of one property as one: counts add, maxima take the larger, ``worst`` follows the bound."""
    if not a or not b:
        return dict(a or b) if (a or b) else None
    out = {k: a.get(k, 0) + b.get(k, 0) for k in ("comparisons", "drifted")}
    for k in ("max_ulps", "max_rel", "max_fraction_of_bound"):
        out[k] = max(a.get(k, 0.0), b.get(k, 0.0))
    out["worst"] = (a if a.get("max_fraction_of_bound", 0) >= b.get("max_fraction_of_bound", 0) else b).get("worst", "")
    return out


def collapse(results: list[Result]) -> dict[str, Cell]:
    """One cell per property: the worst outcome of its instances, with the first message of that outcome."""
    cells: dict[str, Cell] = {}
    for r in results:
        cell = cells.get(r.property)
        if cell is None:
            cells[r.property] = Cell(r.outcome, r.message, r.category, 1, r.drift, r.fingerprint)
            continue
        cell.tests += 1
        if r.fingerprint and r.fingerprint not in cell.fingerprint.split("+"):  # devices that saw other values
            cell.fingerprint = "+".join(filter(None, (cell.fingerprint, r.fingerprint)))
        cell.drift = merge_drift(cell.drift, r.drift)
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


def deviation_reason(message: str) -> str:
    """``known deviation (flax>=0.12): why`` -> ``why``."""
    m = re.match(rf"^{DEVIATION_PREFIX} \([^)]*\): (.*)$", message)
    return m.group(1) if m else message


def change_kind(b: Cell, c: Cell) -> str:
    if c.outcome == DEVIATION:
        return "now a known deviation"
    if c.outcome == MISSING:
        return "no longer reported"
    if c.category and c.category != "drift":
        return c.category  # numerics change / structure change (golden record)
    return "now fails" if b.outcome != DEVIATION else "deviation now fails"


def compare(matrix: dict, baseline: str, candidate: str, versions: dict | None = None,
            accepts: list | None = None) -> dict:
    """The candidate against the baseline, property by property (the rules are in the module's docstring).

    ``versions``: the candidate's installed versions, which accept entries are
    matched against; ``accepts``: :class:`Accept` entries.
    """
    base, cand = matrix["cells"][baseline], matrix["cells"][candidate]
    out = {"candidate": candidate, "changes": [], "accepted": [], "improvements": [], "drift": [], "fixed": [],
           "skipped": [], "differences": []}
    for p in matrix["properties"]:
        b, c = base[p], cand[p]
        if b.outcome != c.outcome:
            out["differences"].append({"property": p, "baseline": b.outcome, "candidate": c.outcome, "message": c.message})
        if c.outcome == DRIFT:
            out["drift"].append({"property": p, "baseline": b.outcome, "drift": c.drift, "message": c.message})
        if c.outcome == FIXED:
            out["fixed"].append({"property": p, "message": c.message})
        bb, cb = BEHAVIOUR[b.outcome], BEHAVIOUR[c.outcome]
        fact_b, fact_c = premise_of(b), premise_of(c)
        if (fact_b or fact_c) and fact_b != fact_c and "fail" not in (bb, cb) and "deviation" not in (bb, cb):
            _file(out, {"property": p, "baseline": b.outcome, "candidate": c.outcome, "kind": PREMISE_CHANGED,
                        "message": premise_message(fact_b, fact_c), "reason": "", "evidence": ""}, accepts, versions)
            continue
        if bb is None or cb is None:
            if b.outcome != c.outcome:
                out["skipped"].append({"property": p, "baseline": b.outcome, "candidate": c.outcome,
                                       "message": c.message or b.message})
            continue
        if RANK[cb] < RANK[bb]:
            out["improvements"].append({"property": p, "baseline": b.outcome, "candidate": c.outcome,
                                        "message": b.message})
        elif RANK[cb] > RANK[bb]:
            _file(out, {"property": p, "baseline": b.outcome, "candidate": c.outcome, "kind": change_kind(b, c),
                        "message": c.message, "reason": deviation_reason(c.message) if c.outcome == DEVIATION else "",
                        "evidence": EVIDENCE if c.outcome == DEVIATION else ""}, accepts, versions)
    out["regressed"] = bool(out["changes"])
    return out


def _file(out: dict, change: dict, accepts, versions) -> None:
    """A change goes under ``accepted`` when an accept entry matches it, else under ``changes``."""
    rule = next((a for a in accepts or [] if a.matches(change["property"], versions or {})), None)
    if rule is not None:
        change["accepted_by"] = rule.describe()
        out["accepted"].append(change)
    else:
        out["changes"].append(change)


PREMISE_CHANGED = "the layer's own fact changed"


def premise_of(cell) -> str:
    """The fact a premise skip names (``config.PREMISE_SKIP``), without the mark; "" for any other outcome."""
    if cell.outcome != SKIPPED or PREMISE_SKIP not in (cell.message or ""):
        return ""
    return cell.message.split(PREMISE_SKIP, 1)[1]


def premise_message(baseline_fact: str, candidate_fact: str) -> str:
    """What changed, in the layer's terms: a premise that starts or stops holding on the candidate."""
    if not baseline_fact:
        return f"the candidate's layer now skips this property because {candidate_fact}; the baseline's ran it"
    if not candidate_fact:
        return f"the baseline's layer skipped this property because {baseline_fact}; the candidate's no longer does"
    return f"the baseline skipped because {baseline_fact}; the candidate because {candidate_fact}"


def verdict(matrix: dict, baseline: str, candidates: list[str], errors: dict[str, str] | None = None,
            versions: dict[str, dict] | None = None, accepts: list | None = None) -> dict:
    """Per-candidate comparisons and the exit code (0 safe, 1 a candidate changes or regresses, 2 undecided).

    ``versions``: installed versions per environment (accept entries match the
    candidate's); ``accepts``: :class:`Accept` entries. Entries that accept
    nothing are listed under ``unmatched_accepts``.
    """
    errors, versions = errors or {}, versions or {}
    comparisons = [] if baseline in errors else [
        compare(matrix, baseline, c, versions.get(c, {}), accepts) for c in candidates if c not in errors]
    if baseline in errors:
        code = 2
    elif any(c["regressed"] for c in comparisons):
        code = 1
    elif any(c in errors for c in candidates):
        code = 2
    else:
        code = 0
    used = {a["accepted_by"] for c in comparisons for a in c["accepted"]}
    unmatched = [a.describe() for a in accepts or [] if a.describe() not in used]
    return {"baseline": baseline, "candidates": candidates, "comparisons": comparisons, "errors": errors,
            "exit_code": code, "accepts": [a.describe() for a in accepts or []], "unmatched_accepts": unmatched}


# --- accepted changes ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Accept:
    """A change a team has accepted: ``property | requirements | reason`` (known_deviations.txt's format)."""

    property: str
    requirements: tuple[str, ...]
    reason: str
    source: str  # file:line

    def matches(self, prop: str, versions: dict[str, str]) -> bool:
        from conformance.core.deviations import Deviation

        named = prop == self.property or prop.split("[", 1)[0] == self.property
        return named and Deviation(self.property, self.requirements, self.reason, 0).applies(versions)

    def describe(self) -> str:
        return f"{self.source}: {self.property} | {' '.join(self.requirements)} | {self.reason}"


def load_accepts(path: str) -> list[Accept]:
    """An accept file: one ``property | release range | reason`` a line, ``#`` comments.

    The range is pip specifiers on the candidate's installed versions, space
    separated, all of which must hold (``flax>=0.12,<0.13``, ``flax>=0.12 jax<0.8``).
    """
    from conformance.core import deviations

    return [Accept(d.test, d.requirements, d.reason, f"{path}:{d.line}") for d in deviations.load(path)]
