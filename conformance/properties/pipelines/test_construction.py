"""How teams construct a bridged module: positional arguments, the ``ToLinen`` class itself, and what is refused.

Oracle: the reference's closure form (``to_linen(Cls)`` over the same
``nnx.Linear``): the same seed gives the same params, bit for bit.
"""

import jax

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers.harness import case_x, given_data, init_jit, numerics, seed_array
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_trees_equal, reporting
from reference import _compat, prng_key

FRACTION = config.PIPELINE_EXAMPLE_FRACTION


# One jit for every example: a later example's equal ToLinen hits the cache entry of an earlier one.
_init_static = jax.jit(lambda m, seed, x_: pl.init_in(m, prng_key(seed), x_), static_argnums=0)


@given_data(FRACTION, shrink=False)
def test_positional_constructor_arguments(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines as pl
    v = pl.top_level(x.shape[-1], int(features)).init(prng_key(seed), x)  # to_linen(Affine, width, features)
    assert_trees_equal("to_linen(Cls, width, features) variables", v, variables, "the closure form's")
    """
    with numerics(case), reporting("positional constructor arguments reach the NNX module", case, check):
        x = case_x(case)
        v = pl.jit_init(pl.top_level(case.width, case.features_int))(seed_array(case.seed_int), x)
        assert_trees_equal("to_linen(Cls, width, features) variables", v, init_jit(case, x),
                           "the closure form's variables (same nnx.Linear, same seed)")


@given_data(FRACTION, shrink=False)
def test_tolinen_class_matches_to_linen(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from flax.nnx import bridge
    from conformance.helpers import pipelines as pl
    direct = bridge.ToLinen(pl.affine_class(), args=(x.shape[-1], int(features)))
    via = pl.top_level(x.shape[-1], int(features))
    assert hash(direct) == hash(bridge.ToLinen(pl.affine_class(), args=(x.shape[-1], int(features))))
    assert_trees_equal("ToLinen(Cls, args=...) variables", direct.init(prng_key(seed), x), via.init(prng_key(seed), x), "to_linen's")
    """
    with numerics(case), reporting("ToLinen(...) used directly == to_linen(...)", case, check):
        from flax.nnx import bridge

        x = case_x(case)
        args = (case.width, case.features_int)
        direct = bridge.ToLinen(pl.affine_class(), args=args)
        again = bridge.ToLinen(pl.affine_class(), args=args)
        assert direct == again and hash(direct) == hash(again), (
            "two ToLinen(Cls, args=...) of the same arguments are not equal with equal hashes, but should be "
            "(a jit static argument is looked up by them)")
        via = pl.top_level(*args)
        seed = seed_array(case.seed_int)
        assert_trees_equal("ToLinen(Cls, args=...) variables", _init_static(direct, seed, x), _init_static(via, seed, x),
                           "to_linen(Cls, *args) variables, each module a jit static argument")


@given_data(FRACTION, shrink=False)
def test_instance_is_rejected(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines as pl
    from reference import _compat
    instance = pl.affine_class()(x.shape[-1], int(features), rngs=_compat.nnx.Rngs(0))
    try:
        v = _compat.to_linen(instance).init(prng_key(seed), x)
    except Exception as exc:
        print("rejected, as it should be:", type(exc).__name__, exc)
    else:
        raise AssertionError("to_linen(an instance) initialised silently, but should be rejected")
    """
    with numerics(case), reporting("to_linen(an instance) is rejected", case, check):
        x = case_x(case)
        instance = pl.affine_class()(case.width, case.features_int, rngs=_compat.nnx.Rngs(0))
        try:
            v = _compat.to_linen(instance).init(prng_key(case.seed_int), x)
        except Exception:  # noqa: BLE001 - any error refuses it; docs/known-deviations.md says what the message says
            return
        raise AssertionError(f"to_linen(an instance) initialised silently (params {sorted(v.get('params', {}))}), "
                             "but should be rejected: to_linen takes the NNX class and its constructor arguments")
