"""The implementations under test: an ``nnx.Linear`` inside a Linen pipeline, and a Linen ``nn.Dense`` inside an NNX model.

``nnx_inside_linen(seed, x, features)`` is the contract of the ``to_linen``
direction; ``linen_inside_nnx(seed, x, features)`` (``reference/linen_in_nnx.py``)
that of the ``ToNNX`` direction, with the same argument checks. The building blocks
below it (argument checks, the wrapped Linen module, its variables) let the
conformance properties reach params without re-implementing the contract.

Argument domains (checked before anything reaches flax):

* ``seed``: an integer in [-2**31, 2**31 - 1], given as int, integral float or
  NumPy scalar. Inside this range distinct seeds give distinct
  ``jax.random.PRNGKey`` values; outside it they collide when x64 is off
  (``PRNGKey(2**32 - 1) == PRNGKey(-1)``). Negative seeds give different keys
  with x64 on and off (a JAX behaviour, see docs/known-deviations.md).
* ``features``: an integer in [1, 2**31 - 1], same accepted types.
* ``x``: a JAX or NumPy array of a real numeric dtype (integer or floating, not
  bool or complex) with at least one axis and a non-empty last axis.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import numpy as np

from conformance.core import config
from reference import _compat

__all__ = [
    "nnx_inside_linen",
    "check_seed",
    "check_features",
    "check_x",
    "prng_key",
    "linen_module",
    "init_variables",
    "FORMS",
    "linen_inside_nnx",
    "linen_dense",
    "nnx_rngs",
    "nnx_model",
    "nnx_params",
]

FORMS = ("closure", "kwargs")


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


def prng_key(seed):
    """``jax.random.PRNGKey`` of a checked seed (a traced int array under jit)."""
    if isinstance(seed, jax.Array):
        return jax.random.PRNGKey(seed)
    return jax.random.PRNGKey(check_seed(seed))


def _linear(module, width: int, features: int, rngs):
    module.linear = _compat.nnx.Linear(in_features=width, out_features=features, rngs=rngs)


@functools.lru_cache(maxsize=None)
def linen_module(width: int, features: int, form: str = "closure"):
    """The Linen module wrapping an ``nnx.Linear(width -> features)``.

    ``closure``: a local class closing over the widths, ``to_linen(Cls)``.
    ``kwargs``: ``to_linen(Cls, out_features=features)`` with a class whose
    ``__init__(self, out_features, rngs)`` receives the count from the bridge.
    Cached, so the same arguments give the same module and jit caches hit.
    """
    nnx = _compat.nnx
    if form == "closure":

        class MyNNX(nnx.Module):
            def __init__(self, rngs):
                _linear(self, width, features, rngs)

            def __call__(self, x):
                return self.linear(x)

        return _compat.to_linen(MyNNX)
    if form == "kwargs":

        class MyNNXKwargs(nnx.Module):
            def __init__(self, out_features, rngs):
                _linear(self, width, out_features, rngs)

            def __call__(self, x):
                return self.linear(x)

        return _compat.to_linen(MyNNXKwargs, out_features=features)
    raise ValueError(f"form must be one of {FORMS}; got {form!r}")


def init_variables(seed, x, features, form: str = "closure"):
    """Linen ``init`` of the wrapped module: the variables a pipeline holds."""
    check_x(x)
    module = linen_module(int(x.shape[-1]), check_features(features), form)
    return module.init(prng_key(seed), x)


def nnx_inside_linen(seed, x, features):
    """``apply(init(PRNGKey(int(seed)), x), x)`` of ``to_linen`` over an ``nnx.Linear``."""
    seed = check_seed(seed)
    features = check_features(features)
    check_x(x)
    module = linen_module(int(x.shape[-1]), features)
    params = module.init(jax.random.PRNGKey(seed), x)
    return module.apply(params, x)


# The other direction, last: it takes the argument checks above by name.
from reference.linen_in_nnx import linen_dense, linen_inside_nnx, nnx_model, nnx_params, nnx_rngs  # noqa: E402
