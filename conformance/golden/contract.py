"""Golden records: the variables and outputs of a fixed grid, per installed version.

``python -m conformance record`` writes one for the installed flax and jax;
``test_golden.py`` compares the installed versions against one (the newest by
default, or CONFORMANCE_RECORD=<file name>) through the error model: identical,
drift within the model (reported), or changed (a failure).
"""

from __future__ import annotations

import os

import numpy as np

from conformance.core import config
from conformance.golden import records

RECORDS = config.RECORDS_DIR
# The contract's golden properties.
GOLDEN_PROPERTIES = ("test_golden_structure", "test_golden_numerics")
GRID_SEEDS = (0, 1, -1, config.SEED_MAX, config.SEED_MIN)
GRID_SHAPES = ((3, 4), (1, 1), (17, 2))


def grid():
    for w, f in GRID_SHAPES:
        for s in GRID_SEEDS:
            yield s, w, f


def compute(threefry_partitionable: bool | None = None) -> dict:
    """Variables (path -> shape, dtype, values) and outputs for every grid case."""
    import jax

    from conformance.helpers.pytest_helpers import tree_paths
    from reference import init_variables, nnx_inside_linen

    old = jax.config.jax_threefry_partitionable
    if threefry_partitionable is not None:
        jax.config.update("jax_threefry_partitionable", threefry_partitionable)
    try:
        cases = {}
        for s, w, f in grid():
            x = jax.device_put(_grid_x(w))
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
    return records.write_record(data, path, records.written_dir())


def chosen_record() -> str:
    """$CONFORMANCE_RECORD (a path or a committed file name), else the newest committed record."""
    name = os.environ.get(config.GOLDEN_RECORD_ENV)
    if name:
        return name if os.path.isabs(name) else os.path.join(RECORDS, name)
    names = sorted((n for n in os.listdir(RECORDS) if n.endswith(".json")), key=records.version_key)
    return os.path.join(RECORDS, names[-1])


def structure(cases: dict) -> dict:
    return {c: {p: (v["shape"], v["dtype"]) for p, v in d["variables"].items()} for c, d in cases.items()}


def _grid_x(width: int) -> np.ndarray:
    from conformance.helpers.hypothesis_helpers import make_x

    return make_x((width,), "float32", "uniform", 0)


def compare(got: dict, want: dict) -> list[str]:
    """Every grid case through the error model: identical, drift (counted), or changed (listed).

    Another release may draw the same kernel through a differently compiled
    sampler (the sampler model) and sum the product in another order (the
    affine model); the bias is zeros and must be identical.
    """
    from conformance.numerics.errormodel import affine_difference
    from conformance.helpers.harness import init_difference
    from conformance.helpers.pytest_helpers import assert_within_model

    changed = []
    for c, d in want.items():
        leaves = {}
        try:
            for p, v in d["variables"].items():
                ref = np.asarray(v["values"], v["dtype"]).reshape(v["shape"])
                have = np.asarray(got[c]["variables"][p]["values"], v["dtype"]).reshape(v["shape"])
                leaves[p.rsplit("/", 1)[-1]] = (ref, init_difference(p, ref))
                assert_within_model(f"{c}: variables/{p}", have, ref, init_difference(p, ref), "the record")
            (k, dk), (b, db) = leaves["kernel"], leaves["bias"]
            bound = affine_difference(_grid_x(k.shape[0]), k, b, dk, db, np.float32)
            assert_within_model(f"{c}: y", np.asarray(got[c]["y"], np.float32), np.asarray(d["y"], np.float32), bound, "the record")
        except AssertionError as exc:
            changed.append(str(exc))
    return changed
