"""The gate's reports: the matrix and verdict as Markdown, JSON and JUnit XML."""

from __future__ import annotations

import dataclasses
import json
import os
from xml.sax.saxutils import escape

from conformance.verdict import DEVIATION, DRIFT, FAIL, FIXED, MISSING, PASS, SKIPPED, Cell, _first_line

SYMBOL = {PASS: "pass", SKIPPED: "skip", DEVIATION: "deviation", DRIFT: "drift", FIXED: "FIXED", FAIL: "**FAIL**",
          MISSING: "**missing**"}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(matrix: dict, result: dict, headers: dict[str, str] | None = None) -> str:
    headers = headers or {}
    envs, baseline = matrix["envs"], result["baseline"]
    regress = {(c["candidate"], r["property"]) for c in result["comparisons"] for r in c["regressions"]}
    cols = [headers.get(e, e) + (" (baseline)" if e == baseline else "") for e in envs]
    lines = ["| property | " + " | ".join(cols) + " |", "|---|" + "---|" * len(envs)]
    for p in matrix["properties"]:
        row = []
        for e in envs:
            cell = matrix["cells"][e][p]
            text = SYMBOL[cell.outcome]
            if (e, p) in regress:
                text = "**FAIL (regression)**"
            row.append(text)
        lines.append(f"| `{p}` | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells: pass; skip (with reason, below); deviation (a recorded known deviation, xfailed); "
                 "drift (golden record differs); FIXED (a recorded deviation no longer deviates); FAIL.")
    lines.append("")
    for e, err in result["errors"].items():
        lines.append(f"- **{headers.get(e, e)}: no verdict**: {_md(err)}")
    for c in result["comparisons"]:
        name = headers.get(c["candidate"], c["candidate"])
        state = "REGRESSES" if c["regressed"] else "no regression"
        lines.append(f"- **{name}** vs baseline: {state}")
        for r in c["regressions"]:
            lines.append(f"  - regression `{r['property']}`: {_md(r['message'])}")
        for d in c["drift"]:
            lines.append(f"  - {d['category']} `{d['property']}`: {_md(d['message'])}")
        for d in c["new_deviations"]:
            lines.append(f"  - deviation `{d['property']}`: {_md(d['message'])}")
        for d in c["fixed"]:
            lines.append(f"  - fixed `{d['property']}` (update known_deviations.txt): {_md(d['message'])}")
    skips = {}
    for e in envs:
        for p in matrix["properties"]:
            cell = matrix["cells"][e][p]
            if cell.outcome == SKIPPED:
                skips.setdefault((p, cell.message), []).append(headers.get(e, e))
    for (p, msg), where in skips.items():
        lines.append(f"- skipped `{p}` on {', '.join(where)}: {_md(msg)}")
    lines.append("")
    lines.append(f"Exit code: {result['exit_code']}")
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
        "wall_seconds": result.get("wall_seconds"),
    }


def to_junit(matrix: dict, result: dict) -> str:
    """One testcase per property x candidate: a failure for a regression, skipped when the candidate skipped it."""
    cases = []
    failures = skipped = 0
    by_cand = {c["candidate"]: c for c in result["comparisons"]}
    for cand in result["candidates"]:
        comp = by_cand.get(cand)
        regressions = {r["property"]: r["message"] for r in (comp["regressions"] if comp else [])}
        for p in matrix["properties"]:
            cell = matrix["cells"].get(cand, {}).get(p, Cell(MISSING))
            attrs = f'classname="gate.{escape(cand, {chr(34): "&quot;"})}" name="{escape(p, {chr(34): "&quot;"})}"'
            base = matrix["cells"].get(result["baseline"], {}).get(p, Cell(MISSING)).outcome
            if cand in result["errors"] or result["baseline"] in result["errors"]:
                why = result["errors"].get(cand) or result["errors"].get(result["baseline"])
                body = f'<error message="{escape(_first_line(why), {chr(34): "&quot;"})}" />'
                failures += 1
            elif p in regressions:
                msg = f"regression: passes on the baseline, {cell.outcome} on {cand}: {regressions[p]}"
                body = f'<failure message="{escape(msg, {chr(34): "&quot;"})}" />'
                failures += 1
            elif cell.outcome == SKIPPED:
                body = f'<skipped message="{escape(cell.message, {chr(34): "&quot;"})}" />'
                skipped += 1
            else:
                info = f"baseline {base}, candidate {cell.outcome}" + (f": {cell.message}" if cell.message else "")
                body = f"<system-out>{escape(info)}</system-out>"
            cases.append(f"  <testcase {attrs}>{body}</testcase>")
    head = (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="conformance-gate" tests="{len(cases)}" '
            f'failures="{failures}" errors="0" skipped="{skipped}">')
    return "\n".join([head, *cases, "</testsuite>"]) + "\n"


def headers_for(infos: dict[str, dict]) -> dict[str, str]:
    out = {}
    for label, info in infos.items():
        v = info.get("versions") or {}
        head = f"flax {v['flax']} (jax {v.get('jax', '?')})" if v.get("flax") else label
        if info.get("pytest_args"):
            head += " [" + " ".join(info["pytest_args"]) + "]"
        out[label] = head
    return out


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
    return md
