"""The gate's reports: the matrix and verdict as Markdown, JSON and JUnit XML."""

from __future__ import annotations

import dataclasses
import json
import os
from xml.sax.saxutils import escape

from conformance.numerics import drift
from conformance.gate.verdict import (
    DEVIATION,
    DRIFT,
    FAIL,
    FIXED,
    MISSING,
    PASS,
    SKIPPED,
    Cell,
    _first_line,
)

SYMBOL = {PASS: "pass", SKIPPED: "skip", DEVIATION: "deviation", DRIFT: "drift", FIXED: "FIXED", FAIL: "**FAIL**",
          MISSING: "**missing**"}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _drift_size(d: dict | None) -> str:
    if not d:
        return "size not reported"
    return drift.describe({**{"drifted": "?", "comparisons": "?", "max_ulps": 0.0, "max_rel": 0.0,
                              "max_fraction_of_bound": 0.0, "worst": ""}, **d})


def _change_line(ch: dict, word: str) -> str:
    text = f"  - {word} `{ch['property']}`: {ch['baseline']} -> {ch['candidate']} ({ch['kind']})"
    if ch.get("reason"):
        text += f"; recorded reason: {_md(ch['reason'])}; evidence: {ch['evidence']}"
    elif ch.get("message"):
        text += f": {_md(ch['message'])}"
    if ch.get("accepted_by"):
        text += f"; accepted by {_md(ch['accepted_by'])}"
    return text


def origin_lines(comp: dict) -> list[str]:
    """Attribution (cross environments) and bisection for one comparison, as Markdown list items."""
    lines = []
    for env in comp.get("cross_envs", []):
        err = env.get("error") or ""
        state = ("cannot be resolved: " if "No solution found" in err else "no results: ") + _md(err) if err else "ran"
        lines.append(f"  - cross environment {env['name']} ({_md(' '.join(env['requirements']))}, "
                     f"exclude-newer {env.get('exclude_newer') or 'none'}): {state}")
    for p, o in comp.get("origins", {}).items():
        lines.append(f"  - origin of `{p}`: **{o['origin']}**: {_md(o['explanation'])}")
    for p, b in comp.get("bisection", {}).items():
        steps = b.get("steps") or []
        lines.append(f"  - first release showing `{p}`: **{b.get('first') or 'not found'}**: {_md(b['explanation'])}")
        if b.get("origin"):
            lines.append(f"    - that step's origin: **{b['origin']}**: {_md(b['origin_explanation'])}")
            for env in b.get("cross_envs", []):
                if env.get("error"):
                    lines.append(f"    - cross environment {env['name']}: {_md(env['error'])}")
        for step in steps[1:]:  # a bitwise property that changed again on the way
            lines.append(f"    - then **{step['first']}** (jax {step.get('first_jax') or '?'}): {_md(step['from'])} -> "
                         f"{_md(step['to'])}" + (f"; origin **{step['origin']}**: {_md(step['origin_explanation'])}"
                                                 if step.get("origin") else ""))
    return lines


EXIT_MEANING = {0: "safe: no candidate behaves worse than the baseline", 1: "a candidate changes or regresses",
                2: "no verdict"}


def failing_anywhere(matrix: dict, headers: dict[str, str]) -> list[str]:
    """Every property that fails on some side, changed or not: a defect present on both sides is no change, yet real."""
    lines = []
    for p in matrix["properties"]:
        where = [headers.get(e, e) for e in matrix["envs"] if matrix["cells"][e][p].outcome == FAIL]
        if where:
            every = len(where) == len(matrix["envs"])
            lines.append(f"- fails `{p}` on {', '.join(where)}" + (" (every side: present before the upgrade too)"
                                                                     if every else ""))
    return lines


