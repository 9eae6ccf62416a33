"""Gradients through ToNNX: ``nnx.grad`` w.r.t. the model's params matches the analytic gradient of x @ K + b."""

import jax.numpy as jnp
import numpy as np

from conformance.core import config
from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, numerics, param_grad_bounds
from conformance.helpers.hypothesis_helpers import draw_case, x_specs
from conformance.helpers.pytest_helpers import assert_close, reporting
from reference import PARAM_NAMES_NNX, _compat

nnx = _compat.nnx

# d/d(params) of sum(model(x) * c): nnx.grad differentiates the model's nnx.Param state.
nnx_param_grads = nnx.jit(nnx.grad(lambda model, x, c: jnp.sum(model(x) * c)))


@given_data(0.5, rotation="test_grad_wrt_params")
def test_tonnx_nnx_grad_wrt_params(device, data):
    case = draw_case(data, device, dtype_names=config.FLOAT_DTYPES, direction=harness_nnx.DIRECTION)
    spec = data.draw(x_specs(case.features_int, "float32", kinds=("uniform",)), label="cotangent")
    case.extra["cotangent"] = spec.code()
    c = spec.build().astype(np.float64)
    check = f"""
    from conformance.helpers.harness import param_grad_bounds
    c = {spec.code()}.astype(np.float64)  # the cotangent
    g = nnx.to_pure_dict(nnx.grad(lambda m: jnp.sum(m(x) * c.astype(np.float32)))(model))
    expected, bound, bias_bound = param_grad_bounds(x, c)
    assert_close("grad/kernel", g['kernel'], expected, bound, "outer(x, c)")
    assert_close("grad/bias", g['bias'], c, bias_bound, "c")
    """
    with numerics(case), reporting("ToNNX nnx.grad w.r.t. params", case, check):
        x = case_x(case)
        model = nnx.merge(harness_nnx.graphdef(case.width, case.features_int), harness_nnx.init_state(case))
        g = _compat.pure_dict(nnx_param_grads(model, x, np.asarray(c, np.float32)))
        assert sorted(g) == sorted(PARAM_NAMES_NNX), f"nnx.grad gave gradients for {sorted(g)}, but should for {sorted(PARAM_NAMES_NNX)}"
        expected, bound, bias_bound = param_grad_bounds(x, c)
        assert_close("grad/kernel", g["kernel"], expected, bound, "outer(x, c)")
        # d/db sum(y * c) is c itself (1-D x).
        assert_close("grad/bias", g["bias"], c, bias_bound, "c")
