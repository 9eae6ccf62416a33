"""A version matrix as Markdown (the pipelines', the real-layer tier's), from one JUnit XML per release.

    python tools/pipeline_matrix_doc.py DIR > table.md

``DIR`` holds ``<flax version>.xml`` (``pytest --junitxml``) of
``conformance/properties/pipelines`` and ``test_checkpoint_golden.py`` run in
each release's environment. Device parameters are merged; a row lists the
outcome per release ("pass", "xfail" = a known deviation reproduced, "FAIL",
"skip"), and consecutive releases with the same outcome share a column.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import xml.etree.ElementTree as ET

DEVICE = re.compile(r"(^|-)(cpu|gpu|tpu)(:\d+)?(?=-|$)")


def outcome(case) -> str:
    for tag, word in (("failure", "FAIL"), ("error", "FAIL")):
        if case.find(tag) is not None:
            return word
    skipped = case.find("skipped")
    if skipped is not None:
        return "xfail" if "xfail" in (skipped.get("type", "") + skipped.get("message", "")).lower() else "skip"
    return "pass"


def property_name(name: str) -> str:
    m = re.match(r"^([^\[]+)\[(.*)\]$", name)
    if not m:
        return name
    param = DEVICE.sub("", m.group(2)).strip("-")
    return f"{m.group(1)}[{param}]" if param else m.group(1)


def read(directory: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    releases = sorted((os.path.basename(p)[:-4] for p in glob.glob(os.path.join(directory, "*.xml"))),
                      key=lambda v: tuple(int(x) for x in v.split(".")))
    rows: dict[str, dict[str, str]] = {}
    rank = {"FAIL": 3, "xfail": 2, "skip": 1, "pass": 0}
    for rel in releases:
        for case in ET.parse(os.path.join(directory, f"{rel}.xml")).iter("testcase"):
            prop, got = property_name(case.get("name", "")), outcome(case)
            prev = rows.setdefault(prop, {}).get(rel)
            rows[prop][rel] = got if prev is None or rank[got] > rank[prev] else prev
    return releases, rows


def spans(releases: list[str], rows: dict) -> list[tuple[str, str]]:
    """Consecutive releases every row agrees on, as (first, last)."""
    out: list[tuple[str, str]] = []
    for rel in releases:
        if out and all(r.get(rel) == r.get(out[-1][1]) for r in rows.values()):
            out[-1] = (out[-1][0], rel)
        else:
            out.append((rel, rel))
    return out


def markdown(releases: list[str], rows: dict) -> str:
    cols = spans(releases, rows)
    head = [a if a == b else f"{a}–{b}" for a, b in cols]
    lines = ["| property | " + " | ".join(head) + " |", "|---|" + "---|" * len(cols)]
    for prop in sorted(rows):
        lines.append(f"| `{prop}` | " + " | ".join(rows[prop].get(a, "–") for a, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(markdown(*read(argv[0])), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
