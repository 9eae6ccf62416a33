"""A small module zoo beside the contract: RNG streams, mutable state, constructor kwargs.

The ``nnx.Linear`` contract of ``reference/__init__.py`` stays the contract of
record. The zoo sends through ``to_linen`` what a real Linen pipeline sends:

* ``DropoutBlock``: Linear then ``nnx.Dropout``; a pipeline passes
  ``apply(..., rngs={"dropout": key})`` and ``deterministic=True`` to evaluate.
* ``BatchNormBlock``: ``nnx.BatchNorm`` then Linear then ``nnx.Dropout``; a
  pipeline passes ``mutable=["batch_stats"]`` and feeds the new stats back.
* ``KwargsProbe``: takes constructor keywords named like ``to_linen``'s own
  parameters in some release since 0.9.0, and records what it receives.

Each block is declared as a :class:`conformance.declare.ModuleSpec`, the same
declaration a team writes for its own layers, so the generic properties run on
the zoo and on the team's modules alike.
"""

from __future__ import annotations

import functools

import numpy as np

from conformance.core import config
from conformance.modules import declare
from conformance.modules.declare import ModuleSpec
from reference import _compat

nnx = _compat.nnx


class DropoutBlock(nnx.Module):
    """``dropout(linear(x))``: the mask is observable as the zeros of the output."""

    def __init__(self, width: int, features: int, rate: float, rngs):
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.dropout = nnx.Dropout(rate, rngs=rngs)

    def __call__(self, x, deterministic: bool = False):
        return self.dropout(self.linear(x), deterministic=deterministic)


class BatchNormBlock(nnx.Module):
    """``dropout(linear(batchnorm(x)))``: batch statistics first, so they depend on x alone."""

    def __init__(self, width: int, features: int, momentum: float, epsilon: float, rate: float, rngs):
        self.bn = nnx.BatchNorm(width, momentum=momentum, epsilon=epsilon, rngs=rngs)
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.dropout = nnx.Dropout(rate, rngs=rngs)

    def __call__(self, x, use_running_average: bool = False, deterministic: bool = True):
        h = self.linear(self.bn(x, use_running_average=use_running_average))
        return self.dropout(h, deterministic=deterministic)


# --- constructor keywords --------------------------------------------------------------------------------
# to_linen's own parameters, release by release (flax/nnx/bridge/wrappers.py at each tag):
#   0.9.0 - 0.10.5: to_linen(nnx_class, *args, name=None, **kwargs)
#   0.10.6 - 0.10.7: + metadata_fn
#   0.11.0 - 0.12.8: + skip_rng, abstract_init
# plus "args" and "kwargs" (the names of its variadics, fields of ToLinen) and
# "dtype", the most common constructor keyword of all (a bridge that grew it
# would swallow it). Each value is one flax would accept for its own
# parameter, so a bridge that consumes the name does so silently.
PROBE_KWARGS = {
    "nnx_class": "probe-class",
    "name": "probe_name",
    "metadata_fn": None,
    "skip_rng": False,
    "abstract_init": False,
    "args": (7,),
    "kwargs": {"k": 7},
    "dtype": "float32",
}
# Where a release consumes the name itself, first release: evidence from flax's source history.
TO_LINEN_PARAMETERS = {"nnx_class": "0.9.0", "name": "0.9.0", "metadata_fn": "0.10.6", "skip_rng": "0.11.0",
                       "abstract_init": "0.11.0"}

_UNSET = object()


class KwargsProbe(nnx.Module):
    """A Linear whose constructor takes one keyword named ``probe`` under another name, and records it."""

    received: list = []  # class-level log: (keyword, value) per construction

    def __init__(self, rngs=None, **kwargs):
        KwargsProbe.received.append(dict(kwargs))
        self.linear = nnx.Linear(2, 3, rngs=rngs if rngs is not None else nnx.Rngs(0))

    def __call__(self, x):
        return self.linear(x)


def probe_kwarg(keyword: str):
    """(what the module received, or the exception) for ``to_linen(KwargsProbe, **{keyword: value})`` at init."""
    import jax

    value = PROBE_KWARGS[keyword]
    KwargsProbe.received.clear()
    try:
        _compat.to_linen(KwargsProbe, **{keyword: value}).init(jax.random.PRNGKey(0), np.ones(2, np.float32))
    except Exception as exc:  # noqa: BLE001 - the caller judges the error
        return exc
    seen = [r.get(keyword, _UNSET) for r in KwargsProbe.received]
    return seen


# --- the zoo's declarations ---------------------------------------------------------------------------------


def _inputs(width: int):
    """Example inputs: a single row and a batch (the batch is what BatchNorm reduces over)."""
    rng = np.random.default_rng(0)
    return (
        rng.uniform(-1, 1, (config.ZOO_BATCH, width)).astype(np.float32),
        rng.uniform(-1, 1, (width,)).astype(np.float32),
    )


@functools.lru_cache(maxsize=None)
def dropout_spec(width: int = config.ZOO_WIDTH, features: int = config.ZOO_FEATURES) -> ModuleSpec:
    return ModuleSpec(
        name="zoo_dropout",
        nnx_class=DropoutBlock,
        kwargs=dict(width=width, features=features, rate=config.ZOO_DROPOUT_RATE),
        inputs=_inputs(width),
        rng_streams=("dropout",),
        train_kwargs={"deterministic": False},
        eval_kwargs={"deterministic": True},
    )


@functools.lru_cache(maxsize=None)
def batchnorm_spec(width: int = config.ZOO_WIDTH, features: int = config.ZOO_FEATURES) -> ModuleSpec:
    return ModuleSpec(
        name="zoo_batchnorm",
        nnx_class=BatchNormBlock,
        kwargs=dict(width=width, features=features, momentum=config.ZOO_BN_MOMENTUM, epsilon=config.ZOO_BN_EPSILON,
                    rate=config.ZOO_DROPOUT_RATE),
        inputs=_inputs(width)[:1],  # batch statistics need a batch
        rng_streams=("dropout",),
        mutable=("batch_stats",),
        train_kwargs={"use_running_average": False, "deterministic": False},
        eval_kwargs={"use_running_average": True, "deterministic": True},
    )


def zoo_specs() -> list[ModuleSpec]:
    """The zoo's blocks; its real-layer tier (zoo_layers.py) is declared like a team's layers (``--module``)."""
    return [dropout_spec(), batchnorm_spec()]


def zoo_and_user_specs(cli: list[str] | None = None) -> list[ModuleSpec]:
    """The zoo's modules, then the team's; a team's name may not shadow the zoo's."""
    zoo, users = zoo_specs(), declare.user_specs(cli)
    clash = sorted({s.name for s in zoo} & {s.name for s in users})
    if clash:
        raise ValueError(f"{declare.MODULE_OPTION}: module names {clash} are the zoo's; rename them")
    return zoo + users
