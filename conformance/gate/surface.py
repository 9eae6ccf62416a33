"""The gate's report of what a candidate adds beside its verdict: public surface and warnings.

Each side's JUnit XML carries the bridge's public surface (the testsuite
property ``conformance_surface``) and the warnings every test saw (the testcase
property ``conformance_warnings``; conformance/core/warnrecords.py). A candidate
that adds, removes or reorders names or parameters gets them listed as surface
no property covers yet (or the properties that do): information, never a
failure. A warning a candidate's properties see and the baseline's never do is
listed with the properties that saw it; with ``--fail-on-new-warnings`` each is
a change (exit 1).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from conformance.core import surface as inventory
from conformance.core import warnrecords
from conformance.gate.verdict import property_of

SURFACE_PROPERTY = "conformance_surface"
NEW_WARNING = "new warning"


def read_side(source) -> dict:
    """``{"surface": record or None, "warnings": {key: {record, "properties": [...]}}}`` of one side's JUnit XML.

    ``source``: a path, or the XML text. A side without the XML gives empty results.
    """
    try:
        root = ET.fromstring(source) if isinstance(source, str) and source.lstrip().startswith("<") else ET.parse(source).getroot()
    except (OSError, ET.ParseError, TypeError):
        return {"surface": None, "warnings": {}}
    found: dict = {"surface": None, "warnings": {}}
    for suite in root.iter("testsuite"):
        props = suite.find("properties")
        for prop in (props if props is not None else []):
            if prop.get("name") == SURFACE_PROPERTY:
                try:
                    found["surface"] = json.loads(prop.get("value") or "null")
                except ValueError:
                    found["surface"] = None
    for case in root.iter("testcase"):
        pairs = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        for rec in warnrecords.from_properties(pairs):
            entry = found["warnings"].setdefault(warnrecords.key(rec), {**rec, "properties": []})
            prop = property_of(case.get("name", ""))
            if prop not in entry["properties"]:
                entry["properties"].append(prop)
    return found


def new_warnings(baseline: dict, candidate: dict) -> list[dict]:
    """The candidate's warnings whose category and message the baseline never saw, with the properties that saw them."""
    return [{k: v for k, v in rec.items() if k != "count"} for key, rec in candidate["warnings"].items()
            if key not in baseline["warnings"]]


def annotate(result: dict, junit_by_env: dict, fail_on_new_warnings: bool = False) -> dict:
    """Adds ``surface_changes`` and ``new_warnings`` to each comparison of a verdict; with ``fail_on_new_warnings``
    each new warning is a change (listed under ``changes``; exit 1 where the verdict was 0)."""
    base = read_side(junit_by_env.get(result["baseline"]))
    for comp in result["comparisons"]:
        cand = read_side(junit_by_env.get(comp["candidate"]))
        comp["surface_changes"] = inventory.diff(base["surface"], cand["surface"])
        comp["new_warnings"] = new_warnings(base, cand)
        if fail_on_new_warnings:
            for w in comp["new_warnings"]:  # one change per property that saw it (a JUnit failure each)
                comp["changes"] += [{"property": p, "baseline": "no such warning", "candidate": "warns",
                                     "kind": NEW_WARNING, "message": warnrecords.describe(w), "reason": "",
                                     "evidence": ""} for p in w["properties"]]
            comp["regressed"] = bool(comp["changes"])
    result["fail_on_new_warnings"] = fail_on_new_warnings
    if result["exit_code"] == 0 and any(c["regressed"] for c in result["comparisons"]):
        result["exit_code"] = 1
    return result


def report_lines(result: dict, headers: dict[str, str] | None = None) -> list[str]:
    """Markdown: per candidate, the surface it adds or removes and the warnings it adds."""
    headers = headers or {}
    lines = []
    for comp in result.get("comparisons", []):
        name = headers.get(comp["candidate"], comp["candidate"])
        changes, warned = comp.get("surface_changes", []), comp.get("new_warnings", [])
        if not changes and not warned:
            continue
        lines += ["", f"Beside the verdict, **{name}** vs baseline:"]
        for entry in changes:
            lines.append(f"- surface {inventory.describe(entry)}: information, not a failure")
        for w in warned:
            state = ("a change (--fail-on-new-warnings)" if result.get("fail_on_new_warnings")
                     else "reported, not failed (--fail-on-new-warnings makes it a change)")
            lines.append(f"- new warning {warnrecords.describe(w).replace('|', chr(92) + '|')}, seen by "
                         + ", ".join(f"`{p}`" for p in w["properties"]) + f": {state}")
    return lines
