"""The gate's report as one self-contained HTML page: the verdict, the heat-map, then every cell's evidence.

Inline CSS and SVG only (no scripts, fonts or network): it opens from a CI
artifact as it is. Every heat-map cell links to an anchor within the page: the
failure with its full text (repro snippet included, read from the side's JUnit
XML), the known deviation's reason and evidence, the skip's reason, the drift's size.
"""

from __future__ import annotations

import html
import os
import re
import xml.etree.ElementTree as ET

from conformance.core import config
from conformance.gate import heatmap, surface
from conformance.gate.verdict import EVIDENCE, FAIL, PASS, property_of

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#111;max-width:1400px}
h1{font-size:22px;margin:0 0 12px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:14px;margin:16px 0 4px;font-family:monospace}
.verdict{padding:14px 18px;border-radius:6px;font-size:20px;font-weight:bold;border:3px solid #000}
.v0{background:#e3f4ec;border-color:#009e73}.v1{background:#d55e00;color:#fff;border-color:#000}
.v2{background:#dddddd;border-color:#555;border-style:dashed}
.summary div{margin:2px 0;font-size:14px}.summary .l1{margin-left:24px}.summary .l2{margin-left:48px}
table.sides{border-collapse:collapse;font-size:13px}table.sides td,table.sides th{border:1px solid #ccc;padding:3px 6px;text-align:left}
pre{background:#f6f6f6;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap}
.cell-detail{margin:6px 0 10px 12px;font-size:13px}.cell-detail:target{outline:3px solid #0072b2}
section:target{outline:3px solid #0072b2}
.state{display:inline-block;min-width:1.6em;text-align:center;font-weight:bold;border:1px solid #888;margin-right:6px}
.map{overflow-x:auto}
"""


def _inline(text: str) -> str:
    """The Markdown the summary lines use (``**bold**``, `` `code` ``) as HTML, everything else escaped."""
    out = html.escape(text.replace("\\|", "|"))
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


ADDRESS = re.compile(r" at 0x[0-9a-f]{6,}")


def failure_texts(junit_path: str | None) -> dict[str, str]:
    """``{property: full text}`` of each property's first failing testcase in a JUnit XML (the repro snippet included)."""
    if not junit_path or not os.path.exists(junit_path):
        return {}
    try:
        root = ET.parse(junit_path).getroot()
    except ET.ParseError:
        return {}
    out: dict[str, str] = {}
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                prop = property_of(case.get("name", ""))
                text = (child.text or child.get("message") or "").strip()
                text = ADDRESS.sub(" at 0x…", text)  # object addresses: noise that differs between any two runs
                out.setdefault(prop, text[: config.HTML_FAILURE_CHARS])
    return out


def anchor(kind: str, *parts: int) -> str:
    return kind + "-" + "-".join(str(p) for p in parts)


def _state_badge(state: str) -> str:
    st = heatmap.STYLES[state]
    fill = "#ffffff" if state == "skipped" else st.fill
    return (f'<span class="state" style="background:{fill};color:{st.ink}">{html.escape(st.glyph)}</span>'
            f"{html.escape(st.name)}")


def _cell_detail(state: str, cell, base_cell, full_text: str, accepted: dict | None) -> str:
    parts = [_state_badge(state)]
    msg = cell.message or ""
    if state in (heatmap.CHANGE, FAIL) or (cell.outcome == FAIL):
        parts.append(f" (baseline: {html.escape(base_cell.outcome)})" if base_cell is not None else "")
        if full_text:
            parts.append(f"<pre>{html.escape(full_text)}</pre>")
        elif msg:
            parts.append(f"<pre>{html.escape(msg)}</pre>")
    elif cell.outcome == "deviation":
        parts.append(f": {html.escape(msg)}<br>evidence: {html.escape(EVIDENCE)}")
        if state == heatmap.CHANGE and full_text:
            parts.append(f"<pre>{html.escape(full_text)}</pre>")
    elif cell.outcome == "drift":
        size = cell.drift or {}
        parts.append(": within the error model; " + html.escape(", ".join(f"{k} {v}" for k, v in size.items())))
    elif msg:
        parts.append(": " + html.escape(msg))
    if state == heatmap.CHANGE and cell.outcome == "deviation" and not full_text:
        parts.append(f"<br>evidence: {html.escape(EVIDENCE)}")
    if accepted:
        parts.append(f"<br>accepted by {html.escape(accepted.get('accepted_by', ''))}")
    return "".join(parts)


def to_html(matrix: dict, result: dict, infos: dict[str, dict], headers: dict[str, str], summary: list[str],
            meaning: str) -> str:
    """The page: verdict (``meaning``: what its exit code says), heat-map, summary (the Markdown report's lines), sides, evidence."""
    code = result["exit_code"]
    props, envs = matrix["properties"], matrix["envs"]
    states = heatmap.states_of(matrix, result)
    accepted = {(c["candidate"], r["property"]): r for c in result.get("comparisons") or [] for r in c["accepted"]}
    baseline = result["baseline"]
    col_of = {e: e + (" (baseline)" if e == baseline else "") for e in envs}
    p_index = {p: i for i, p in enumerate(props)}
    e_index = {e: j for j, e in enumerate(envs)}

    def link(col_label: str, prop: str) -> str:
        env = next(e for e, c in col_of.items() if c == col_label)
        if states[env][prop] == PASS:
            return "#" + anchor("p", p_index[prop])
        return "#" + anchor("c", p_index[prop], e_index[env])

    if props and envs:
        picture = heatmap.svg(props, [col_of[e] for e in envs], {col_of[e]: states[e] for e in envs}, link,
                              title="properties x sides", column_notes={col_of[e]: headers.get(e, e) for e in envs})
    else:  # no side gave results (a build failed): the verdict and its reasons are the whole report
        picture = "<p>No side reported any property: nothing to draw (the reasons are in the summary).</p>"
    lines = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>conformance gate: exit {code}</title>",
             f"<style>{CSS}</style></head><body>",
             "<h1>flax NNX\u2192Linen bridge conformance gate</h1>",
             f'<div class="verdict v{code}" id="verdict">Verdict: exit {code}, {html.escape(meaning)}</div>',
             '<h2 id="heatmap">Every property on every side</h2>'
             '<p>Each cell links to its evidence below; hover for the property and side.</p>',
             f'<div class="map">{picture}</div>', '<h2>Summary</h2><div class="summary">']
    for line in summary[2:]:  # the first line is the verdict, above
        depth = (len(line) - len(line.lstrip(" "))) // 2
        text = line.strip()
        if text:
            lines.append(f'<div class="l{min(depth, 2)}">{_inline(text[2:] if text.startswith("- ") else text)}</div>')
    lines.append("</div>")
    beside = surface.report_lines(result, headers)
    if beside:  # what a candidate adds to the surface and the warnings it adds: information unless the flag says
        lines.append('<h2 id="beside">Surface and warnings</h2><div class="summary">')
        for line in beside:
            text = line.strip()
            if text:
                lines.append(f'<div class="l{1 if text.startswith("- ") else 0}">'
                             f'{_inline(text[2:] if text.startswith("- ") else text)}</div>')
        lines.append("</div>")
    lines.append('<h2>Sides</h2><table class="sides"><tr><th>side</th><th>role</th><th>what it is</th>'
                 "<th>requirements</th><th>resolved as of</th></tr>")
    for e in envs:
        info = infos.get(e, {})
        lines.append(f"<tr><td><code>{html.escape(e)}</code></td><td>{html.escape(info.get('role', ''))}</td>"
                     f"<td>{html.escape(headers.get(e, e))}</td>"
                     f"<td><code>{html.escape(' '.join(info.get('requirements') or []))}</code></td>"
                     f"<td>{html.escape(info.get('exclude_newer') or 'latest')}</td></tr>")
    lines.append("</table>")
    lines.append("<h2>Evidence</h2>")
    texts = {e: failure_texts(infos.get(e, {}).get("junit")) for e in envs}
    for p in props:
        i = p_index[p]
        lines.append(f'<section id="{anchor("p", i)}"><h3>{html.escape(p)}</h3>')
        if all(states[e][p] == PASS for e in envs):
            lines.append('<div class="cell-detail">passes on every side</div>')
        for e in envs:
            state = states[e][p]
            if state == PASS:
                continue
            cell, base_cell = matrix["cells"][e][p], matrix["cells"][baseline].get(p)
            body = _cell_detail(state, cell, base_cell if e != baseline else None, texts[e].get(p, ""),
                                accepted.get((e, p)))
            lines.append(f'<div class="cell-detail" id="{anchor("c", i, e_index[e])}"><strong>'
                         f"{html.escape(col_of[e])}</strong>: {body}</div>")
        lines.append("</section>")
    lines.append(f'<p><a href="#verdict">back to the verdict</a></p></body></html>')
    return "\n".join(lines) + "\n"
