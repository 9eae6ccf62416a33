"""jit equivalence: the whole contract, and init/apply separately, match eager within a few ulp."""

import jax
import numpy as np

from conformance.harness import case_x, given_data, jit_apply, kernel_bias, numerics, observe, oracle
from conformance.hypothesis_helpers import draw_case
from conformance.pytest_helpers import assert_close, reporting, tree_paths, ulp_bound
from reference import init_variables, linen_module, nnx_inside_linen

# The whole contract with seed and features static, as a user would jit it.
jit_contract = jax.jit(nnx_inside_linen, static_argnums=(0, 2))


def _assert_params_close(name, actual, expected):
    __tracebackhide__ = True
    a, e = tree_paths(actual), tree_paths(expected)
    assert a.keys() == e.keys(), f"{name} leaves {sorted(a)}, but should be {sorted(e)}"
    for path, value in e.items():
        assert_close(f"{name}/{path}", a[path], value, ulp_bound(value.dtype, np.abs(np.asarray(value, np.float64))), "eager")


@given_data(0.25)
def test_jit_whole_matches_eager(device, data):
    case = draw_case(data, device, batched=None)
    check = """
    y_jit = jax.jit(nnx_inside_linen, static_argnums=(0, 2))(seed, x, features)
    assert_product_close("jit y", y_jit, y, x, variables, ulps=True, what="eager")
    """
    with numerics(case), reporting("jit(whole contract) == eager", case, check):
        x = case_x(case)
        eager = nnx_inside_linen(case.seed, x, case.features)
        _, mag = oracle(x, *kernel_bias(init_variables(case.seed, x, case.features)))
        assert_close("jit y", jit_contract(case.seed, x, case.features), eager, ulp_bound(eager.dtype, mag), "eager")


@given_data(0.5)
def test_jit_init_apply_matches_eager(device, data):
    case = draw_case(data, device, batched=None)
    check = """
    m = linen_module(x.shape[-1], int(features))
    v_jit = jax.jit(m.init)(prng_key(seed), x)
    for path in ('kernel', 'bias'):
        e = np.asarray(variables['params']['linear'][path], np.float64)
        assert_close(f"jit variables/params/linear/{path}", v_jit['params']['linear'][path], e, 4 * np.finfo(np.float32).eps * np.abs(e), "eager")
    assert_product_close("jit apply", jax.jit(m.apply)(variables, x), m.apply(variables, x), x, variables, ulps=True, what="eager apply")
    """
    with numerics(case), reporting("jit(init), jit(apply) == eager", case, check):
        x, variables, _ = observe(case)
        eager_vars = init_variables(case.seed, x, case.features)
        _assert_params_close("jit variables", variables, eager_vars)
        eager_y = linen_module(case.width, case.features_int).apply(eager_vars, x)
        _, mag = oracle(x, *kernel_bias(eager_vars))
        apply = jit_apply(case.width, case.features_int)
        assert_close("jit apply", apply(eager_vars, x), eager_y, ulp_bound(eager_y.dtype, mag), "eager apply")
        # A cached call must not trace or compile again.
        before = apply._cache_size()
        apply(eager_vars, x)
        assert apply._cache_size() == before, "jit(apply) re-traced a call with the same shapes and dtypes"
