"""jit equivalence through ToNNX: ``nnx.jit`` of the model, and ``jax.jit`` over ``nnx.split`` state, match eager.

A call of a ToNNX model draws a key from each of its rng streams (so a Linen
``Dropout`` inside sees fresh keys): under ``nnx.jit`` that advance must be
written back to the model as an eager call writes it. Params are unchanged by
either call; outputs agree within the affine model of each side, params of a
compiled init within the sampler model (docs/error-model.md).
"""

import jax
import numpy as np

from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, numerics, outputs_difference, outputs_same_params
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import (
    assert_equal, assert_inits_within_model, assert_trees_equal, assert_within_model, reporting,
)
from reference import _compat, nnx_params

nnx = _compat.nnx

# One object for every example: nnx.jit caches its programs per graph definition, shape and dtype.
nnx_jit_call = nnx.jit(lambda model, x: model(x))


@nnx.jit
def nnx_jit_lazy_init(model, x):
    """``bridge.lazy_init(model, x)`` compiled: the model enters as a graph (its definition hashed), leaves with its variables."""
    _compat.lazy_init(model, x)


def stream_counts(model) -> dict:
    """How many keys each rng stream of the model has handed out: ``{'to_nnx__rngs/params/count': n}``."""
    flat = _compat.flat_state(nnx.state(model, nnx.RngCount))
    return {"/".join(map(str, path)): int(np.asarray(_compat.get_value(v))) for path, v in flat}


