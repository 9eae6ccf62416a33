"""jit equivalence: the whole contract, and init/apply separately, match eager within the error model.

jit may compile the sampler and the product differently from eager: params
differ within the sampler model, outputs within the affine model of each side
(docs/error-model.md). Identical results are the usual case; drift is reported.
"""

import jax

from conformance.helpers.harness import (
    case_x, given_data, jit_apply, numerics, observe, outputs_difference, outputs_same_params,
)
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_inits_within_model, assert_within_model, reporting
from reference import init_variables, linen_module, nnx_inside_linen

# The whole contract with seed and features static, as a user would jit it.
jit_contract = jax.jit(nnx_inside_linen, static_argnums=(0, 2))


# Seed and features are static, so every example compiles the whole contract
# (about 0.4 s): a tenth of the profile's examples, still more than a device's compile keys.
@given_data(0.1)
def test_jit_whole_matches_eager(device, data):
    case = draw_case(data, device, batched=None)
    check = """
    from conformance.helpers.harness import outputs_difference
    from conformance.helpers.pytest_helpers import assert_within_model
    y_jit = jax.jit(nnx_inside_linen, static_argnums=(0, 2))(seed, x, features)
    assert_within_model("jit y", y_jit, y, outputs_difference(x, variables), "eager")  # params drawn inside: the init model too
    """
    with numerics(case), reporting("jit(whole contract) == eager", case, check):
        x = case_x(case)
        eager = nnx_inside_linen(case.seed, x, case.features)
        # Inside the jitted contract the params are its own draw: the init model, then the product.
        bound = outputs_difference(x, init_variables(case.seed, x, case.features))
        assert_within_model("jit y", jit_contract(case.seed, x, case.features), eager, bound, "eager")


@given_data(0.5)
def test_jit_init_apply_matches_eager(device, data):
    case = draw_case(data, device, batched=None)
    check = """
    from conformance.helpers.pytest_helpers import assert_inits_within_model
    m = linen_module(x.shape[-1], int(features))
    assert_inits_within_model("jit variables", jax.jit(m.init)(prng_key(seed), x), variables, "eager init")
    assert_product_close("jit apply", jax.jit(m.apply)(variables, x), m.apply(variables, x), x, variables, what="eager apply")
    """
    with numerics(case), reporting("jit(init), jit(apply) == eager", case, check):
        x, variables, _ = observe(case)
        eager_vars = init_variables(case.seed, x, case.features)
        assert_inits_within_model("jit variables", variables, eager_vars, "eager init")
        eager_y = linen_module(case.width, case.features_int).apply(eager_vars, x)
        apply = jit_apply(case.width, case.features_int)
        assert_within_model("jit apply", apply(eager_vars, x), eager_y, outputs_same_params(x, eager_vars), "eager apply")
        # A cached call must not trace or compile again.
        before = apply._cache_size()
        apply(eager_vars, x)
        assert apply._cache_size() == before, "jit(apply) re-traced a call with the same shapes and dtypes"
