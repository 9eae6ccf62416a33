"""``to_linen_class`` and subclasses of the class it returns: a bridged layer declared once, used as Linen's own.

Oracle: ``to_linen`` of the same NNX class and arguments. ``class
Dense(to_linen_class(nnx.Linear, in_features=width))`` built with
``out_features=features`` initialises the variables ``to_linen(nnx.Linear,
width, features)`` does from the same seed (bit for bit), applies to the same
output (within the error model of the product), two equal ones are equal with
equal hashes and serve as one jit static argument, and inside a Linen parent's
``setup`` its params sit under the parent's name with the top-level layout, and
the parent applies them as ``to_linen`` does (within the error model of the product).
"""

import jax
import pytest

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers import surface as sf
from conformance.helpers.harness import case_x, given_data, numerics, seed_array
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_product_close, assert_trees_equal, reporting
from reference import prng_key

FRACTION = config.SURFACE_EXAMPLE_FRACTION

_init_static = jax.jit(lambda m, seed, x: m.init(prng_key(seed), x), static_argnums=0)
_apply_static = jax.jit(lambda m, v, x: m.apply(v, x), static_argnums=0)


@given_data(FRACTION, shrink=False)
def test_to_linen_class_subclass_init_apply(device, data):
    if sf.to_linen_class() is None:
        pytest.skip("this flax release has no to_linen_class (added in 0.12.0)")
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import surface as sf
    Dense = sf.dense_subclass(x.shape[-1])
    dense, again = Dense(out_features=int(features)), Dense(out_features=int(features))
    assert dense == again and hash(dense) == hash(again), "two equal Dense(...) are not equal with equal hashes"
    v = dense.init(prng_key(seed), x)
    assert_trees_equal("Dense variables", v, sf.linear_top(x.shape[-1], int(features)).init(prng_key(seed), x), "to_linen's")
    pv = sf.dense_parent(x.shape[-1], int(features)).init(prng_key(seed), x)
    assert jax.tree.map(jnp.shape, pv['params']['child']) == jax.tree.map(jnp.shape, v['params'])
    """
    with numerics(case), reporting("to_linen_class subclasses: init, apply, hash, jit static, nesting", case, check):
        x = case_x(case)
        width, features = case.width, case.features_int
        dense_cls = sf.dense_subclass(width)
        dense, again = dense_cls(out_features=features), dense_cls(out_features=features)
        assert dense == again and hash(dense) == hash(again), (
            f"two {dense_cls.__name__}(out_features={features}) are not equal with equal hashes, but should be "
            "(a jit static argument is looked up by them)")
        seed = seed_array(case.seed_int)
        v = _init_static(dense, seed, x)
        top = sf.linear_top(width, features)
        v_top = _init_static(top, seed, x)
        assert_trees_equal(f"{dense_cls.__name__}(out_features={features}) variables", v, v_top,
                           f"to_linen(nnx.Linear, {width}, {features}) variables, same seed")
        assert_product_close(f"{dense_cls.__name__} apply y", _apply_static(again, v, x), _apply_static(top, v, x), x, sf.as_affine(v),
                             what="to_linen's apply on the same variables")
        pv = pl.jit_init(sf.dense_parent(width, features))(seed, x)
        assert sorted(pv["params"]) == [pl.CHILD], f"the parent's params hold {sorted(pv['params'])}, but should hold " \
                                                   f"{[pl.CHILD]} (its setup attribute's name)"
        sub = pl.child(pv, pl.CHILD)
        assert pl.array_layout(sub) == pl.array_layout(v), (
            f"the parent's params/child hold {pl.array_layout(sub)}, but should hold the top-level {pl.array_layout(v)}")
        assert_product_close("the parent's apply y", pl.jit_apply(sf.dense_parent(width, features))(pv, x),
                             _apply_static(top, sub, x), x, sf.as_affine(sub), what="to_linen's apply on the parent's params/child")