# An eager lazy init and two calls per example: a sixth of the profile's examples.
@given_data(0.15, rotation="test_jit_whole_matches_eager")
def test_tonnx_nnx_jit_matches_eager(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    check = """
    from conformance.helpers.harness import outputs_same_params
    from conformance.helpers.pytest_helpers import assert_within_model
    from conformance.properties.to_nnx.contract.test_jit import nnx_jit_call, stream_counts
    counts = stream_counts(model)
    y_eager = model(x)
    after_eager = stream_counts(model)
    y_jit = nnx_jit_call(model, x)
    assert_within_model("nnx.jit y", y_jit, y_eager, outputs_same_params(x, variables), "eager call of the same model")
    assert stream_counts(model) == {k: 2 * after_eager[k] - counts[k] for k in counts}, (counts, after_eager, stream_counts(model))
    assert_trees_equal("params", nnx_params(model), variables, "the params before either call")
    """
    with numerics(case), reporting("nnx.jit(model) == eager", case, check):
        x = case_x(case)
        model = harness_nnx.eager_model(case, x)
        params = nnx_params(model)
        counts = stream_counts(model)
        y_eager = model(x)
        after_eager = stream_counts(model)
        y_jit = nnx_jit_call(model, x)
        after_jit = stream_counts(model)
        assert_within_model("nnx.jit y", y_jit, y_eager, outputs_same_params(x, params), "eager call of the same model")
        for path, n in counts.items():
            step = after_eager[path] - n
            assert after_jit[path] - after_eager[path] == step, (
                f"{path}: an nnx.jit call advanced the stream from {after_eager[path]} to {after_jit[path]}, but "
                f"should advance it by {step} as the eager call did (the update was not written back)"
            )
        assert_trees_equal("params", nnx_params(model), params, "the params before either call")


# An eager lazy init per example: a quarter of the profile's examples.
@given_data(0.25, rotation="test_jit_init_apply_matches_eager")
def test_tonnx_jax_jit_over_split_state_matches_eager(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    check = """
    from conformance.helpers.harness import outputs_same_params
    from conformance.helpers.pytest_helpers import assert_inits_within_model, assert_within_model
    graphdef, state = nnx.split(model)
    init = jax.jit(lambda s, x: nnx.state(nnx_model(s, x, int(features))))
    jit_state = init(np.int32(seed) if not jax.config.jax_enable_x64 else np.int64(seed), x)
    assert_inits_within_model("jit params", nnx.to_pure_dict(nnx.filter_state(jit_state, nnx.Param)), variables, "eager lazy init")
    y_jit = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)
    assert_within_model("jit y", y_jit, nnx.merge(graphdef, state)(x), outputs_same_params(x, variables), "eager call")
    """
    with numerics(case), reporting("jax.jit over nnx.split state == eager", case, check):
        x, jit_params, _ = harness_nnx.observe(case)
        model = harness_nnx.eager_model(case, x)
        params = nnx_params(model)
        assert_inits_within_model("jit params", jit_params, params, "eager lazy init")
        apply = harness_nnx.jit_apply(case.width, case.features_int)
        state = nnx.state(model)
        y_jit = apply(state, x)
        assert_within_model("jit y", y_jit, model(x), outputs_same_params(x, params), "eager call")
        # A cached call must not trace or compile again, nor change its answer.
        before = apply._cache_size()
        assert_equal("jit y (again)", apply(state, x), y_jit, "the first compiled call")
        assert apply._cache_size() == before, "jax.jit over the split state re-traced a call with the same shapes and dtypes"


# Two lazy inits (one compiled) and two calls per example: a sixth of the profile's examples.
@given_data(0.15, rotation="test_jit_init_apply_matches_eager")
def test_tonnx_lazy_init_under_nnx_jit_matches_eager(device, data):
    """``nnx.jit`` over ``bridge.lazy_init(model, x)`` of a model not yet initialised, as a team compiles its init.

    Oracle: the eager ``lazy_init`` of the same seed. The uninitialised model's
    graph definition is a static argument (it must hash); the compiled init
    must leave the model holding what the eager one creates: the same
    variables (params within the sampler model), the same graph definition,
    its params stream advanced alike, and an output within two inits' model.
    """
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    check = """
    from flax.nnx import bridge
    from conformance.helpers.harness import outputs_difference
    from conformance.helpers.pytest_helpers import assert_inits_within_model, assert_within_model
    from conformance.properties.to_nnx.contract.test_jit import nnx_jit_lazy_init, stream_counts
    from reference import linen_dense, nnx_rngs
    fresh = bridge.ToNNX(linen_dense(int(features)), rngs=nnx_rngs(int(seed)))
    hash(nnx.graphdef(fresh))
    nnx_jit_lazy_init(fresh, x)
    assert_inits_within_model("params", nnx_params(fresh), variables, "eager lazy init")
    assert nnx.graphdef(fresh) == nnx.graphdef(model) and stream_counts(fresh) == stream_counts(model)
    assert_within_model("y", fresh(x), model(x), outputs_difference(x, variables), "the eager model's")
    """
    with numerics(case), reporting("nnx.jit(lazy_init) of a fresh model == eager lazy_init", case, check):
        from reference import linen_dense, nnx_rngs

        x = case_x(case)
        model = harness_nnx.eager_model(case, x)
        params = nnx_params(model)
        fresh = _compat.to_nnx(linen_dense(case.features_int), nnx_rngs(case.seed_int))
        try:
            hash(nnx.graphdef(fresh))
        except TypeError as exc:
            raise AssertionError(f"the graph definition of a ToNNX not yet lazy_init'ed cannot be hashed ({exc}), but "
                                 "should be, as a native NNX module's: nnx.jit takes it as a static argument") from None
        nnx_jit_lazy_init(fresh, x)
        assert_inits_within_model("params after nnx.jit(lazy_init)", nnx_params(fresh), params, "eager lazy_init's")
        assert nnx.graphdef(fresh) == nnx.graphdef(model), (
            f"the graph definition after nnx.jit(lazy_init) is {nnx.graphdef(fresh)}, but should be the eager "
            f"lazy_init's {nnx.graphdef(model)}")
        got, want = stream_counts(fresh), stream_counts(model)
        assert got == want, (f"the rng streams after nnx.jit(lazy_init) count {got}, but should count {want} as after "
                             "the eager lazy_init (the compiled init's draws are written back to the model)")
        assert_within_model("y of the compiled init's model", fresh(x), model(x), outputs_difference(x, params),
                            "the eager model's y")
