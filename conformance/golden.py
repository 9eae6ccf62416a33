"""Golden records: the variables and outputs of a fixed grid, per installed version.

``python -m conformance record`` writes one for the installed flax and jax;
``test_golden.py`` compares the installed versions against one (the newest by
default, or CONFORMANCE_RECORD=<file name>) within a few ulp, never bitwise.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from conformance import config

RECORDS = os.path.join(os.path.dirname(__file__), "records")
GRID_SEEDS = (0, 1, -1, config.SEED_MAX, config.SEED_MIN)
GRID_SHAPES = ((3, 4), (1, 1), (17, 2))


def grid():
    for w, f in GRID_SHAPES:
        for s in GRID_SEEDS:
            yield s, w, f


def compute(threefry_partitionable: bool | None = None) -> dict:
    """Variables (path -> shape, dtype, values) and outputs for every grid case."""
    import jax

    from conformance.hypothesis_helpers import make_x
    from conformance.pytest_helpers import tree_paths
    from reference import init_variables, nnx_inside_linen

    old = jax.config.jax_threefry_partitionable
    if threefry_partitionable is not None:
        jax.config.update("jax_threefry_partitionable", threefry_partitionable)
    try:
        cases = {}
        for s, w, f in grid():
            x = jax.device_put(make_x((w,), "float32", "uniform", 0))
            leaves = tree_paths(init_variables(s, x, f))
            cases[f"seed={s},width={w},features={f}"] = {
                "variables": {p: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype),
                                  "values": np.asarray(v, np.float64).ravel().tolist()} for p, v in leaves.items()},
                "y": np.asarray(nnx_inside_linen(s, x, f), np.float64).tolist(),
            }
        return cases
    finally:
        jax.config.update("jax_threefry_partitionable", old)


def record(path: str | None = None) -> str:
    import flax
    import jax
    import jaxlib

    data = {
        "versions": {"flax": flax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__},
        "settings": {"jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
                     "jax_default_matmul_precision": config.MATMUL_PRECISION},
        "cases": compute(),
    }
    path = path or os.path.join(RECORDS, f"flax-{flax.__version__}_jax-{jax.__version__}.json")
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
    return path


def _version_key(name: str):
    return tuple(int(p) for p in re.findall(r"\d+", name))


def chosen_record() -> str:
    name = os.environ.get("CONFORMANCE_RECORD")
    if name:
        return name if os.path.isabs(name) else os.path.join(RECORDS, name)
    names = sorted((n for n in os.listdir(RECORDS) if n.endswith(".json")), key=_version_key)
    return os.path.join(RECORDS, names[-1])


def load(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def structure(cases: dict) -> dict:
    return {c: {p: (v["shape"], v["dtype"]) for p, v in d["variables"].items()} for c, d in cases.items()}


def mismatches(got: dict, want: dict) -> list[str]:
    """Cases whose values differ by more than a few ulp, with the worst leaf."""
    out = []
    for c, d in want.items():
        pairs = [(f"variables/{p}", got[c]["variables"][p]["values"], v["values"]) for p, v in d["variables"].items()]
        pairs.append(("y", got[c]["y"], d["y"]))
        for name, a, b in pairs:
            a, b = np.asarray(a), np.asarray(b)
            bound = config.ULPS * np.finfo(np.float32).eps * np.maximum(np.abs(b), 1e-30)
            if a.shape != b.shape or not (np.abs(a - b) <= bound).all():
                out.append(f"{c}: {name} differs (max |diff| {np.abs(a - b).max() if a.shape == b.shape else 'shape'})")
                break
    return out
