"""Gradients: jax.grad w.r.t. params and x matches the analytic gradients of x @ K + b."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from conformance.core import config
from conformance.numerics import errormodel
from conformance.helpers.harness import (
    BIAS, KERNEL, case_x, given_data, init_jit, kernel_bias, leaf, module, numerics, param_grad_bounds, result_dtype,
)
from conformance.helpers.hypothesis_helpers import draw_case, x_specs
from conformance.helpers.pytest_helpers import assert_close, reporting


@functools.lru_cache(maxsize=None)
def grads(width: int, features: int):
    """d/d(params, x) of sum(apply(params, x) * c)."""
    m = module(width, features)
    return jax.jit(jax.grad(lambda v, x, c: jnp.sum(m.apply(v, x) * c), argnums=(0, 1)))


def _cotangent(data, case):
    spec = data.draw(x_specs(case.features_int, "float32", kinds=("uniform",)), label="cotangent")
    case.extra["cotangent"] = spec.code()
    return spec.build().astype(np.float64)


@given_data(0.5)
def test_grad_wrt_params(device, data):
    case = draw_case(data, device, dtype_names=config.FLOAT_DTYPES)
    c = _cotangent(data, case)
    check = f"""
    c = {case.extra["cotangent"]}.astype(np.float64)  # the cotangent
    g = jax.grad(lambda v: jnp.sum(linen_module(x.shape[-1], int(features)).apply(v, x) * c.astype(np.float32)))(variables)
    expected = np.outer(np.asarray(x, np.float64), c)
    acc = jnp.result_type(x.dtype, jnp.float32)  # the accumulation dtype
    product = errormodel.dot_error(1, acc, np.abs(expected))
    bound = product + errormodel.cast_error(acc, "float32", np.abs(expected) + product)
    assert_close("grad/params/linear/kernel", g['params']['linear']['kernel'], expected, bound, "outer(x, c)")
    assert_close("grad/params/linear/bias", g['params']['linear']['bias'], c, errormodel.cast_error(acc, "float32", np.abs(c)), "c")
    """
    with numerics(case), reporting("grad w.r.t. params", case, check):
        x = case_x(case)
        variables = init_jit(case)
        g, _ = grads(case.width, case.features_int)(variables, x, np.asarray(c, np.float32))
        expected, bound, bias_bound = param_grad_bounds(x, c)
        assert_close("grad/params/linear/kernel", leaf(g, KERNEL), expected, bound, "outer(x, c)")
        assert_close("grad/params/linear/bias", leaf(g, BIAS), c, bias_bound, "c")


@given_data(0.5)
def test_grad_wrt_x(device, data):
    case = draw_case(data, device, dtype_names=config.FLOAT_DTYPES)
    c = _cotangent(data, case)
    check = f"""
    c = {case.extra["cotangent"]}.astype(np.float64)  # the cotangent
    gx = jax.grad(lambda x: jnp.sum(linen_module(x.shape[-1], int(features)).apply(variables, x) * c.astype(np.float32)))(x)
    k = np.asarray(variables['params']['linear']['kernel'], np.float64)
    expected = k @ c
    acc, mag = jnp.result_type(x.dtype, jnp.float32), np.abs(k) @ np.abs(c)
    product = errormodel.dot_error(int(features), acc, mag)
    bound = product + errormodel.cast_error(acc, x.dtype, mag + product)
    assert gx.dtype == x.dtype, f"grad.dtype={{gx.dtype}}, but should be {{x.dtype}}"
    assert_close("grad/x", gx, expected, bound, "kernel @ c")
    """
    with numerics(case), reporting("grad w.r.t. x", case, check):
        x = case_x(case)
        variables = init_jit(case)
        _, gx = grads(case.width, case.features_int)(variables, x, np.asarray(c, np.float32))
        k = np.asarray(kernel_bias(variables)[0], np.float64)
        expected = k @ c
        # A length-features product in the accumulation dtype, then one rounding into x's dtype
        # (its floor covers subnormal float16 gradients, and devices that flush them).
        acc = result_dtype(x.dtype)
        mag = np.abs(k) @ np.abs(c)
        product = errormodel.dot_error(case.features_int, acc, mag)
        bound = product + errormodel.cast_error(acc, x.dtype, mag + product)
        assert gx.dtype == x.dtype, f"grad.dtype={gx.dtype}, but should be {x.dtype} (the dtype of x)"
        assert_close("grad/x", gx, expected, bound, "kernel @ c")
