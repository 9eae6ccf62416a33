"""The other direction: a Linen ``nn.Dense`` inside an NNX model (``bridge.ToNNX``, ``bridge.lazy_init``).

``linen_inside_nnx(seed, x, features)`` is the contract. Its arguments are
checked exactly as ``nnx_inside_linen``'s (the same functions, the same
errors). The building blocks below it (the cached Linen module, the lazily
initialised model, its params) let the properties reach params without
re-implementing the contract.
"""

from __future__ import annotations

import functools

import jax

from reference import _compat
from reference.checks import check_features, check_seed, check_x  # the same checks, the same errors

__all__ = ["linen_inside_nnx", "linen_dense", "nnx_rngs", "nnx_model", "nnx_params", "PARAM_NAMES"]

# The params a lazily initialised ``ToNNX(nn.Dense)`` holds, as attributes of the model.
PARAM_NAMES = ("kernel", "bias")


@functools.lru_cache(maxsize=None)
def linen_dense(features: int):
    """The Linen module wrapped: ``nn.Dense(features)``. Cached, so jit caches keyed on it hit."""
    import flax.linen as nn

    return nn.Dense(int(features))


def nnx_rngs(seed):
    """``nnx.Rngs`` whose params stream is the seed: ``nnx.Rngs(params=seed)`` (a traced seed under jit too)."""
    key = jax.random.key(seed if isinstance(seed, jax.Array) else check_seed(seed))
    return _compat.nnx.Rngs(params=key)


def nnx_model(seed, x, features):
    """``ToNNX(nn.Dense(features), rngs=nnx.Rngs(params=seed))`` initialised by ``bridge.lazy_init(model, x)``."""
    check_x(x)
    model = _compat.to_nnx(linen_dense(check_features(features)), nnx_rngs(seed))
    _compat.lazy_init(model, x)
    return model


def nnx_params(model) -> dict:
    """The model's ``nnx.Param`` state as a plain dict: ``{'kernel': array, 'bias': array}``."""
    return _compat.tonnx_params(_compat.pure_dict(_compat.nnx.state(model, _compat.nnx.Param)))


def linen_inside_nnx(seed, x, features):
    """``model(x)`` of ``ToNNX(nn.Dense(features))`` lazily initialised on ``x`` from ``nnx.Rngs(params=seed)``."""
    seed = check_seed(seed)
    features = check_features(features)
    check_x(x)
    return nnx_model(seed, x, features)(x)
