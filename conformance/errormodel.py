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

from conformance import config


def _dtype(d) -> np.dtype:
    if isinstance(d, str):
        from conformance.hypothesis_helpers import np_dtype

        return np_dtype(d)
    return np.dtype(d)


def _finfo(d):
    import ml_dtypes

    return ml_dtypes.finfo(_dtype(d))


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


def ulps(actual, expected, dtype):
    """|actual - expected| in units in the last place of ``expected`` in ``dtype`` (for reports)."""
    fi = _finfo(dtype)
    e = np.abs(np.asarray(expected, np.float64))
    spacing = np.exp2(np.floor(np.log2(np.maximum(e, float(fi.tiny))))) * float(fi.eps)
    return np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64)) / spacing