def summary_lines(matrix: dict, result: dict, headers: dict[str, str]) -> list[str]:
    """The verdict, each candidate's changes with their origins, every failing property, then the rest."""
    envs = matrix["envs"]
    code = result["exit_code"]
    lines = [f"Verdict: exit {code}, {EXIT_MEANING.get(code, '?')}.", ""]
    for e, err in result["errors"].items():
        lines.append(f"- **{headers.get(e, e)}: no verdict**: {_md(err)}")
    for c in result["comparisons"]:
        name = headers.get(c["candidate"], c["candidate"])
        state = (f"CHANGES ({len(c['changes'])} not accepted)" if c["regressed"] else "no change in behaviour"
                 + (f" ({len(c['accepted'])} accepted)" if c["accepted"] else ""))
        lines.append(f"- **{name}** vs baseline: {state}")
        lines += [_change_line(r, "CHANGE") for r in c["changes"]]
        lines += [_change_line(r, "accepted") for r in c["accepted"]]
        lines += origin_lines(c)
        for r in c["improvements"]:
            lines.append(f"  - improvement `{r['property']}`: {r['baseline']} -> {r['candidate']}"
                         + (f" (was: {_md(r['message'])})" if r.get("message") else ""))
        for d in c["drift"]:
            lines.append(f"  - drift `{d['property']}` (baseline {d['baseline']}): {_md(_drift_size(d['drift']))}")
        for d in c["fixed"]:
            lines.append(f"  - fixed `{d['property']}` (update known_deviations.txt): {_md(d['message'])}")
    lines += failing_anywhere(matrix, headers)
    for a in result.get("unmatched_accepts", []):
        lines.append(f"- warning: accept entry matched no change: {_md(a)}")
    skips = {}
    for e in envs:
        for p in matrix["properties"]:
            cell = matrix["cells"][e][p]
            if cell.outcome == SKIPPED:
                skips.setdefault((p, cell.message), []).append(headers.get(e, e))
    for (p, msg), where in skips.items():
        lines.append(f"- skipped `{p}` on {', '.join(where)}: {_md(msg)}")
    if result.get("golden_reference"):
        lines += ["", f"Golden properties compared against {_md(result['golden_reference'])}."]
    return lines


def matrix_lines(matrix: dict, result: dict, headers: dict[str, str]) -> list[str]:
    envs, baseline = matrix["envs"], result["baseline"]
    changed = {(c["candidate"], r["property"]) for c in result["comparisons"] for r in c["changes"]}
    accepted = {(c["candidate"], r["property"]) for c in result["comparisons"] for r in c["accepted"]}
    cols = [headers.get(e, e) + (" (baseline)" if e == baseline else "") for e in envs]
    lines = ["| property | " + " | ".join(cols) + " |", "|---|" + "---|" * len(envs)]
    for p in matrix["properties"]:
        row = []
        for e in envs:
            text = SYMBOL[matrix["cells"][e][p].outcome]
            if (e, p) in changed:
                text = f"**{text.strip('*')} (CHANGE)**"
            elif (e, p) in accepted:
                text += " (accepted)"
            row.append(text)
        lines.append(f"| `{p}` | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells: pass; drift (passes within the error model, size above); skip (with reason, above); "
                 "deviation (a recorded known deviation, xfailed); FIXED (a recorded deviation no longer deviates); "
                 "FAIL. CHANGE: worse than on the baseline, not accepted: the gate fails.")
    return lines


def to_markdown(matrix: dict, result: dict, headers: dict[str, str] | None = None) -> str:
    """The verdict and its changes first (with origins), every failing property, then the whole matrix."""
    headers = headers or {}
    lines = summary_lines(matrix, result, headers)
    lines += ["", "Every property on every side:", ""] + matrix_lines(matrix, result, headers)
    lines += ["", f"Exit code: {result['exit_code']}"]
    return "\n".join(lines) + "\n"


def to_json(matrix: dict, result: dict, envs_info: dict | None = None) -> dict:
    return {
        "baseline": result["baseline"],
        "candidates": result["candidates"],
        "exit_code": result["exit_code"],
        "environments": envs_info or {},
        "properties": matrix["properties"],
        "matrix": {e: {p: dataclasses.asdict(c) for p, c in cells.items()} for e, cells in matrix["cells"].items()},
        "comparisons": result["comparisons"],
        "errors": result["errors"],
        "accepts": result.get("accepts", []),
        "unmatched_accepts": result.get("unmatched_accepts", []),
        "golden_reference": result.get("golden_reference"),
        "wall_seconds": result.get("wall_seconds"),
    }


