"""Group the committed zoo records by dropout routing and batch statistics (Markdown to stdout).

    python tools/zoo_records_table.py

Each distinct set of masks gets a letter in release order; records of one flax
with another jax (cross records) show whether flax or jax made a change.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conformance.golden import zoo as zoo_golden  # noqa: E402


def main():
    recs = [zoo_golden.load(p) for p in zoo_golden.all_records()]
    masks, stats = {}, {}
    print("| flax | jax | threefry partitionable | dropout masks | batch stats (bits) |")
    print("|---|---|---|---|---|")
    for r in recs:
        m = json.dumps(r["dropout_masks"], sort_keys=True)
        s = json.dumps(r["batch_stats"], sort_keys=True)
        ml = masks.setdefault(m, "ABCDEFGHIJ"[len(masks)])
        sl = stats.setdefault(s, str(len(stats) + 1))
        v = r["versions"]
        print(f"| {v['flax']} | {v['jax']} | {r['settings']['jax_threefry_partitionable']} | {ml} | {sl} |")


if __name__ == "__main__":
    main()
