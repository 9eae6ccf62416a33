"""``init`` and ``init_with_output`` with a method: ``nnx_method=`` at the top level, ``method=`` through a Linen parent.

Oracle: the method's own meaning. ``Shaped.negated`` returns minus the
product (numbers within the error model of the product: ``assert_product_close``),
``Shaped.pooled`` one column per row (a shape ``__call__`` never gives), and an
init through any method creates the same params as a plain init (NNX creates
them in the constructor), bit for bit.
"""

import inspect

import jax
import pytest

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers import surface as sf
from conformance.helpers.harness import case_x, given_data, numerics, seed_array
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_product_close, assert_shape, assert_trees_equal, reporting
from reference import prng_key

FRACTION = config.SURFACE_EXAMPLE_FRACTION


@pl.per_module
def _jit_init_with_output(module, key: str, method: str | None):
    """``init_with_output(..., <key>=method)`` jitted, the seed traced (``key``: ``nnx_method`` or ``method``)."""
    kw = {} if method is None else {key: method}
    return jax.jit(lambda seed, x: module.init_with_output(prng_key(seed), x, **kw))


def _has_nnx_method() -> bool:
    from flax.nnx import bridge

    return "nnx_method" in inspect.signature(bridge.ToLinen.__call__).parameters


@given_data(FRACTION, shrink=False)
def test_init_with_nnx_method_at_top_level(device, data):
    if not _has_nnx_method():
        pytest.skip("this flax release's ToLinen.__call__ has no nnx_method= (added in 0.11.0)")
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import surface as sf
    top = sf.shaped_top(x.shape[-1], int(features))
    y_neg, v_neg = top.init_with_output(prng_key(seed), x, nnx_method='negated')
    assert_trees_equal("init(nnx_method='negated') variables", v_neg, top.init(prng_key(seed), x), "a plain init's")
    assert_product_close("init_with_output(nnx_method='negated') y", y_neg, -top.apply(v_neg, x), x, v_neg)
    y_pool, _ = top.init_with_output(prng_key(seed), x, nnx_method='pooled')
    assert y_pool.shape == x.shape[:-1] + (1,), f"y.shape={y_pool.shape}, but should be {x.shape[:-1] + (1,)} (pooled)"
    """
    with numerics(case), reporting("init_with_output(nnx_method=...) calls that NNX method", case, check):
        x = case_x(case)
        top = sf.shaped_top(case.width, case.features_int)
        seed = seed_array(case.seed_int)
        y_neg, v_neg = _jit_init_with_output(top, "nnx_method", "negated")(seed, x)
        _, v_plain = _jit_init_with_output(top, "nnx_method", None)(seed, x)
        assert_trees_equal("init(nnx_method='negated') variables", v_neg, v_plain,
                           "a plain init's variables (NNX creates params in the constructor, whatever the method)")
        assert_product_close("init_with_output(nnx_method='negated') y", y_neg, -pl.jit_apply(top)(v_neg, x), x, v_neg,
                             what="minus apply's output on the variables that init returned (the method negates)")
        y_pool, _ = _jit_init_with_output(top, "nnx_method", "pooled")(seed, x)
        assert_shape("init_with_output(nnx_method='pooled') y", y_pool.shape, x.shape[:-1] + (1,))


@given_data(FRACTION, shrink=False)
def test_init_with_method_through_parent(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import surface as sf
    parent = sf.method_parent(x.shape[-1], int(features))
    y_pool, v_pool = parent.init_with_output(prng_key(seed), x, method='pooled')
    assert_trees_equal("init(method='pooled') variables", v_pool, parent.init(prng_key(seed), x), "a plain init's")
    assert y_pool.shape == x.shape[:-1] + (1,), f"y.shape={y_pool.shape}, but should be {x.shape[:-1] + (1,)} (pooled)"
    """
    with numerics(case), reporting("init_with_output(method=...) through a parent calls the NNX method", case, check):
        x = case_x(case)
        parent = sf.method_parent(case.width, case.features_int)
        seed = seed_array(case.seed_int)
        y_pool, v_pool = _jit_init_with_output(parent, "method", "pooled")(seed, x)
        y_plain, v_plain = _jit_init_with_output(parent, "method", None)(seed, x)
        assert_trees_equal("init(method='pooled') variables", v_pool, v_plain,
                           "a plain init's variables (the child's params come from its constructor)")
        assert_shape("init_with_output(method='pooled') y", y_pool.shape, x.shape[:-1] + (1,))
        assert_shape("init_with_output() y", y_plain.shape, x.shape[:-1] + (case.features_int,))
