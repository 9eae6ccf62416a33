"""The contracts' argument checks, shared by both directions: a ValueError or TypeError naming the argument and its domain.

Checked before anything reaches flax (the domains: ``reference/__init__.py``).
"""

from __future__ import annotations

import math
import numbers

import jax
import numpy as np

from conformance.core import config


def _integral(name: str, value, lo: int, hi: int) -> int:
    domain = f"an integer in [{lo}, {hi}] (int, integral float or NumPy scalar)"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {domain}; got bool {value!r}")
    if isinstance(value, (np.ndarray, jax.Array)) and getattr(value, "ndim", None) == 0:
        if isinstance(value, jax.core.Tracer):
            raise TypeError(f"{name} must be {domain} known at trace time; got a traced value (mark it static)")
        value = np.asarray(value)[()]
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {domain}; got {type(value).__name__} {value!r}")
    if isinstance(value, (numbers.Integral, np.integer)):
        as_int = int(value)
    else:
        as_float = float(value)
        if not math.isfinite(as_float):
            raise ValueError(f"{name} must be {domain}; got non-finite {value!r}")
        if not as_float.is_integer():
            raise ValueError(f"{name} must be {domain}; got non-integral {value!r}")
        as_int = int(as_float)
    if not lo <= as_int <= hi:
        raise ValueError(f"{name} must be {domain}; got {value!r}, outside the domain")
    return as_int


def check_seed(seed) -> int:
    """The seed as a Python int, or a ValueError/TypeError naming its domain."""
    return _integral("seed", seed, config.SEED_MIN, config.SEED_MAX)


def check_features(features) -> int:
    """The feature count as a Python int, or a ValueError/TypeError naming its domain."""
    return _integral("features", features, config.FEATURES_MIN, config.FEATURES_MAX)


def check_x(x):
    """``x`` unchanged if it is a valid input, else a ValueError/TypeError."""
    domain = "a JAX or NumPy array of a real numeric dtype with at least one axis and a non-empty last axis"
    if not isinstance(x, (jax.Array, np.ndarray)):
        raise TypeError(f"x must be {domain}; got {type(x).__name__}")
    dtype = np.dtype(x.dtype)
    if dtype == np.bool_ or not (jax.numpy.issubdtype(dtype, np.integer) or jax.numpy.issubdtype(dtype, np.floating)):
        raise TypeError(f"x must be {domain}; got dtype {dtype.name}")
    if x.ndim == 0:
        raise ValueError(f"x must be {domain}; got a 0-d array")
    if x.shape[-1] == 0:
        raise ValueError(f"x must be {domain}; got shape {tuple(x.shape)} with a zero-width last axis")
    return x
