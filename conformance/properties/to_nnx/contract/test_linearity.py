"""Linearity in x through ToNNX: f(a*x + b*y) ~= a*f(x) + b*f(y) for one model."""

import numpy as np

from conformance.helpers import harness_nnx
from conformance.helpers.harness import given_data, linearity_bound, numerics, place
from conformance.helpers.hypothesis_helpers import draw_case, draw_exact_combination
from conformance.helpers.pytest_helpers import assert_close, reporting


@given_data(rotation="test_linear_in_x")
def test_tonnx_linear_in_x(device, data):
    case = draw_case(data, device, batched=None, kinds=("integers",), direction=harness_nnx.DIRECTION)
    y_spec, a, b, xv, yv, zv = draw_exact_combination(data, case)
    check = f"""
    from conformance.helpers.harness import linearity_bound
    a, b = {a}, {b}
    q = lambda v: v if np.issubdtype(v.dtype, np.integer) else (v.astype(np.float64) / 4).astype(v.dtype)  # the quarter grid
    xv, yv = q(np.asarray(x)), q({y_spec.code()})
    zv = (a * xv.astype(np.float64) + b * yv.astype(np.float64)).astype(xv.dtype)  # exact
    f = lambda v: np.asarray(model(jax.device_put(v, x.devices().pop())), np.float64)  # one model, three inputs
    fx, fy = f(xv), f(yv)
    assert_close("f(a*x + b*y)", f(zv), a * fx + b * fy, linearity_bound(xv, yv, zv, a, b, fx, fy, variables), "a*f(x) + b*f(y)")
    """
    with numerics(case), reporting("ToNNX linearity in x", case, check):
        _, params, fx = harness_nnx.observe(case, place(xv, device))
        _, _, fy = harness_nnx.observe(case, place(yv, device))
        _, _, fz = harness_nnx.observe(case, place(zv, device))
        expected = a * np.asarray(fx, np.float64) + b * np.asarray(fy, np.float64)
        assert_close("f(a*x + b*y)", fz, expected, linearity_bound(xv, yv, zv, a, b, fx, fy, params), "a*f(x) + b*f(y)")
