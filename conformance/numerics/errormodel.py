"""The error model: every numerical bound the suite applies, derived from the computation.

Floating-point facts used throughout (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., ch. 2-3):

* one rounding into dtype ``d`` of a value ``v``: ``|fl(v) - v| <= u_d |v| + floor_d``,
  with ``u_d`` the unit roundoff (half the machine epsilon) and ``floor_d`` the
  smallest normal number of ``d``. The floor covers gradual underflow (at most
  half a subnormal spacing) and flush-to-zero devices (at most ``floor_d``);
* a sum of ``n`` products (a length-``n`` dot product), in any order, with or
  without fused multiply-adds, accumulated in dtype ``a``:
  ``|fl(x.y) - x.y| <= gamma_n(a) |x|.|y| + n floor_a``, ``gamma_n = n u / (1 - n u)``;
* the same computation done twice (jit and eager, two devices, two releases)
  differs by at most the sum of the two errors.

Magnitudes (``|x| @ |K| + |b|``) are computed in float64 by the caller, so a
bound scales with the data and never with the result's own size: a result
near zero from cancellation keeps an honest absolute bound.

Sampled parameters are bounded by the sampler's conditioning instead: see
:func:`sampler_difference`. docs/error-model.md gives every bound, its
derivation, and how it compares with the tolerances it replaced.
"""

from __future__ import annotations

import math

import numpy as np

from conformance.core import config
from conformance.numerics.dtypes import np_dtype


def _dtype(d) -> np.dtype:
    if isinstance(d, str):
        return np_dtype(d)
    return np.dtype(d)


def _finfo(d):
    import ml_dtypes

    return ml_dtypes.finfo(_dtype(d))


def mantissa_bits(dtype) -> int:
    """Explicit mantissa bits (23 for float32, 7 for bfloat16), through ml_dtypes: older NumPy has no finfo of bfloat16."""
    return int(_finfo(dtype).nmant)


def unit_roundoff(dtype) -> float:
    """u: 2**-24 for float32, 2**-8 for bfloat16, 2**-11 for float16, 2**-53 for float64."""
    return float(_finfo(dtype).eps) / 2


def floor(dtype) -> float:
    """The smallest normal number: the absolute error one rounding may add near zero (underflow or flush)."""
    return float(_finfo(dtype).tiny)


def is_exact(dtype) -> bool:
    """Integer and bool results are exact: their bound is zero."""
    d = _dtype(dtype)
    return d == np.bool_ or np.issubdtype(d, np.integer)


def gamma(n: int, dtype) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error of n roundings in ``dtype``."""
    if n <= 0:
        return 0.0
    nu = n * unit_roundoff(dtype)
    if nu >= 1:
        raise ValueError(f"n={n} roundings in {_dtype(dtype).name} leave no significant bit (n*u={nu:.3g} >= 1)")
    return nu / (1 - nu)


def accumulation_dtype(*dtypes) -> np.dtype:
    """JAX's promotion of the operands: the dtype a product of them is computed and accumulated in."""
    import jax.numpy as jnp

    return np.dtype(jnp.result_type(*dtypes))


def dot_error(n: int, acc, magnitude):
    """A sum of ``n`` products (and additions) accumulated in ``acc``: gamma_n(acc) |x|.|y| + n floor(acc)."""
    if is_exact(acc):
        return np.zeros_like(np.asarray(magnitude, np.float64))
    return gamma(n, acc) * np.asarray(magnitude, np.float64) + n * floor(acc)


def affine_error(width: int, acc, magnitude):
    """``x @ K + b`` over ``width`` inputs: ``width`` products and one more addition, gamma_{width+1}."""
    return dot_error(width + 1, acc, magnitude)


def rounding_error(dtype, magnitude):
    """One rounding of a value of size ``magnitude`` into ``dtype`` (zero for integers)."""
    if is_exact(dtype):
        return np.zeros_like(np.asarray(magnitude, np.float64))
    return unit_roundoff(dtype) * np.asarray(magnitude, np.float64) + floor(dtype)


def cast_error(src, dst, magnitude):
    """Rounding a ``src`` value into ``dst``: none when ``dst`` holds every ``src`` value."""
    s, d = _dtype(src), _dtype(dst)
    if s == d or is_exact(d) or (not is_exact(s) and unit_roundoff(d) <= unit_roundoff(s) and floor(d) <= floor(s)):
        return np.zeros_like(np.asarray(magnitude, np.float64))
    return rounding_error(d, magnitude)


