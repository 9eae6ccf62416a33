"""What the ToNNX direction's properties run: the model, its state, compiled calls over it.

The direction-neutral floor (devices, placed inputs, the oracle, the error
model's bounds, ``given_data``) is ``conformance/helpers/harness.py``; its
``kernel_bias`` and the bounds built on it read this direction's params too
(``{'kernel': ..., 'bias': ...}``, the model's ``nnx.Param`` state as a dict).
Here: what differs when the Linen module is inside an NNX model, initialised by
``lazy_init`` and called statefully. Compiled functions are cached per (width,
features): one compile per point of the shape menu, as for ``to_linen``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from conformance.helpers import harness
from conformance.helpers.hypothesis_helpers import Case
from reference import _compat, check_features, nnx_model

DIRECTION = "to_nnx"


def params_of(state) -> dict:
    """The ``nnx.Param`` leaves of a model's state, as ``{'kernel': array, 'bias': array}``."""
    return _compat.tonnx_params(_compat.pure_dict(_compat.filter_state(state, _compat.nnx.Param)))


@functools.lru_cache(maxsize=None)
def graphdef(width: int, features: int):
    """The model's graph definition, from an abstract init (nothing computed, nothing compiled)."""
    nnx = _compat.nnx
    abstract = nnx.eval_shape(lambda: nnx_model(0, np.zeros((width,), np.float32), features))
    return nnx.split(abstract)[0]


@functools.lru_cache(maxsize=None)
def jit_init(width: int, features: int):
    """``jax.jit`` of the lazy init with the seed traced, returning the model's whole ``nnx.state``."""
    nnx = _compat.nnx
    return jax.jit(lambda seed, x: nnx.state(nnx_model(seed, x, features)))


@functools.lru_cache(maxsize=None)
def jit_init_many(width: int, features: int):
    """The lazy init vmapped over a vector of seeds, params only: many seeds in one call."""
    nnx = _compat.nnx
    return jax.jit(jax.vmap(lambda seed, x: params_of(nnx.state(nnx_model(seed, x, features))), in_axes=(0, None)))


@functools.lru_cache(maxsize=None)
def jit_apply(width: int, features: int):
    """``jax.jit`` over ``nnx.split`` state: merge the graph definition with the state, call, return the output."""
    nnx = _compat.nnx
    gd = graphdef(width, features)
    return jax.jit(lambda state, x: nnx.merge(gd, state)(x))


def init_state(case: Case, x=None):
    """The compiled lazy init of the case's seed, from ``x`` or else the dummy input: the model's state."""
    width, features = case.width, check_features(case.features)
    x = harness.dummy_x(case) if x is None else x
    return jit_init(width, features)(harness.seed_array(case.seed_int), x)


def observe(case: Case, x=None):
    """(x, params, y): the compiled lazy init (from the dummy input), ``jax.jit`` over its state called on x."""
    x = harness.case_x(case) if x is None else x
    state = init_state(case)
    return x, params_of(state), jit_apply(case.width, case.features_int)(state, x)


def eager_model(case: Case, x):
    """The contract's model, built eagerly as a user builds it: ``ToNNX`` then ``lazy_init`` on ``x``."""
    return nnx_model(case.seed, x, case.features)
