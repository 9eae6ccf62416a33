"""Golden records: the variables and outputs of a fixed grid, per installed version, in both directions.

``python -m conformance record`` writes one for the installed flax and jax:
``cases`` for ``nnx_inside_linen`` (its Linen variables) and ``to_nnx_cases``
for ``linen_inside_nnx`` (the ToNNX model's ``nnx.Param`` state).
``test_golden.py`` and ``to_nnx/golden/test_tonnx_golden.py`` compare the
installed versions against one (the newest by default, or
CONFORMANCE_RECORD=<file name>) through the error model: identical, drift
within the model (reported), or changed (a failure).
"""

from __future__ import annotations

import os

import numpy as np

from conformance.core import config
from conformance.golden import records

RECORDS = config.RECORDS_DIR
# The contract's golden properties, to_linen's then to_nnx's; each direction's cases under its key of the record.
GOLDEN_PROPERTIES = ("test_golden_structure", "test_golden_numerics", "test_tonnx_golden_structure",
                     "test_tonnx_golden_numerics")
CASES = {"to_linen": "cases", "to_nnx": "to_nnx_cases"}
GRID_SEEDS = (0, 1, -1, config.SEED_MAX, config.SEED_MIN)
GRID_SHAPES = ((3, 4), (1, 1), (17, 2))


def grid():
    for w, f in GRID_SHAPES:
        for s in GRID_SEEDS:
            yield s, w, f


def compute(threefry_partitionable: bool | None = None, direction: str = "to_linen") -> dict:
    """Variables (path -> shape, dtype, values) and outputs for every grid case, in ``direction``.

    to_linen: the variables ``init`` returns; to_nnx: the lazily initialised
    ToNNX model's ``nnx.Param`` state, under the paths ``nnx.state`` gives.
    """
    import jax

    from conformance.helpers.pytest_helpers import tree_paths

    if direction not in CASES:
        raise ValueError(f"direction must be one of {sorted(CASES)}; got {direction!r}")
    old = jax.config.jax_threefry_partitionable
    if threefry_partitionable is not None:
        jax.config.update("jax_threefry_partitionable", threefry_partitionable)
    try:
        cases = {}
        for s, w, f in grid():
            x = jax.device_put(_grid_x(w))
            variables, y = _variables_and_output(direction, s, x, f)
            cases[f"seed={s},width={w},features={f}"] = {
                "variables": {p: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype),
                                  "values": np.asarray(v, np.float64).ravel().tolist()}
                              for p, v in tree_paths(variables).items()},
                "y": np.asarray(y, np.float64).tolist(),
            }
        return cases
    finally:
        jax.config.update("jax_threefry_partitionable", old)


def _variables_and_output(direction: str, seed, x, features):
    if direction == "to_nnx":
        from reference import _compat
        from reference.linen_in_nnx import nnx_model

        model = nnx_model(seed, x, features)
        return _compat.pure_dict(_compat.nnx.state(model, _compat.nnx.Param)), model(x)
    from reference import init_variables, nnx_inside_linen

    return init_variables(seed, x, features), nnx_inside_linen(seed, x, features)


def _to_nnx_cases() -> dict:
    """The to_nnx grid, or why it could not be computed (a release whose ToNNX fails must not stop the record)."""
    try:
        return {"to_nnx_cases": compute(direction="to_nnx")}
    except Exception as exc:  # recorded; the to_nnx golden properties then skip with it
        return {"to_nnx_error": f"{type(exc).__name__}: {exc}"}


def record(path: str | None = None) -> str:
    import flax
    import jax
    import jaxlib

    data = {
        "versions": {"flax": flax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__},
        "settings": {"jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
                     "jax_default_matmul_precision": config.MATMUL_PRECISION},
        "cases": compute(),
        **_to_nnx_cases(),
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


def recorded_cases(want: dict, direction: str) -> dict | None:
    """The record's cases of ``direction``; None for a record written before it held that direction's."""
    return want.get(CASES[direction])


def assert_structure(got: dict, want: dict, path: str, direction: str) -> None:
    """Paths, shapes and dtypes of every grid case exactly as the record at ``path`` has them."""
    __tracebackhide__ = True
    got_s, want_s = structure(got), structure(recorded_cases(want, direction))
    diff = [c for c in want_s if got_s.get(c) != want_s[c]]
    assert not diff, (
        f"structure change against {os.path.basename(path)} ({want['versions']}): {diff[0]}: "
        f"{got_s.get(diff[0])} but the record has {want_s[diff[0]]}"
    )


def assert_numerics(got: dict, want: dict, path: str, direction: str) -> None:
    """Every grid case identical or within the error model of the record; a change says what explains it.

    A change is re-derived with jax_threefry_partitionable flipped: when that
    reproduces the record, the message says so.
    """
    __tracebackhide__ = True
    cases = recorded_cases(want, direction)
    changed = compare(got, cases)
    if not changed:
        return  # identical, or drift within the error model (counted and reported)
    import jax

    flag = bool(jax.config.jax_threefry_partitionable)
    explained = not compare(compute(threefry_partitionable=not flag, direction=direction), cases)
    why = (
        f"explained: with jax_threefry_partitionable={not flag} (installed default {flag}) the record is reproduced"
        if explained else "no known setting reproduces the record"
    )
    raise AssertionError(
        f"numerics changed against {os.path.basename(path)} ({want['versions']}, {want['settings']}): "
        f"{len(changed)} of {len(cases)} cases beyond the error model, e.g. {changed[0]}; {why}"
    )


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