# --- sampled parameters ---------------------------------------------------------------------
#
# lecun_normal draws z = sqrt(2) erfinv(U) with U = f (b - a) + a, f uniform in
# [0, 1) from random bits (exact), a = erf(-sqrt(2)), b = erf(sqrt(2)), then
# clips z to (-2, 2) and scales it by sigma = sqrt(1 / fan_in) / 0.8796...
# The random bits are integers: two compilations draw the same bits, so
# they differ only by rounding inside this float chain and by the accuracy of
# erf and erfinv. Per realisation, with e = config.SPECIAL_FUNCTION_ULPS * u:
#   U:  a and b each within e (erf); b - a, the product and the sum one rounding
#       each: |dU| <= |a| (3 e + 2 gamma_1 + u) =: E_U   (|f| <= 1, |b - a| = 2 |a|)
#   z:  dz/dU = sqrt(pi / 2) exp(z^2 / 2) (erfinv's derivative, times sqrt(2)),
#       plus erfinv's own relative error e and the product by sqrt(2) (u):
#       |dz| <= sqrt(pi / 2) exp(z^2 / 2) E_U + (e + u) |z|
#   k:  k = z sigma, sigma from 1 / fan_in, sqrt, a division and the rounded
#       constant (4 roundings) and the product (1): |dk| <= sigma |dz| + gamma_5 |k|
# Two realisations differ by at most twice that. The clip is 1-Lipschitz.


def _sampler_constants(dtype):
    u = unit_roundoff(dtype)
    e = config.SPECIAL_FUNCTION_ULPS * u
    a = math.erf(config.INIT_TRUNCATION / math.sqrt(2))
    return u, e, a * (3 * e + 2 * gamma(1, dtype) + u)


def lecun_sigma(fan_in: int) -> float:
    """The scale lecun_normal multiplies a standard truncated normal by."""
    return math.sqrt(1.0 / fan_in) / config.TRUNCATED_NORMAL_STD


def sampler_error(values, sigma: float, dtype="float32"):
    """Bound on one realisation's error for each sampled value (truncated normal times ``sigma``)."""
    u, e, e_u = _sampler_constants(dtype)
    k = np.abs(np.asarray(values, np.float64))
    # Evaluate the conditioning at the sample's size, never beyond the truncation.
    z = np.minimum(k / sigma, config.INIT_TRUNCATION)
    dz = math.sqrt(math.pi / 2) * np.exp(z * z / 2) * e_u + (e + u) * z
    return sigma * dz + gamma(5, dtype) * k


def sampler_difference(values, sigma: float, dtype="float32"):
    """Two realisations of the same draw (another compilation, device or release): twice one's error."""
    return 2 * sampler_error(values, sigma, dtype)


# --- results through params -----------------------------------------------------------------


def affine_difference(x, kernel, bias, dkernel, dbias, acc):
    """Two computations of ``x @ K + b`` whose params differ by at most ``dkernel``/``dbias`` elementwise.

    |y1 - y2| <= |x| @ dK + dB (the params' difference, carried exactly by the
    product) + each side's own affine error in the accumulation dtype.
    """
    ax = np.abs(np.asarray(x, np.float64))
    k, b = np.abs(np.asarray(kernel, np.float64)), np.abs(np.asarray(bias, np.float64))
    dk, db = np.asarray(dkernel, np.float64), np.asarray(dbias, np.float64)
    width = k.shape[0]
    own = affine_error(width, acc, ax @ (k + dk) + b + db)
    return ax @ dk + db + 2 * own


# --- the zoo's blocks (conformance/modules/zoo.py) and declared modules ----------------------------------------
#
# Same facts, other computations: each function states its chain of roundings.
# Magnitudes are float64, bounds are for float32 unless a dtype is given.


def batch_moments_error(x, dtype="float32"):
    """Bounds on a batch's mean and biased variance over its N rows, either variance formula.

    mean: an N-term sum and a division, gamma_{N+1} mean|x|.
    var, fast form E[x^2] - E[x]^2: the squares, the N-term sum and the division,
    gamma_{N+3} E[x^2] (the subtraction included); E[x]^2 from the mean's
    error e: 2 |mu| e + e^2. The two-pass mean((x - mu)^2) is inside the same
    bound; clipping at 0 only helps.
    """
    x64 = np.asarray(x, np.float64)
    n = x64.shape[0]
    abs_mean, sq_mean, mu = np.abs(x64).mean(axis=0), (x64 ** 2).mean(axis=0), x64.mean(axis=0)
    e_mean = gamma(n + 1, dtype) * abs_mean + (n + 1) * floor(dtype)
    e_var = gamma(n + 3, dtype) * sq_mean + 2 * np.abs(mu) * e_mean + e_mean ** 2 + (n + 3) * floor(dtype)
    return e_mean, e_var


def momentum_error(momentum: float, old, stat, old_err, stat_err, dtype="float32"):
    """``m old + (1 - m) stat`` (or ``old + (1 - m) (stat - old)``), with inputs off by ``old_err``, ``stat_err``.

    Either form takes at most 4 roundings per term (m and 1 - m into the dtype,
    the products, the sums): gamma_4 (|old| + |stat|), plus the inputs' errors
    carried through the update's weights.
    """
    return (gamma(4, dtype) * (np.abs(old) + np.abs(stat)) + momentum * np.asarray(old_err, np.float64)
            + (1 - momentum) * np.asarray(stat_err, np.float64) + 4 * floor(dtype))


