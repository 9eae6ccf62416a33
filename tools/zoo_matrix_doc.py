"""The zoo's version matrix as Markdown from gate reports (stdout).

    python tools/zoo_matrix_doc.py GATE_DIR [PATCH_GATE_DIR ...]

GATE_DIR holds gate.json of a run with --pytest-args "-k zoo"; a PATCH dir's
cells replace the first run's for the properties it ran (a re-run of some
properties after a harness fix). Columns in release order.
"""

import json
import os
import re
import sys

SYMBOL = {"pass": "pass", "skipped": "skip", "deviation": "deviation", "drift": "drift", "fixed": "FIXED",
          "fail": "**FAIL**", "missing": "**missing**"}


def vkey(label):
    return tuple(int(p) for p in re.findall(r"\d+", label))


def main():
    runs = [json.load(open(os.path.join(d, "gate.json"))) for d in sys.argv[1:]]
    base = runs[0]
    matrix = {e: dict(c) for e, c in base["matrix"].items()}
    props = list(base["properties"])
    for patch in runs[1:]:
        for e, cells in patch["matrix"].items():
            for p, c in cells.items():
                if p in matrix.get(e, {}):
                    matrix[e][p] = c
    envs = sorted(matrix, key=vkey)
    info = base["environments"]
    print("| flax | `--exclude-newer` | jax | numpy | optax | hypothesis | suite (s) |")
    print("|---|---|---|---|---|---|---|")
    for e in envs:
        v = info[e]["versions"]
        print(f"| {v['flax']} | {info[e]['exclude_newer']} | {v['jax']} | {v.get('numpy')} | {v.get('optax')} | "
              f"{v.get('hypothesis')} | {info[e].get('run_seconds')} |")
    print()
    heads = [f"{info[e]['versions']['flax']}<br>jax {info[e]['versions']['jax']}" for e in envs]
    print("| property | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(envs))
    for p in props:
        print(f"| `{p}` | " + " | ".join(SYMBOL[matrix[e][p]["outcome"]] for e in envs) + " |")


if __name__ == "__main__":
    main()
