"""A property x side heat-map as SVG: the gate's HTML report and the committed version matrix draw the same picture.

Each state has an Okabe-Ito colour (told apart by the common colour-vision
deficiencies), a grey level of its own where that palette allows, and a glyph in
the cell, so that the map still reads in greyscale and in print. Pure text in,
SVG text out: no fonts, scripts or network.
"""

from __future__ import annotations

import dataclasses
from xml.sax.saxutils import escape

from conformance.gate.verdict import DEVIATION, DRIFT, FAIL, FIXED, MISSING, PASS, SKIPPED

CHANGE = "change"  # a candidate's cell worse than the baseline's, not accepted: what fails the gate


@dataclasses.dataclass(frozen=True)
class Style:
    fill: str
    ink: str  # the glyph's colour, contrasting with the fill
    glyph: str
    name: str  # the legend's word


# Lightest to darkest, so that the grey levels keep the order of concern; the glyph settles any tie.
STYLES = {
    PASS: Style("#e3f4ec", "#00664a", "\u2713", "pass"),  # a tint of bluish green
    SKIPPED: Style("#ffffff", "#555555", "\u2013", "skip"),  # white, hatched
    DEVIATION: Style("#f0e442", "#000000", "D", "known deviation"),  # yellow
    DRIFT: Style("#56b4e9", "#000000", "\u2248", "drift"),  # sky blue
    FIXED: Style("#0072b2", "#ffffff", "+", "FIXED"),  # blue
    CHANGE: Style("#d55e00", "#ffffff", "!", "CHANGE"),  # vermillion
    FAIL: Style("#000000", "#ffffff", "\u2717", "FAIL"),  # black
    MISSING: Style("#999999", "#000000", "?", "missing"),
}
ORDER = (PASS, DRIFT, SKIPPED, DEVIATION, FIXED, CHANGE, FAIL, MISSING)

CELL_W, CELL_H = 24, 20
CHAR_W = 7.4  # the label font's mean advance at 12 px (monospace), for sizing without measuring text
FONT = "font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px"


def _style() -> str:
    """The map's CSS, once per picture (scoped to it): one class per state instead of attributes per cell."""
    rules = [f".heatmap text{{{FONT}}}", ".heatmap .g{font-weight:bold;text-anchor:middle}",
             ".heatmap .r{text-anchor:end}", ".heatmap .t{font-weight:bold}"]
    for state, st in STYLES.items():
        fill = "url(#hatch)" if state == SKIPPED else st.fill
        rules.append(f".heatmap .cell-{state} rect{{fill:{fill}}}.heatmap .cell-{state} text{{fill:{st.ink}}}")
    return "<style>" + "".join(rules) + "</style>"
HEAD_ANGLE = -55  # column labels slanted: 21 release names fit over 21 narrow columns


def states_of(matrix: dict, result: dict) -> dict[str, dict[str, str]]:
    """``{side: {property: state}}``: the cell's own outcome, or CHANGE where the verdict counts a change."""
    changed = {(c["candidate"], r["property"]) for c in result.get("comparisons") or [] for r in c["changes"]}
    out: dict[str, dict[str, str]] = {}
    for env in matrix["envs"]:
        cells = matrix["cells"][env]
        out[env] = {p: CHANGE if (env, p) in changed else _outcome(cells.get(p)) for p in matrix["properties"]}
    return out


def _outcome(cell) -> str:
    if cell is None:
        return MISSING
    return cell["outcome"] if isinstance(cell, dict) else cell.outcome


def svg(rows: list[str], columns: list[str], states: dict[str, dict[str, str]], links=None,
        title: str = "", column_notes: dict[str, str] | None = None, tooltips: bool = True) -> str:
    """The heat-map: one row per property, one column per side; ``links(column, row)`` -> a URL or None per cell.

    ``states[column][row]`` is one of :data:`ORDER`; ``column_notes`` a tooltip per column; ``tooltips``
    a tooltip per cell (a picture shown as an image has none to show: they only cost bytes).
    """
    if not rows or not columns:
        raise ValueError(f"a heat-map needs rows and columns; got {len(rows)} rows, {len(columns)} columns")
    for col in columns:
        for row in rows:
            state = states.get(col, {}).get(row, MISSING)
            if state not in STYLES:
                raise ValueError(f"state {state!r} of {row!r} on {col!r} is not one of {', '.join(ORDER)}")
    left = int(max(len(r) for r in rows) * CHAR_W) + 12
    import math

    slant = math.sin(math.radians(-HEAD_ANGLE))
    top = int(max(len(c) for c in columns) * CHAR_W * slant) + 24 + (18 if title else 0)
    legend_h = 28
    width = left + CELL_W * len(columns) + int(max(len(c) for c in columns) * CHAR_W * math.cos(math.radians(HEAD_ANGLE)))
    width = max(width, 640)
    height = top + CELL_H * len(rows) + legend_h + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "heat-map")}" '
           f'class="heatmap">',
           _style(),
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
           '<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbbbbb" '
           'stroke-width="2"/></pattern></defs>',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    if title:
        out.append(f'<text x="4" y="16" class="t">{escape(title)}</text>')
    for j, col in enumerate(columns):
        x = left + j * CELL_W + CELL_W / 2
        tip = f"<title>{escape((column_notes or {}).get(col, col))}</title>"
        out.append(f'<text transform="translate({x + 4:.1f},{top - 6}) rotate({HEAD_ANGLE})">'
                   f'{tip}{escape(col)}</text>')
    for i, row in enumerate(rows):
        y = top + i * CELL_H
        out.append(f'<text x="{left - 6}" y="{y + CELL_H - 6}" class="r">{escape(row)}</text>')
        for j, col in enumerate(columns):
            state = states.get(col, {}).get(row, MISSING)
            out.append(_cell(left + j * CELL_W, y, state, f"{row} on {col}: {STYLES[state].name}" if tooltips else "",
                             links(col, row) if links else None))
    out += _legend(4, top + CELL_H * len(rows) + 10)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _cell(x: float, y: float, state: str, tip: str, href: str | None) -> str:
    st = STYLES[state]
    body = (f'<rect x="{x}" y="{y}" width="{CELL_W - 1}" height="{CELL_H - 1}"/>'
            f'<text x="{x + (CELL_W - 1) / 2:g}" y="{y + CELL_H - 6}" class="g">{escape(st.glyph)}</text>')
    tip = f"<title>{escape(tip)}</title>" if tip else ""
    inner = f'<g class="cell cell-{state}">{tip}{body}</g>'
    return f'<a href="{escape(href)}">{inner}</a>' if href else inner


def _legend(x: float, y: float) -> list[str]:
    out = []
    for state in ORDER:
        st = STYLES[state]
        out.append(_cell(x, y, state, st.name, None))
        out.append(f'<text x="{x + CELL_W + 3}" y="{y + CELL_H - 6}">{escape(st.name)}</text>')
        x += CELL_W + 10 + len(st.name) * CHAR_W
    return out
