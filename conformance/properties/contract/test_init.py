"""Initialisation: bias is zero; the kernel follows nnx.Linear's default, lecun_normal.

lecun_normal is variance_scaling(1, "fan_in", "truncated_normal"): a standard
normal truncated to [-2, 2], scaled to variance 1 / width. Pooled over a batch
of seeds, the standardised kernel's mean, variance and fourth moment are
tested at INIT_STAT_SIGMAS standard errors, and its support exactly.
"""

import math

import numpy as np

from conformance.core import config
from conformance.numerics import errormodel
from conformance.helpers.harness import (
    BIAS, KERNEL, case_x, dummy_x, given_data, init_jit, jit_init_many, leaf, numerics, observe,
    seed_array,
)
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_equal, assert_inits_within_model, reporting
from conformance.properties.contract.test_seeds import seed_batch

def truncated_normal_moments(a: float = config.INIT_TRUNCATION, orders=(2, 4, 8)) -> dict:
    """Raw moments E[Z^k] of a standard normal truncated to [-a, a] (k even)."""
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))
    moments = {0: 1.0}
    for k in range(2, max(orders) + 1, 2):  # E[Z^k] = (k-1) E[Z^(k-2)] - 2 a^(k-1) phi / mass
        moments[k] = (k - 1) * moments[k - 2] - 2 * a ** (k - 1) * phi / mass
    return moments


MOMENTS = truncated_normal_moments()
# Standardised to unit variance: z = kernel * sqrt(width).
M4 = MOMENTS[4] / MOMENTS[2] ** 2
M8 = MOMENTS[8] / MOMENTS[2] ** 4
SUPPORT = config.INIT_TRUNCATION / math.sqrt(MOMENTS[2])
# The clipped sample times sigma: sigma takes 4 float32 roundings, the product one.
SUPPORT_BOUND = SUPPORT * (1 + errormodel.gamma(5, "float32"))


@given_data(0.5)
def test_bias_is_zero(device, data):
    case = draw_case(data, device, batched=None)
    with numerics(case), reporting("bias is zero at init", case, "assert (variables['params']['linear']['bias'] == 0).all(), variables['params']['linear']['bias']"):
        _, variables, _ = observe(case)
        bias = np.asarray(leaf(variables, BIAS))
        assert_equal("params/linear/bias", bias, np.zeros_like(bias), "zeros")


@given_data(0.5)
def test_init_ignores_x(device, data):
    """Params depend on seed and shapes only: pipelines initialise with a dummy batch."""
    case = draw_case(data, device, batched=None)
    check = """
    zeros = jax.device_put(np.zeros(x.shape[-1], np.float32), x.devices().pop())
    assert_trees_equal("variables (init with x)", variables, init_variables(seed, zeros, features), "init with float32 zeros of x's width")
    """
    with numerics(case), reporting("init ignores x's values, dtype and batch shape", case, check):
        # Another input is another program: its sampler may compile differently, within the model.
        assert_inits_within_model(
            "variables (init with x)", init_jit(case, case_x(case)), init_jit(case),
            "variables (init with float32 zeros of x's width)",
        )


@given_data(0.25)
def test_kernel_distribution(device, data):
    case = draw_case(data, device, min_cells=config.INIT_STAT_MIN_CELLS, dtype_names=("float32",))
    seeds = np.resize(seed_batch(case.seed_int, config.SEED_BATCH), config.SEED_BATCH)
    case.extra["seeds"] = f"seed_batch({case.seed_int}, {config.SEED_BATCH})"
    check = f"""
    from conformance.properties.contract.test_init import assert_lecun_normal
    from conformance.properties.contract.test_seeds import seed_batch
    seeds = np.resize(seed_batch({case.seed_int}, {config.SEED_BATCH}), {config.SEED_BATCH})
    z = np.concatenate([np.asarray(init_variables(int(s), x, features)['params']['linear']['kernel'], np.float64).ravel() for s in seeds])
    assert_lecun_normal(z * np.sqrt(x.shape[-1]), x.shape[-1])
    """
    with numerics(case), reporting("kernel ~ lecun_normal", case, check):
        variables = jit_init_many(case.width, case.features_int)(seeds.astype(seed_array(0).dtype), dummy_x(case))
        z = np.asarray(leaf(variables, KERNEL), np.float64).ravel() * math.sqrt(case.width)
        assert_lecun_normal(z, case.width)


def assert_lecun_normal(z, width: int):
    """Pooled standardised kernel cells ``z`` (kernel * sqrt(width)): moments and support of lecun_normal."""
    __tracebackhide__ = True
    n, s = z.size, config.INIT_STAT_SIGMAS
    checks = {
        "mean": (z.mean(), 0.0, math.sqrt(1.0 / n)),
        "variance": ((z**2).mean(), 1.0, math.sqrt((M4 - 1.0) / n)),
        "fourth moment": ((z**4).mean(), M4, math.sqrt((M8 - M4**2) / n)),
    }
    for name, (got, want, se) in checks.items():
        assert abs(got - want) <= s * se, (
            f"standardised kernel {name}={got:.5f}, but should be {want:.5f} +- {s} x {se:.2e} "
            f"(lecun_normal over {n} cells, width {width})"
        )
    top = float(np.abs(z).max())
    assert top <= SUPPORT_BOUND, f"max |kernel| * sqrt(width)={top:.6f}, but truncation bounds it by {SUPPORT_BOUND:.6f}"
