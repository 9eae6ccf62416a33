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
from conformance.helpers.harness import case_x, given_data, numerics, outputs_same_params
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import (
    assert_equal, assert_inits_within_model, assert_trees_equal, assert_within_model, reporting,
)
from reference import _compat, nnx_params

nnx = _compat.nnx

# One object for every example: nnx.jit caches its programs per graph definition, shape and dtype.
nnx_jit_call = nnx.jit(lambda model, x: model(x))


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
