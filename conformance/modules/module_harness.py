"""What the zoo and module properties run: a declared module's init and apply, cached and compiled.

Everything is keyed by the :class:`~conformance.declare.ModuleSpec` (hashed by
identity), so each declared module compiles once per input shape and mode.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from conformance.modules.declare import ModuleSpec
from reference import _compat

from conformance.numerics import errormodel
from conformance.helpers.pytest_helpers import assert_within_model

# --- bounds: the error model's (conformance/numerics/errormodel.py) ------------------------------------------------


def within_model(name: str, actual, expected, bound, what: str) -> str:
    """Two computations of the same values: identical, drift within ``bound`` (recorded), or changed (fails)."""
    __tracebackhide__ = True
    return assert_within_model(name, actual, expected, bound, what)


def param_count(variables) -> int:
    return int(sum(np.size(v) for v in jax.tree_util.tree_leaves(_compat.unbox(variables.get("params", {})))))


def accumulation(spec: ModuleSpec, variables) -> int:
    """The longest sum an output element passes through: declared, or the parameter count (an upper bound)."""
    return spec.accumulation or max(1, param_count(variables))


def composition_bound(spec: ModuleSpec, variables, y) -> np.ndarray:
    """Bound on the difference of two float32 evaluations of the module (errormodel.composition_difference)."""
    scale = float(np.max(np.abs(np.asarray(y, np.float64)))) if np.size(y) else 0.0
    return np.full(np.shape(y), errormodel.composition_difference(accumulation(spec, variables), scale))


# --- the Linen module and its calls ---------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def linen(spec: ModuleSpec):
    """``to_linen(spec.nnx_class, *spec.args, **spec.kwargs)``, looked up at call time (faults see it)."""
    return _compat.to_linen(spec.nnx_class, *spec.args, **spec.kwargs)


def stream_keys(spec: ModuleSpec, seed, streams=None) -> dict:
    """One key per stream, derived from ``seed``: ``{"dropout": fold_in(PRNGKey(seed), 1), ...}``."""
    key = jax.random.PRNGKey(seed)
    return {s: jax.random.fold_in(key, i + 1) for i, s in enumerate(spec.rng_streams if streams is None else streams)}


def init_rngs(spec: ModuleSpec, seed) -> dict:
    """What a pipeline passes to ``init``: the params key and a key per declared stream."""
    return {"params": jax.random.PRNGKey(seed), **stream_keys(spec, seed)}


@functools.lru_cache(maxsize=None)
def jit_init(spec: ModuleSpec):
    m = linen(spec)
    return jax.jit(lambda seed, x: m.init(init_rngs(spec, seed), x))


def init(spec: ModuleSpec, seed: int, x):
    return jit_init(spec)(np.int32(seed), x)


def train(spec: ModuleSpec, variables, x, rngs):
    """Training-mode apply: ``(y, updates)``; updates is ``{}`` when nothing is mutable."""
    m = linen(spec)
    if spec.mutable:
        return m.apply(variables, x, rngs=rngs, mutable=list(spec.mutable), **spec.train_kwargs)
    return m.apply(variables, x, rngs=rngs, **spec.train_kwargs), {}


@functools.lru_cache(maxsize=None)
def jit_train(spec: ModuleSpec):
    return jax.jit(functools.partial(train, spec))


def evaluate(spec: ModuleSpec, variables, x, rngs=None):
    """Evaluation-mode apply: no state updated; ``rngs`` only to show it is ignored."""
    kw = {"rngs": rngs} if rngs else {}
    return linen(spec).apply(variables, x, **kw, **spec.eval_kwargs)


@functools.lru_cache(maxsize=None)
def jit_evaluate(spec: ModuleSpec):
    return jax.jit(functools.partial(evaluate, spec))


def array_leaves(tree) -> dict:
    """``{path: NumPy array}`` of every array leaf, unboxed; typed PRNG keys as their key data.

    Other leaves (flax < 0.10.6 keeps a graphdef in an 'nnx' collection) are
    not numbers; they are compared by the tree-structure property instead.
    """
    from conformance.helpers.pytest_helpers import tree_paths

    out = {}
    for path, leaf in tree_paths(tree).items():
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int)):
            out[path] = np.atleast_1d(np.asarray(leaf))
    return out


def assert_same_arrays(name: str, actual, expected, what: str):
    """Bitwise-equal array leaves at the same paths; the message names the leaf."""
    __tracebackhide__ = True
    from conformance.helpers.pytest_helpers import assert_equal

    a, e = array_leaves(actual), array_leaves(expected)
    assert a.keys() == e.keys(), f"{name} leaves {sorted(a)}, but should be {sorted(e)} ({what})"
    for path in e:
        assert_equal(f"{name}/{path}", a[path], e[path], what)


def arrays_differ(a, b) -> bool:
    pa, pb = array_leaves(a), array_leaves(b)
    return any(k in pb and (pa[k].shape != pb[k].shape or not np.array_equal(pa[k], pb[k])) for k in pa)