def sgd_step_error(params, lr: float, grads, dtype="float32"):
    """``p - lr g``: the product and the difference, one rounding each: gamma_2 (|p| + lr |g|)."""
    p, g = np.abs(np.asarray(params, np.float64)), np.abs(np.asarray(grads, np.float64))
    return gamma(2, dtype) * (p + lr * g) + 2 * floor(dtype)


def normalize_affine_error(x, mean, var, eps: float, scale, bias, kernel, lin_bias, dtype="float32"):
    """``linear(batchnorm(x))`` with given statistics: the bound on its float32 result (float64 inputs).

    z = (x - mean) * (scale * rsqrt(var + eps)) + bias: five roundings (the sum,
    the scale product, the difference, the product, the bias) and rsqrt's own
    error (SPECIAL_FUNCTION_ULPS units of u, as for the samplers' erf):
    |dz| <= (gamma_5 + e) |x - mean| r |scale| + u |bias|. Then the affine map
    carries it, |dz| @ |K|, and adds its own gamma_{w+1} (|z| @ |K| + |b|).
    """
    u = unit_roundoff(dtype)
    r = 1.0 / np.sqrt(var + eps)
    z = (x - mean) * (scale * r) + bias
    dz = (gamma(5, dtype) + config.SPECIAL_FUNCTION_ULPS * u) * np.abs(x - mean) * r * np.abs(scale) + u * np.abs(bias)
    w = x.shape[-1]
    return dz @ np.abs(kernel) + affine_error(w, dtype, np.abs(z) @ np.abs(kernel) + np.abs(lin_bias)) + 5 * floor(dtype)


def dropout_error(h, magnitude, width: int, keep: float, dtype="float32"):
    """A kept cell ``h / keep`` of a dropout, against ``h`` taken from another compiled program.

    The quotient: fl(h / keep), or fl(h * fl(1 / keep)) where XLA rewrites the
    division: at most two roundings, gamma_2 |h / keep|. The two programs'
    linear outputs differ by at most twice bound 3 (affine_error of
    ``magnitude = |x| @ |K| + |b|``), scaled by 1 / keep.
    """
    h = np.abs(np.asarray(h, np.float64))
    return gamma(2, dtype) * h / keep + 2 * affine_error(width, dtype, magnitude) / keep + floor(dtype)


def scaling_error(value, dtype="float32"):
    """A value divided by a constant (or multiplied by its rounded inverse): two roundings, gamma_2 |v|."""
    return gamma(2, dtype) * np.abs(np.asarray(value, np.float64)) + floor(dtype)


def composition_difference(n: int, scale: float, dtype="float32") -> float:
    """Two evaluations of a declared module (jit and eager, rows and batch, two releases).

    First-order model of a composition whose longest accumulation has ``n``
    terms: each evaluation is within gamma_n of the output's ``scale`` (max |y|)
    plus n floors, so two differ by at most twice that. It assumes what
    normalised blocks (LayerNorm, BatchNorm) ensure: intermediates near the
    output's scale. ``n`` is the declared ``ModuleSpec.accumulation`` or, as an
    upper bound on any single accumulation, the module's parameter count.
    """
    return 2 * (gamma(n, dtype) * float(scale) + n * floor(dtype))


def running_difference(bound):
    """Two evaluations of one computation (jit and eager, rows and batch), each within ``bound`` of the exact value.

    ``bound`` is the first-order running-error bound E of running_error.py,
    evaluated at one side's computed values. Each side is within E + O(u^2)
    of the exact value, so the two differ by at most 2 E, times the slack
    config.RUNNING_ERROR_SLACK for the dropped second-order terms and E's own
    rounding: both are relative O(n u) of E, under 1/2 while n u < 1/4 (the
    contraction lengths of the suite's layers keep n u below 1e-3).
    """
    return 2 * config.RUNNING_ERROR_SLACK * np.asarray(bound, np.float64)


def ulps(actual, expected, dtype):
    """How many ``dtype`` values lie from ``expected`` to ``actual`` (1: neighbours), for reports.

    Counted on the ordered bit patterns, so it stays meaningful across zero and
    in the subnormal range (at most 2**bits), where a spacing taken at
    ``expected`` would divide by the smallest subnormal.
    """
    d = _dtype(dtype)
    if not np.issubdtype(d, np.inexact) and d.kind != "V":  # integers: the difference itself
        return np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    sint = {2: np.int16, 4: np.int32, 8: np.int64}[d.itemsize]
    lowest = np.iinfo(sint).min

    def ordered(x):  # monotone map of the dtype's values onto integers (-0 and +0 coincide)
        i = np.asarray(np.asarray(x, np.float64).astype(d)).view(sint).astype(np.int64)
        return np.where(i < 0, lowest - i, i)

    a, e = ordered(actual), ordered(expected)
    # Exact in int64 where it fits; far apart (opposite signs near the range's ends) the
    # int64 difference would wrap, and a float64 count is exact enough there.
    wide = np.abs(a.astype(np.float64) - e.astype(np.float64))
    return np.where(wide < 2.0**62, np.abs(a - e).astype(np.float64), wide)