def to_junit(matrix: dict, result: dict) -> str:
    """One testcase per property x candidate: a failure for a change not accepted, skipped when the candidate skipped it."""
    cases = []
    failures = skipped = 0
    by_cand = {c["candidate"]: c for c in result["comparisons"]}

    def attr(text):
        return escape(text, {chr(34): "&quot;"})

    for cand in result["candidates"]:
        comp = by_cand.get(cand)
        changes = {r["property"]: r for r in (comp["changes"] if comp else [])}
        for p in matrix["properties"]:
            cell = matrix["cells"].get(cand, {}).get(p, Cell(MISSING))
            attrs = f'classname="gate.{attr(cand)}" name="{attr(p)}"'
            base = matrix["cells"].get(result["baseline"], {}).get(p, Cell(MISSING)).outcome
            if cand in result["errors"] or result["baseline"] in result["errors"]:
                why = result["errors"].get(cand) or result["errors"].get(result["baseline"])
                body = f'<error message="{attr(_first_line(why))}" />'
                failures += 1
            elif p in changes:
                ch = changes[p]
                msg = f"change: {ch['baseline']} on the baseline, {ch['candidate']} on {cand} ({ch['kind']}): "
                msg += ch.get("reason") or ch.get("message") or ""
                body = f'<failure message="{attr(msg)}" />'
                failures += 1
            elif cell.outcome == SKIPPED:
                body = f'<skipped message="{attr(cell.message)}" />'
                skipped += 1
            else:
                info = f"baseline {base}, candidate {cell.outcome}" + (f": {cell.message}" if cell.message else "")
                body = f"<system-out>{escape(info)}</system-out>"
            cases.append(f"  <testcase {attrs}>{body}</testcase>")
    head = (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="conformance-gate" tests="{len(cases)}" '
            f'failures="{failures}" errors="0" skipped="{skipped}">')
    return "\n".join([head, *cases, "</testsuite>"]) + "\n"


def source_note(info: dict) -> str:
    """`` [file:///src/flax, commit 1a2b3c4d5e6f + uncommitted changes 9f8e7d6c5b4a]``: what a side was built from."""
    parts = []
    for src in info.get("sources") or []:
        where = {"directory": "file://" + src["location"], "wheel": "wheel " + os.path.basename(src["location"])}.get(
            src["kind"], src["location"])
        parts.append(f"{where}, {src['detail']}")
    return f" [{'; '.join(parts)}]" if parts else ""


def distinct(headers: dict[str, str]) -> dict[str, str]:
    """Headers two sides share get their labels: no two columns of a report read alike."""
    counts: dict[str, int] = {}
    for head in headers.values():
        counts[head] = counts.get(head, 0) + 1
    return {label: head + (f" ({label})" if counts[head] > 1 else "") for label, head in headers.items()}


def headers_for(infos: dict[str, dict]) -> dict[str, str]:
    out = {}
    for label, info in infos.items():
        v = info.get("versions") or {}
        head = f"flax {v['flax']} (jax {v.get('jax', '?')})" if v.get("flax") else label
        head += source_note(info)
        if info.get("pytest_args"):
            head += " [" + " ".join(info["pytest_args"]) + "]"
        if info.get("unverified"):
            from conformance.core.versions import last_verified

            head += f" (newer than the last verified release: {last_verified()})"
        out[label] = head
    return distinct(out)


def write_reports(out_dir: str, matrix: dict, result: dict, infos: dict[str, dict]) -> str:
    headers = headers_for(infos)
    md = to_markdown(matrix, result, headers)
    envs_info = {k: {kk: vv for kk, vv in v.items() if kk != "results"} for k, v in infos.items()}
    with open(os.path.join(out_dir, "gate.md"), "w") as fh:
        fh.write(md)
    with open(os.path.join(out_dir, "gate.json"), "w") as fh:
        json.dump(to_json(matrix, result, envs_info), fh, indent=1)
    with open(os.path.join(out_dir, "gate-junit.xml"), "w") as fh:
        fh.write(to_junit(matrix, result))
    write_html(out_dir, matrix, result, infos, headers)
    return md


def write_html(out_dir: str, matrix: dict, result: dict, infos: dict[str, dict], headers: dict[str, str]) -> str:
    """gate.html: the verdict, the heat-map and each cell's evidence, one self-contained page."""
    from conformance.gate.html import to_html

    path = os.path.join(out_dir, "gate.html")
    with open(path, "w") as fh:
        fh.write(to_html(matrix, result, infos, headers, summary_lines(matrix, result, headers),
                         EXIT_MEANING.get(result["exit_code"], "?")))
    return path
