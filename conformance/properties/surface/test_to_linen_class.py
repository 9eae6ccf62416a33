"""``to_linen_class`` and subclasses of the class it returns: a bridged layer declared once, used as Linen's own.

Oracle: ``to_linen`` of the same NNX class and arguments. ``class
Dense(to_linen_class(nnx.Linear, in_features=width))`` built with
``out_features=features`` initialises the variables ``to_linen(nnx.Linear,
width, features)`` does from the same seed (bit for bit), applies to the same
output (within the error model of the product), two equal ones are equal with
equal hashes and serve as one jit static argument, and inside a Linen parent's
``setup`` its params sit under the parent's name with the top-level layout, and
the parent applies them as ``to_linen`` does (within the error model of the product).

The class's own defaults reach its subclasses: ``base_metadata_fn=get_value``
keeps a partitioned kernel bare, as ``to_linen(..., metadata_fn=get_value)``
does (and an instance's ``metadata_fn`` overrides it: the default boxes the
kernel again), and ``base_skip_rng=True`` builds a module whose constructor
takes no ``rngs``, as ``to_linen(..., skip_rng=True)`` does (its kernel is the
constructor's exact ramp). Both oracles are ``to_linen`` with the same argument,
bit for bit.
"""

import jax
import numpy as np
import pytest

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers import surface as sf
from conformance.helpers.harness import case_x, given_data, numerics, seed_array
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_product_close, assert_trees_equal, reporting
from reference import _compat, prng_key

FRACTION = config.SURFACE_EXAMPLE_FRACTION

_init_static = jax.jit(lambda m, seed, x: m.init(prng_key(seed), x), static_argnums=0)
_apply_static = jax.jit(lambda m, v, x: m.apply(v, x), static_argnums=0)


def _skip_without_to_linen_class():
    if sf.to_linen_class() is None:
        pytest.skip("this flax release has no to_linen_class (added in 0.12.0)")


@given_data(FRACTION, shrink=False)
def test_to_linen_class_subclass_init_apply(device, data):
    _skip_without_to_linen_class()
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


@given_data(FRACTION, shrink=False)
def test_to_linen_class_base_defaults_reach_subclasses(device, data):
    _skip_without_to_linen_class()
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import surface as sf, pipelines as pl
    from reference import _compat
    v = pl.init_in(sf.bare_leaves_subclass(x.shape[-1])(out_features=int(features)), prng_key(seed), x)
    want = pl.init_in(sf.partitioned_top(x.shape[-1], int(features), metadata_fn=_compat.get_value), prng_key(seed), x)
    assert_trees_equal("BareDense variables", v, want, "to_linen(..., metadata_fn=get_value)'s")
    assert not sf.boxed_paths(v), f"base_metadata_fn=get_value: leaves {sf.boxed_paths(v)} are boxed"
    r = sf.rngless_subclass(x.shape[-1])(features=int(features)).init(prng_key(seed), x)
    assert_trees_equal("RampDense variables", r, _compat.to_linen(sf.no_rngs_class(), x.shape[-1], int(features),
                       skip_rng=True).init(prng_key(seed), x), "to_linen(Ramp, ..., skip_rng=True)'s")
    """
    with numerics(case), reporting("to_linen_class's base_metadata_fn and base_skip_rng reach its subclasses", case, check):
        x = case_x(case)
        width, features = case.width, case.features_int
        seed = prng_key(case.seed_int)
        # base_metadata_fn=get_value: bare leaves, as to_linen(..., metadata_fn=get_value) gives.
        bare_cls = sf.bare_leaves_subclass(width)
        v = pl.init_in(bare_cls(out_features=features), seed, x)
        assert_trees_equal(f"{bare_cls.__name__}(out_features={features}) variables", v,
                           pl.init_in(sf.partitioned_top(width, features, metadata_fn=_compat.get_value), seed, x),
                           "to_linen(nnx.Linear, ..., metadata_fn=get_value) variables, same seed")
        assert not sf.boxed_paths(v), (f"base_metadata_fn=get_value: leaves {sf.boxed_paths(v)} are boxed, but should "
                                       "be bare (the subclasses' default metadata_fn is the class's)")
        # An instance's metadata_fn overrides the base's: the default boxes the partitioned kernel again.
        v_boxed = pl.init_in(bare_cls(out_features=features, metadata_fn=sf.default_metadata_fn()), seed, x)
        assert_trees_equal(f"{bare_cls.__name__}(..., metadata_fn=<default>) variables", v_boxed,
                           pl.init_in(sf.partitioned_top(width, features), seed, x),
                           "to_linen(nnx.Linear, ...) variables (the default metadata_fn), same seed")
        assert sf.boxed_paths(v_boxed) == ["params/kernel"], (
            f"the default metadata_fn boxes {sf.boxed_paths(v_boxed)}, but should box params/kernel (its partition "
            "names): without that box nothing tells base_metadata_fn's effect apart")
        # base_skip_rng=True: a constructor without rngs, as to_linen(..., skip_rng=True) builds it.
        ramp_cls = sf.rngless_subclass(width)
        r = ramp_cls(features=features).init(seed, x)
        assert_trees_equal(f"{ramp_cls.__name__}(features={features}) variables", r,
                           _compat.to_linen(sf.no_rngs_class(), width, features, skip_rng=True).init(seed, x),
                           "to_linen(Ramp, ..., skip_rng=True) variables, same seed")
        assert np.array_equal(np.asarray(r["params"]["kernel"]), sf.ramp_kernel(width, features)), (
            f"{ramp_cls.__name__}'s kernel is not its constructor's ramp, but should be")
