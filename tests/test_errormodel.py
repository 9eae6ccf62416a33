"""The error model: its constants, its bounds against exhaustive checks, and the three outcomes."""

import math

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from scipy import special

from conformance.selfcheck import benign
from conformance.core import config
from conformance.numerics import drift
from conformance.numerics import errormodel
from conformance.helpers.pytest_helpers import assert_within_model


def test_unit_roundoff_and_floor_per_dtype():
    assert errormodel.unit_roundoff("float32") == 2.0**-24
    assert errormodel.unit_roundoff("bfloat16") == 2.0**-8
    assert errormodel.unit_roundoff("float16") == 2.0**-11
    assert errormodel.unit_roundoff("float64") == 2.0**-53
    assert errormodel.floor("float16") == 2.0**-14
    assert errormodel.floor("float32") == 2.0**-126


def test_gamma_is_highams_and_refuses_meaningless_n():
    u = 2.0**-24
    assert errormodel.gamma(100, "float32") == pytest.approx(100 * u / (1 - 100 * u))
    assert errormodel.gamma(0, "float32") == 0.0
    with pytest.raises(ValueError, match="no significant bit"):
        errormodel.gamma(300, "bfloat16")


def test_integer_results_are_exact():
    assert np.all(errormodel.dot_error(10, "int32", np.ones(3)) == 0)
    assert np.all(errormodel.cast_error("float32", "float64", np.ones(3)) == 0)
    assert np.all(errormodel.cast_error("float64", "float32", np.ones(3)) > 0)


@pytest.mark.parametrize("n", [1, 17, 256, 512])
def test_dot_bound_holds_for_every_summation_order(n):
    """Sequential, reversed, pairwise and fused orders of float32 dot products all stay inside gamma_n."""
    rng = np.random.default_rng(n)
    x = rng.uniform(-8, 8, (200, n)).astype(np.float32)
    k = rng.standard_normal((n,)).astype(np.float32)
    exact = x.astype(np.float64) @ k.astype(np.float64)
    bound = errormodel.dot_error(n, "float32", np.abs(x.astype(np.float64)) @ np.abs(k.astype(np.float64)))
    orders = {
        "sequential": lambda: np.add.accumulate(x * k, axis=1, dtype=np.float32)[:, -1],
        "reversed": lambda: np.add.accumulate((x * k)[:, ::-1], axis=1, dtype=np.float32)[:, -1],
        "numpy": lambda: x @ k,
        "xla": lambda: np.asarray(jax.jit(lambda a, b: a @ b)(x, k)),
    }
    for name, run in orders.items():
        err = np.abs(run().astype(np.float64) - exact)
        assert np.all(err <= bound), f"{name}: error {err.max():.3e} beyond the model"


def test_special_functions_meet_the_accuracy_the_sampler_model_budgets():
    """erf and erfinv of the installed jax, float32, over the truncated normal's whole range."""
    u = errormodel.unit_roundoff("float32")
    a = math.erf(config.INIT_TRUNCATION / math.sqrt(2))
    grid = np.linspace(-a, a, 400_001).astype(np.float32)
    got = np.asarray(jax.jit(jax.lax.erf_inv)(grid), np.float64)
    want = special.erfinv(grid.astype(np.float64))
    nz = want != 0
    worst = (np.abs(got - want)[nz] / np.abs(want[nz])).max() / u
    assert worst <= config.SPECIAL_FUNCTION_ULPS, f"erfinv relative error {worst:.2f} u > {config.SPECIAL_FUNCTION_ULPS} u"
    t = np.linspace(-config.INIT_TRUNCATION, config.INIT_TRUNCATION, 100_001).astype(np.float32)
    got = np.asarray(jax.jit(jax.lax.erf)(t), np.float64)
    want = special.erf(t.astype(np.float64))
    nz = want != 0
    worst = (np.abs(got - want)[nz] / np.abs(want[nz])).max() / u
    assert worst <= config.SPECIAL_FUNCTION_ULPS, f"erf relative error {worst:.2f} u > {config.SPECIAL_FUNCTION_ULPS} u"


