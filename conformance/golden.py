"""Golden records: the variables and outputs of a fixed grid, per installed version.

``python -m conformance record`` writes one for the installed flax and jax;
``test_golden.py`` compares the installed versions against one (the newest by
default, or CONFORMANCE_RECORD=<file name>) through the error model: identical,
drift within the model (reported), or changed (a failure).
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

    from conformance.pytest_helpers import tree_paths
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
    return write_record(data, path, RECORDS)


def write_record(data: dict, path: str | None, records: str) -> str:
    """``data`` as JSON at ``path``, by default ``records/flax-V_jax-V.json`` of its versions."""
    v = data["versions"]
    if path is None:
        os.makedirs(records, exist_ok=True)
        path = os.path.join(records, f"flax-{v['flax']}_jax-{v['jax']}.json")
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
    return path


def version_key(name: str):
    """``flax-0.10.3_jax-0.5.0.json`` -> (0, 10, 3, 0, 5, 0): records in release order."""
    return tuple(int(p) for p in re.findall(r"\d+", name))


def chosen_record() -> str:
    """$CONFORMANCE_RECORD (a path or a committed file name), else the newest committed record."""
    name = os.environ.get(config.GOLDEN_RECORD_ENV)
    if name:
        return name if os.path.isabs(name) else os.path.join(RECORDS, name)
    names = sorted((n for n in os.listdir(RECORDS) if n.endswith(".json")), key=version_key)
    return os.path.join(RECORDS, names[-1])


def is_committed(path: str, records: str = RECORDS) -> bool:
    """Whether ``path`` is one of the suite's committed records (not, say, a gate baseline's own)."""
    return os.path.dirname(os.path.realpath(path)) == os.path.realpath(records)


# Properties that compare against a golden record: their known deviations
# describe the committed records, so they apply only while one of those is chosen.
GOLDEN_PROPERTIES = ("test_golden_structure", "test_golden_numerics")


def reference_is_committed(prop: str) -> bool:
    """For a golden property, whether its chosen record is a committed one; True for any other property."""
    from conformance import zoo_golden

    if prop in GOLDEN_PROPERTIES:
        return is_committed(chosen_record())
    if prop in zoo_golden.GOLDEN_PROPERTIES:
        return is_committed(zoo_golden.chosen_record(), zoo_golden.RECORDS)
    return True


def load(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def structure(cases: dict) -> dict:
    return {c: {p: (v["shape"], v["dtype"]) for p, v in d["variables"].items()} for c, d in cases.items()}


def _grid_x(width: int) -> np.ndarray:
    from conformance.hypothesis_helpers import make_x

    return make_x((width,), "float32", "uniform", 0)


def compare(got: dict, want: dict) -> list[str]:
    """Every grid case through the error model: identical, drift (counted), or changed (listed).

    Another release may draw the same kernel through a differently compiled
    sampler (the sampler model) and sum the product in another order (the
    affine model); the bias is zeros and must be identical.
    """
    from conformance.errormodel import affine_difference
    from conformance.harness import init_difference
    from conformance.pytest_helpers import assert_within_model

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
