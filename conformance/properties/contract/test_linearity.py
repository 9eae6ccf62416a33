"""Linearity in x: f(a*x + b*y) ~= a*f(x) + b*f(y) for one seed, and f(0) == 0."""

import numpy as np

from conformance.helpers.harness import given_data, linearity_bound, numerics, observe, place
from conformance.helpers.hypothesis_helpers import draw_case, draw_exact_combination
from conformance.helpers.pytest_helpers import assert_close, assert_equal, reporting


@given_data()
def test_linear_in_x(device, data):
    case = draw_case(data, device, batched=None, kinds=("integers",))
    y_spec, a, b, xv, yv, zv = draw_exact_combination(data, case)
    check = f"""
    a, b = {a}, {b}
    q = lambda v: v if np.issubdtype(v.dtype, np.integer) else (v.astype(np.float64) / 4).astype(v.dtype)  # the quarter grid
    xv, yv = q(np.asarray(x)), q({y_spec.code()})
    zv = (a * xv.astype(np.float64) + b * yv.astype(np.float64)).astype(xv.dtype)  # exact
    from conformance.helpers.harness import affine_bound
    f = lambda v: np.asarray(nnx_inside_linen(seed, jax.device_put(v, x.devices().pop()), features), np.float64)
    k, bias = (np.abs(np.asarray(variables['params']['linear'][n], np.float64)) for n in ('kernel', 'bias'))
    mag_x, mag_y, mag_z = (np.abs(v.astype(np.float64)) @ k + bias for v in (xv, yv, zv))
    fx, fy = f(xv), f(yv)
    bound = (affine_bound(zv, mag_z) + abs(a) * affine_bound(xv, mag_x) + abs(b) * affine_bound(yv, mag_y)
             + 2 * errormodel.rounding_error("float64", np.abs(a * fx) + np.abs(b * fy)))  # three products, two roundings
    assert_close("f(a*x + b*y)", f(zv), a * fx + b * fy, bound, "a*f(x) + b*f(y)")
    """
    with numerics(case), reporting("linearity in x", case, check):
        _, vx, fx = observe(case, place(xv, device))
        _, _, fy = observe(case, place(yv, device))
        _, _, fz = observe(case, place(zv, device))
        expected = a * np.asarray(fx, np.float64) + b * np.asarray(fy, np.float64)
        bound = linearity_bound(xv, yv, zv, a, b, fx, fy, vx)
        assert_close("f(a*x + b*y)", fz, expected, bound, "a*f(x) + b*f(y)")


@given_data(0.5)
def test_zero_maps_to_zero(device, data):
    case = draw_case(data, device, batched=None, kinds=("zeros",))
    with numerics(case), reporting("f(0) == 0", case, "assert (y == 0).all(), y"):
        _, _, y = observe(case)
        assert_equal("f(0)", np.asarray(y) == 0, np.ones(y.shape, bool), "all zero")
