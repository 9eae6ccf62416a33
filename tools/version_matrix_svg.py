"""The committed version matrix as pictures: one SVG heat-map per section of docs/version-matrix.json.

    python tools/version_matrix_svg.py [docs/version-matrix.json] [--out-dir docs]

Writes ``version-matrix-<section>.svg`` beside the Markdown table, drawn by the
gate's own heat-map (conformance/gate/heatmap.py): releases in version order,
the newest (the gates' baseline) last; a cell is CHANGE where the release
behaves worse than that baseline (the gate's rules, conformance/gate/verdict.py),
so the picture shows where the matrix turns, and from which release.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from conformance.gate import heatmap
from conformance.gate.verdict import DEVIATION, FAIL, PASS, SKIPPED, Cell, compare

# The per-release tables (pipelines, real-layer tier) spell outcomes as pytest does.
WORDS = {"pass": PASS, "xfail": DEVIATION, "FAIL": FAIL, "skip": SKIPPED}
SECTIONS = {"zoo": "the zoo", "contract": "the contract (nnx.Linear)", "pipelines": "pipelines",
            "real_layer_tier": "the real-layer tier", "to_nnx": "the other direction (ToNNX, lazy_init)"}


def vkey(label: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", label))


def section_matrix(section: dict) -> tuple[dict, str]:
    """A section as the gate's matrix (``{"properties", "envs", "cells"}``) and its baseline, releases in version order."""
    if "matrix" in section:  # gate.json's form
        cells = {e: {p: Cell(**{k: v for k, v in c.items() if k in Cell.__dataclass_fields__}) for p, c in row.items()}
                 for e, row in section["matrix"].items()}
        envs = sorted(cells, key=vkey)
        baseline = section.get("baseline") or envs[-1]
        props = list(section["properties"])
    else:  # {"releases": [...], "outcomes": {property: {release: word}}}
        envs = sorted(section["releases"], key=vkey)
        props = list(section["outcomes"])
        cells = {e: {} for e in envs}
        for p, by_release in section["outcomes"].items():
            for e in envs:
                word = by_release.get(e)
                cells[e][p] = Cell(WORDS[word]) if word in WORDS else Cell("missing", "not run on this release")
        baseline = envs[-1]
    for e in envs:
        for p in props:
            cells[e].setdefault(p, Cell("missing", "not run on this release"))
    return {"properties": props, "envs": envs, "cells": cells}, baseline


def section_svg(name: str, section: dict) -> str:
    matrix, baseline = section_matrix(section)
    result = {"comparisons": [compare(matrix, baseline, e) for e in matrix["envs"] if e != baseline]}
    states = heatmap.states_of(matrix, result)
    cols = {e: re.sub(r"^flax-", "", e) + (" (baseline)" if e == baseline else "") for e in matrix["envs"]}
    title = f"flax releases x properties: {SECTIONS.get(name, name)}; CHANGE = worse than {baseline}"
    return heatmap.svg(matrix["properties"], [cols[e] for e in matrix["envs"]],
                       {cols[e]: states[e] for e in matrix["envs"]}, title=title, tooltips=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matrix", nargs="?", default=os.path.join("docs", "version-matrix.json"))
    parser.add_argument("--out-dir", default=None, help="where the SVGs go (default: beside the JSON)")
    args = parser.parse_args(argv)
    with open(args.matrix) as fh:
        data = json.load(fh)
    out_dir = args.out_dir or os.path.dirname(os.path.abspath(args.matrix))
    for name, section in data.items():
        path = os.path.join(out_dir, f"version-matrix-{name.replace('_', '-')}.svg")
        with open(path, "w") as fh:
            fh.write(section_svg(name, section))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
