"""Abstract init and checkpoints: ``jax.eval_shape(init)``, ``lazy_init``, ``flax.serialization`` and orbax.

Oracle: ``init`` itself. Leaves must come back bit for bit, boxes (the
partition metadata) included, and ``apply`` on them must give the same bits.
The module carries partition annotations, so its tree holds metadata boxes.
"""

import os
import tempfile

import jax
import pytest

from conformance.core import config
from conformance.helpers import checkpoints
from conformance.helpers import pipelines as pl
from conformance.helpers.harness import case_x, given_data, numerics, seed_array, tree_paths
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_inits_within_model, assert_trees_equal, reporting

FRACTION = config.PIPELINE_EXAMPLE_FRACTION
ANNOTATED = """
    from conformance.helpers import checkpoints, pipelines as pl
    m = pl.bridged(x.shape[-1], int(features), partitioned=True)
    pv = pl.init_in(m, prng_key(seed), x)
"""


def _assert_same_tree(name, actual, expected, what):
    """Same tree structure, metadata boxes and their static metadata included."""
    __tracebackhide__ = True
    a, e = jax.tree_util.tree_structure(actual), jax.tree_util.tree_structure(expected)
    assert a == e, f"{name} has the tree {a}, but should have {e} ({what})"


def _setup(case):
    x = case_x(case)
    m = pl.bridged(case.width, case.features_int, partitioned=True)
    return x, m, pl.jit_init(m)(seed_array(case.seed_int), x)


@given_data(FRACTION, shrink=False)
def test_abstract_init_matches_init(device, data):
    case = draw_pipeline_case(data, device)
    check = ANNOTATED.rstrip() + """
    abstract = jax.eval_shape(lambda: pl.init_in(m, prng_key(seed), x))
    assert jax.tree.structure(abstract) == jax.tree.structure(pv), f"{jax.tree.structure(abstract)} != {jax.tree.structure(pv)}"
    for a, v in zip(jax.tree.leaves(abstract), jax.tree.leaves(pv)):
        assert (a.shape, a.dtype) == (v.shape, v.dtype)
    """
    with numerics(case), reporting("jax.eval_shape(init) and lazy_init match init", case, check):
        x, m, pv = _setup(case)
        abstract = jax.eval_shape(pl.jit_init(m), seed_array(case.seed_int), x)
        _assert_same_tree("eval_shape(init)", abstract, pv, "init's tree")
        for (path, a), v in zip(jax.tree_util.tree_flatten_with_path(abstract)[0], jax.tree_util.tree_leaves(pv)):
            where = jax.tree_util.keystr(path)
            assert (a.shape, a.dtype) == (v.shape, v.dtype), (
                f"eval_shape(init){where} is {a.shape} {a.dtype}, but should be {v.shape} {v.dtype} (init's)")
        if hasattr(m, "lazy_init"):
            lazy = checkpoints.lazy_init(m, seed_array(case.seed_int), x)
            _assert_same_tree("lazy_init", lazy, pv, "init's tree")
            assert_inits_within_model("lazy_init variables", lazy, pv, "init's (same seed, another trace)")


@given_data(FRACTION, shrink=False)
def test_serialization_round_trip(device, data):
    case = draw_pipeline_case(data, device)
    check = ANNOTATED.rstrip() + """
    from flax import serialization
    back = serialization.from_bytes(pv, serialization.to_bytes(pv))
    assert jax.tree.structure(back) == jax.tree.structure(pv)
    assert_trees_equal("restored", back, pv, "saved")
    assert_equal("apply(restored)", m.apply(back, x), m.apply(pv, x), "apply(saved)")
    """
    with numerics(case), reporting("flax.serialization round trip: bit for bit, apply agrees", case, check):
        from flax import serialization

        x, m, pv = _setup(case)
        back = serialization.from_bytes(pv, serialization.to_bytes(pv))
        _assert_same_tree("flax.serialization restored", back, pv, "the saved tree")
        assert_trees_equal("flax.serialization restored", back, pv, "the saved variables")
        apply = pl.jit_apply(m)
        assert_equal("apply(restored)", apply(checkpoints.on_device(back, case.device), x), apply(pv, x), "apply(saved)")


@given_data(FRACTION, shrink=False)
def test_orbax_round_trip(device, data):
    case = draw_pipeline_case(data, device)
    check = ANNOTATED.rstrip() + """
    import tempfile, os
    path = os.path.join(tempfile.mkdtemp(), 'ckpt')
    checkpoints.orbax_save(path, pv)
    back = checkpoints.orbax_restore(path, jax.eval_shape(lambda: pl.init_in(m, prng_key(seed), x)), x.devices().pop())
    assert jax.tree.structure(back) == jax.tree.structure(pv)
    assert_trees_equal("restored", back, pv, "saved")
    """
    with numerics(case), reporting("orbax save to disk and restore: bit for bit, apply agrees", case, check):
        x, m, pv = _setup(case)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ckpt")
            checkpoints.orbax_save(path, pv)
            back = checkpoints.orbax_restore(path, jax.eval_shape(pl.jit_init(m), seed_array(case.seed_int), x),
                                             case.device)
        _assert_same_tree("orbax restored", back, pv, "the saved tree, restored into init's abstract tree")
        assert_trees_equal("orbax restored", back, pv, "the saved variables")
        apply = pl.jit_apply(m)
        assert_equal("apply(restored)", apply(checkpoints.on_device(back, case.device), x), apply(pv, x), "apply(saved)")


@pytest.mark.parametrize("library", ["orbax", "flax.serialization"])
@given_data(FRACTION, shrink=False)
def test_restore_into_target_missing_a_leaf_names_it(device, library, data):
    case = draw_pipeline_case(data, device)
    check = ANNOTATED.rstrip() + f"""
    import tempfile, os
    target = jax.eval_shape(lambda: pl.init_in(m, prng_key(seed), x))
    target = {{**target, 'params': {{**target['params'], 'linear': {{'kernel': target['params']['linear']['kernel']}}}}}}  # bias left out
    try:
        checkpoints.restore_with({library!r}, pv, target, os.path.join(tempfile.mkdtemp(), 'ckpt'), x.devices().pop())
    except Exception as exc:
        assert 'bias' in str(exc), f"the error does not name the leaf: {{exc}}"
    else:
        raise AssertionError("restored into a target without params/linear/bias silently")
    """
    with numerics(case), reporting(f"{library}: restoring into a target that lacks a leaf names it", case, check):
        x, m, pv = _setup(case)
        target = jax.eval_shape(pl.jit_init(m), seed_array(case.seed_int), x)
        target = {**target, "params": {**target["params"], "linear": {"kernel": target["params"]["linear"]["kernel"]}}}
        with tempfile.TemporaryDirectory() as tmp:
            try:
                back = checkpoints.restore_with(library, pv, target, os.path.join(tmp, "ckpt"), case.device)
            except Exception as exc:  # noqa: BLE001 - refusing is the wanted answer; the message must name the leaf
                assert "bias" in str(exc), f"{library} refused the restore, but its error does not name bias: {exc}"
                return
        raise AssertionError(f"{library} restored a checkpoint holding params/linear/bias into a target without it "
                             f"silently (restored {sorted(tree_paths(back))}), but should fail naming the leaf")

