"""The implementations under test: an ``nnx.Linear`` inside a Linen pipeline, and a Linen ``nn.Dense`` inside an NNX model.

``nnx_inside_linen(seed, x, features)`` is the contract of the ``to_linen``
direction; ``linen_inside_nnx(seed, x, features)`` (``reference/linen_in_nnx.py``)
that of the ``ToNNX`` direction, with the same argument checks (``reference/checks.py``).
The building blocks below each (the wrapped module, its variables or params) let the
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

import jax

from reference import _compat
from reference.checks import check_features, check_seed, check_x
from reference.linen_in_nnx import PARAM_NAMES as PARAM_NAMES_NNX, linen_dense, linen_inside_nnx, nnx_model, nnx_params, nnx_rngs

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
    "PARAM_NAMES_NNX",
]

FORMS = ("closure", "kwargs")


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