def test_sampler_model_covers_a_one_ulp_uniform_and_is_largest_at_the_tails():
    """Re-deriving samples from uniforms one ulp apart stays inside the model; the bound grows with |z|."""
    sigma = errormodel.lecun_sigma(64)
    a = math.erf(math.sqrt(2))
    u = np.linspace(-a, a, 10_001).astype(np.float32)
    up = np.nextafter(u, np.float32(np.inf))
    z = lambda v: np.asarray(jnp.sqrt(np.float32(2)) * jax.lax.erf_inv(v), np.float64) * sigma  # noqa: E731
    k1, k2 = z(u), z(up)
    bound = errormodel.sampler_difference(k1, sigma)
    assert np.all(np.abs(k2 - k1) <= bound)
    assert bound[0] > 5 * bound[len(bound) // 2]  # conditioning: exp(z^2 / 2) at the truncation


def test_affine_difference_adds_the_params_difference():
    x = np.array([1.0, -2.0], np.float32)
    k = np.ones((2, 3), np.float32)
    b = np.zeros(3, np.float32)
    base = errormodel.affine_difference(x, k, b, np.zeros_like(k), np.zeros_like(b), np.float32)
    more = errormodel.affine_difference(x, k, b, np.full_like(k, 1e-3), np.zeros_like(b), np.float32)
    assert np.allclose(more - base, 3e-3, rtol=1e-3)


def test_three_outcomes_and_drift_records():
    drift.reset()
    y = np.float32([1.0, -2.0, 0.5])
    assert assert_within_model("y", y, y.copy(), 0.0) == "identical"
    moved = np.nextafter(y, np.float32(np.inf))
    assert assert_within_model("y", moved, y, errormodel.rounding_error("float32", np.abs(y)) * 2) == "drift"
    with pytest.raises(AssertionError, match="changed beyond the error model"):
        assert_within_model("y", y * 1.001, y, errormodel.rounding_error("float32", np.abs(y)))
    d = drift.summary()
    assert d["comparisons"] == 2 and d["drifted"] == 1 and d["worst"] == "y"
    assert d["max_ulps"] == pytest.approx(1.0, abs=1e-9)
    assert drift.from_properties([(drift.PROPERTY, __import__("json").dumps(d))]) == d


def test_float16_subnormal_gradient_is_inside_the_floor():
    """The case the random profile found: a float16 gradient of -6.4e-6 (subnormal) off by 1.08e-8."""
    bound = errormodel.cast_error("float32", "float16", np.array([6.4e-6]))
    assert bound[0] >= 1.08e-8


def test_benign_corpus_is_registered_and_validated():
    assert {"sampler_ulp_under_jit", "sampler_ulp_everywhere", "product_reordered_under_jit", "batched_last_bit",
            "second_device_rounds_differently", "bias_fma_under_jit"} <= set(benign.PERTURBATIONS)
    with pytest.raises(ValueError, match="--perturb must be one of"):
        benign.install("no_such_perturbation")


def test_fused_bias_keeps_the_product_exact_and_differentiates_like_an_fma():
    """The FMA imitation: s + a*c with the product exact (the sum rounds twice: (s + p) + e), and the derivative
    ds + c*da + a*dc exactly, whatever the compiler does to the splitting (XLA on GPU contracts it)."""
    rng = np.random.default_rng(3)
    s, a, c = (rng.normal(size=(1, 4)).astype(np.float32), rng.normal(size=(1, 1)).astype(np.float32),
               rng.normal(size=(4,)).astype(np.float32))  # one row: dc = a * ct, no sum over rows
    fma = benign._fma()
    exact = s.astype(np.float64) + a.astype(np.float64) * c.astype(np.float64)
    err = np.abs(np.asarray(jax.jit(fma)(s, a, c), np.float64) - exact)
    assert np.all(err <= 2 * 2.0 ** -24 * np.abs(exact)), err / np.abs(exact)
    ct = rng.normal(size=(1, 4)).astype(np.float32)
    ds, da, dc = jax.jit(jax.grad(lambda s, a, c: jnp.sum(fma(s, a, c) * ct), argnums=(0, 1, 2)))(s, a, c)
    np.testing.assert_array_equal(np.asarray(ds), ct)
    terms = ct.astype(np.float64) * c
    assert np.all(np.abs(np.asarray(da, np.float64) - terms.sum(-1)) <= errormodel.gamma(4, "float32") * np.abs(terms).sum(-1))
    np.testing.assert_array_equal(np.asarray(dc), (a * ct)[0])


@pytest.mark.parametrize("offset", [0.0, -1.0, 3.0, 100.0])
def test_batch_moments_bound_holds_for_both_variance_formulas(offset):
    """float32 mean, fast variance E[x^2] - E[x]^2 and two-pass variance, against float64."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((8, 16)) + offset).astype(np.float32)
    x64 = x.astype(np.float64)
    mu64, var64 = x64.mean(axis=0), x64.var(axis=0)
    e_mean, e_var = errormodel.batch_moments_error(x)
    mu = x.mean(axis=0, dtype=np.float32)
    fast = np.maximum((x * x).mean(axis=0, dtype=np.float32) - mu * mu, np.float32(0))
    two_pass = ((x - mu) ** 2).mean(axis=0, dtype=np.float32)
    assert np.all(np.abs(mu - mu64) <= e_mean)
    for name, var in (("fast", fast), ("two-pass", two_pass)):
        assert np.all(np.abs(var - var64) <= e_var), f"{name}: {np.abs(var - var64).max():.3e} beyond the model"


def test_momentum_and_sgd_bounds_hold_in_float32():
    rng = np.random.default_rng(3)
    old, stat = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    m = np.float32(0.9)
    exact = 0.9 * old.astype(np.float64) + 0.1 * stat.astype(np.float64)
    for got in (m * old + (np.float32(1) - m) * stat, old + (np.float32(1) - m) * (stat - old)):
        assert np.all(np.abs(got - exact) <= errormodel.momentum_error(0.9, old, stat, 0.0, 0.0))
    p, g = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    exact = p.astype(np.float64) - 0.1 * g.astype(np.float64)
    assert np.all(np.abs((p - np.float32(0.1) * g) - exact) <= errormodel.sgd_step_error(p, 0.1, g))


def test_composition_difference_scales_with_the_accumulation_and_the_output():
    one = errormodel.composition_difference(100, 1.0)
    assert errormodel.composition_difference(200, 1.0) == pytest.approx(2 * one, rel=1e-5)
    assert errormodel.composition_difference(100, 4.0) == pytest.approx(4 * one, rel=1e-5)


def test_ulps_count_the_values_between_across_zero_and_in_every_dtype():
    y = np.float32([1.0, -2.0, 0.5, 0.0, -0.0])
    assert errormodel.ulps(np.nextafter(y, np.float32(np.inf)), y, np.float32).tolist() == [1.0] * 5
    # 7e-7 against an exact zero: the float32 values between, not 7e-7 / (smallest subnormal) = 5e38
    assert errormodel.ulps(np.float32(7e-7), np.float32(0.0), np.float32) < 2.0**31
    assert errormodel.ulps(np.float32(-1e-45), np.float32(1e-45), np.float32) == 2.0
    assert errormodel.ulps(1.0 + 2.0**-52, 1.0, np.float64) == 1.0
    assert errormodel.ulps(np.float16(0.1), np.float16(0.1), "float16") == 0.0
    assert errormodel.ulps(1.0078125, 1.0, "bfloat16") == 1.0
    # float64 values of opposite sign near the ends: about 2**64 values apart, not a wrapped int64
    assert errormodel.ulps(-1e300, 1e300, np.float64) > 2.0**63


@pytest.mark.parametrize("leaf", [np.int32(7), np.array(True), np.array(3, np.int64), np.zeros((), np.float32),
                                  np.array([1.5, -2.0], ml_dtypes.bfloat16), np.arange(4, dtype=np.int8)])
def test_every_leaf_kind_compares_without_a_crash(leaf):
    """0-d, integer, boolean and bfloat16 leaves: identical to themselves, changed when they differ."""
    a = np.asarray(leaf)
    assert assert_within_model("leaf", a, a.copy(), np.zeros(a.shape)) == "identical"
    other = (~a if a.dtype == bool else (a + 1).astype(a.dtype))
    with pytest.raises(AssertionError, match="changed beyond the error model"):
        assert_within_model("leaf", other, a, np.zeros(a.shape))


def test_drift_counts_in_the_dtype_computed_in():
    """A float32 neighbour read back from a float64 record is 1 ulp when compared in float32, not ~5e8."""
    drift.reset()
    y = np.float32([0.1, 3.0])
    moved = np.nextafter(y, np.float32(np.inf))
    assert assert_within_model("y", moved, y, np.abs(y) * 1e-6) == "drift"
    assert drift.summary()["max_ulps"] == pytest.approx(1.0)
    ulps64 = errormodel.ulps(moved.astype(np.float64), y.astype(np.float64), np.float64).max()
    assert ulps64 > 1e8  # what a float64 count would have said
