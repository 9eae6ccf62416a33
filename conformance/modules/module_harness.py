"""What the zoo and module properties run: a declared module's init and apply, cached and compiled, and its bounds.

Everything is keyed by the :class:`~conformance.declare.ModuleSpec` (hashed by
identity), so each declared module compiles once per input shape and mode. An
example call is a :class:`~conformance.declare.Call`, a pytree jit passes through.
An error the layer raises names the declaration field that would fix it
(:func:`explained`).
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np

from conformance.helpers.pytest_helpers import assert_equal, assert_within_model, tree_paths
from conformance.modules import hints
from conformance.modules.declare import Call, ModuleSpec, as_call, rngs_outside_training  # noqa: F401 (as_call: the harness's name for it)
from conformance.numerics import adjoint_error, errormodel, running_error
from reference import _compat

jax.tree_util.register_pytree_node(Call, lambda c: ((tuple(c.args), dict(c.kwargs)), None),
                                   lambda _, children: Call(*children))

# --- bounds: the error model's (conformance/numerics/errormodel.py, running_error.py) ----------------------------


def within_model(name: str, actual, expected, bound, what: str) -> str:
    """Two computations of the same values: identical, drift within ``bound`` (recorded), or changed (fails)."""
    __tracebackhide__ = True
    return assert_within_model(name, actual, expected, bound, what)


def trees_within_model(name: str, actual, expected, bound, what: str) -> None:
    """Every leaf of two output pytrees: same paths; floats within their leaf's bound, other leaves bitwise equal."""
    __tracebackhide__ = True
    a, e, b = array_leaves(actual), array_leaves(expected), array_leaves(bound)
    assert a.keys() == e.keys(), f"{name} leaves {sorted(a)}, but should be {sorted(e)} ({what})"
    for path, want in e.items():
        label = f"{name}/{path}" if path else name
        if jnp.issubdtype(want.dtype, jnp.inexact):  # bfloat16 too, which np.inexact does not hold
            within_model(label, a[path], want, b.get(path, np.zeros(want.shape)), what)
        else:
            assert_equal(label, a[path], want, what)


def param_count(variables) -> int:
    return int(sum(np.size(v) for v in jax.tree_util.tree_leaves(_compat.unbox(variables.get("params", {})))))


def difference_bound(fn, *args):
    """Bound on two evaluations of ``fn(*args)`` (jit and eager, rows and batch, two devices): per output leaf.

    Each evaluation is within the running-error bound E of the exact value
    (running_error.py, first order); two differ by at most 2 E, times the
    first-order slack (errormodel.running_difference).
    """
    return value_and_difference_bound(fn, *args)[1]


def halved_sum(a, b):
    """``(a + b) / 2`` leaf by leaf: two difference bounds (2 E each) of two computations of the same values
    make the bound ``E_a + E_b`` on their difference."""
    return jax.tree_util.tree_map(lambda p, q: (np.asarray(p, np.float64) + np.asarray(q, np.float64)) / 2, a, b)


def value_and_difference_bound(fn, *args):
    """``fn(*args)`` as the running-error analysis evaluates it (one compiled program), and :func:`difference_bound`.

    The value is a second compilation of the same computation, fused with the
    analysis around it: another evaluation to compare ``jit(fn)`` against.
    """
    y, e = running_error.jit_value_and_bound(fn)(*args)
    return y, jax.tree_util.tree_map(lambda b: errormodel.running_difference(np.asarray(b, np.float64)), e)


def sharper_difference_bounds(fn, *args):
    """``(signed, probabilistic)``, each like :func:`difference_bound`, from numerics/adjoint_error.py, or None where
    the computation holds a value narrower than float32. ``signed`` is the worst case over the local errors' signs;
    ``probabilistic`` (never wider) takes roundings as independent errors. The caller takes the minimum with the
    running bound."""
    _, signed, probable = adjoint_error.jit_value_and_bounds(fn)(*args)
    if signed is None:
        return None
    return tuple(jax.tree_util.tree_map(lambda b: errormodel.running_difference(np.asarray(b, np.float64)), e)
                 for e in (signed, probable))


# --- the Linen module and its calls ---------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def linen(spec: ModuleSpec):
    """``to_linen(spec.nnx_class, *spec.args, **spec.kwargs)``, looked up at call time (faults see it)."""
    return _compat.to_linen(spec.nnx_class, *spec.args, **spec.kwargs)


class Invoke:
    """The NNX method a declared call runs, through ``nnx_method``: the mode switched and an ``nnx.Rngs`` given.

    For ``mode_switch="train_eval"`` it calls ``module.train()`` or
    ``module.eval()`` first; for ``call_rngs`` it passes an ``nnx.Rngs`` of the
    stream keys the harness hands it under :data:`STREAM_KEYS` (training mode),
    and otherwise None where the method requires the argument.
    Equal for equal fields, so a jit static argument or a cache key.
    """

    def __init__(self, method: str | None, mode: str | None, call_rngs: str | None):
        self.method, self.mode, self.call_rngs = method or "__call__", mode, call_rngs

    def _key(self):
        return (self.method, self.mode, self.call_rngs)

    def __eq__(self, other):
        return isinstance(other, Invoke) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"Invoke{self._key()!r}"

    def __call__(self, module, *args, **kwargs):
        keys = kwargs.pop(STREAM_KEYS, None)
        kwargs = {(k[len(IN_TRANSIT):] if k.startswith(IN_TRANSIT) else k): v for k, v in kwargs.items()}
        if self.mode == "train":
            module.train()
        elif self.mode == "eval":
            module.eval()
        method = getattr(module, self.method)
        if self.call_rngs and keys:
            kwargs[self.call_rngs] = _compat.nnx.Rngs(**keys)
        elif self.call_rngs and self.call_rngs not in kwargs:
            kwargs.update(rngs_outside_training(method, self.call_rngs))
        return method(*args, **kwargs)


STREAM_KEYS = "_conformance_stream_keys"  # the call keyword Invoke takes the training keys from
# Keywords Linen's init and apply keep for themselves; a layer's call keyword of the same name (bonsai's ConvNeXt takes
# its drop-path key as `rngs`) travels renamed through them, and Invoke gives it back its name.
LINEN_OWN = frozenset({"rngs", "method", "mutable", "capture_intermediates", "variables", "nnx_method"})
IN_TRANSIT = "_conformance_call_kw_"


@functools.lru_cache(maxsize=None)
def linen_owned_keywords(spec: ModuleSpec) -> frozenset:
    """The declaration's call keywords that Linen's init and apply would take as their own."""
    names = set().union(*(set(c.kwargs) for c in spec.calls), spec.init_kwargs, spec.train_kwargs, spec.eval_kwargs)
    return frozenset(names & LINEN_OWN)


def linen_kwargs(spec: ModuleSpec, kwargs) -> dict:
    """The call's keywords as Linen's init and apply are given them: one Linen keeps for itself travels renamed."""
    own = linen_owned_keywords(spec)
    return {(IN_TRANSIT + k if k in own else k): v for k, v in kwargs.items()}


def method_kwargs(spec: ModuleSpec, mode: str = "eval") -> dict:
    """``nnx_method=`` for a call in ``mode`` ("init", "train", "eval"): the method's name, or an :class:`Invoke`."""
    if spec.mode_switch == "train_eval" or spec.call_rngs or linen_owned_keywords(spec):
        switch = ("eval" if mode == "init" else mode) if spec.mode_switch == "train_eval" else None
        return {"nnx_method": Invoke(spec.method, switch, spec.call_rngs)}
    return {"nnx_method": spec.method} if spec.method else {}


def _call_keys(spec: ModuleSpec, rngs) -> dict:
    """The stream keys a ``call_rngs`` layer takes as an ``nnx.Rngs`` argument in training mode."""
    return {STREAM_KEYS: {s: rngs[s] for s in spec.rng_streams}} if spec.call_rngs and rngs else {}


def _call_keys_outside_training(spec: ModuleSpec, rngs=None) -> dict:
    """At init and in evaluation, the stream keys (``rngs``, else those of seed 0) only for a layer that draws in every
    mode (native.py); another gets none (``None`` where its method requires the argument, as flax's MNIST example
    calls ``model(x, None)``). Keys are made only where they are passed: evaluation is a hot path."""
    from conformance.modules import native

    if not (spec.call_rngs and native.draws_in_every_mode(spec)):
        return {}
    return _call_keys(spec, rngs or stream_keys(spec, 0))


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

    def init_fn(seed, call):
        rngs = init_rngs(spec, seed)
        return m.init(rngs, *call.args, **linen_kwargs(spec, {**call.kwargs, **spec.init_kwargs}),
                      **method_kwargs(spec, "init"), **_call_keys_outside_training(spec, rngs))

    return jax.jit(init_fn)


def init(spec: ModuleSpec, seed: int, x):
    with explained(spec, "init"):
        return jit_init(spec)(np.int32(seed), as_call(x))


def train(spec: ModuleSpec, variables, x, rngs):
    """Training-mode apply: ``(y, updates)`` of the mutable and created collections; ``{}`` when there are none."""
    m, call = linen(spec), as_call(x)
    kw = {**linen_kwargs(spec, {**call.kwargs, **spec.train_kwargs}), **method_kwargs(spec, "train"),
          **_call_keys(spec, rngs)}
    with explained(spec, "training-mode apply"):
        if spec.collected:
            return m.apply(variables, *call.args, rngs=rngs, mutable=list(spec.collected), **kw)
        return m.apply(variables, *call.args, rngs=rngs, **kw), {}


@functools.lru_cache(maxsize=None)
def jit_train(spec: ModuleSpec):
    return jax.jit(functools.partial(train, spec))


def evaluate(spec: ModuleSpec, variables, x, rngs=None):
    """Evaluation-mode apply: no state updated; ``rngs`` only to show it is ignored."""
    kw = {"rngs": rngs} if rngs else {}
    call = as_call(x)
    with explained(spec, "evaluation-mode apply"):
        return linen(spec).apply(variables, *call.args, **kw, **linen_kwargs(spec, {**call.kwargs, **spec.eval_kwargs}),
                                 **evaluation_extras(spec, rngs))


def evaluation_extras(spec: ModuleSpec, rngs=None) -> dict:
    """What an evaluation-mode apply adds to the call: ``nnx_method=``, and the stream keys (``rngs``, else those of
    seed 0) where the layer draws in every mode."""
    return {**method_kwargs(spec, "eval"), **_call_keys_outside_training(spec, rngs)}


@functools.lru_cache(maxsize=None)
def jit_evaluate(spec: ModuleSpec):
    return jax.jit(functools.partial(evaluate, spec))


@functools.lru_cache(maxsize=None)
def jit_vmap_evaluate(spec: ModuleSpec, in_axis: int, out_axis: int):
    """Evaluation mode mapped over ``in_axis`` of the call (variables shared, passed in: one compile per shape)."""
    return jax.jit(jax.vmap(functools.partial(evaluate, spec), in_axes=(None, in_axis), out_axes=out_axis))


# --- functions of the module the properties and their bounds share (cached: one trace per spec) -------------


@functools.lru_cache(maxsize=None)
def train_fn(spec: ModuleSpec):
    return functools.partial(train, spec)


@functools.lru_cache(maxsize=None)
def evaluate_fn(spec: ModuleSpec):
    return functools.partial(evaluate, spec)


def float_leaves(tree) -> list:
    return [a for a in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.result_type(a), jnp.floating)]


@functools.lru_cache(maxsize=None)
def loss_grad_fn(spec: ModuleSpec):
    """``grad`` of a training-mode loss (the sum of squares of every float output) with respect to the params."""

    def loss(params, rest, x, keys):
        y, _ = train(spec, {**rest, "params": params}, x, keys)
        return sum(jnp.sum(jnp.square(a.astype(jnp.float32))) for a in float_leaves(y))

    return jax.grad(loss)


# --- batches: rows along the declared batch axis, or whole calls along a new one -----------------------------


def row_calls(spec: ModuleSpec) -> list[Call]:
    """Calls the vmap property can map over: along ``batch_axis`` every leaf keeps an axis; any call when None."""
    if spec.batch_axis is None:
        return list(spec.calls)
    return [c for c in spec.calls if all(np.ndim(a) >= spec.batch_axis + 2 for _, a in c.leaves())]


def stacked(call: Call) -> tuple[Call, list[Call]]:
    """Two whole calls stacked on a new leading axis, and the two: the call, and one with floats negated and ids reversed."""
    other = jax.tree_util.tree_map(
        lambda a: -a if jnp.issubdtype(np.asarray(a).dtype, jnp.floating) else (np.flip(a, 0) if np.ndim(a) else a), call)
    return jax.tree_util.tree_map(lambda a, b: np.stack([np.asarray(a), np.asarray(b)]), call, other), [call, other]


# --- leaves ------------------------------------------------------------------------------------------------------


def array_leaves(tree) -> dict:
    """``{path: NumPy array}`` of every array leaf, unboxed; typed PRNG keys as their key data.

    Other leaves (flax < 0.10.6 keeps a graphdef in an 'nnx' collection) are
    not numbers; they are compared by the tree-structure property instead.
    """
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
    a, e = array_leaves(actual), array_leaves(expected)
    assert a.keys() == e.keys(), f"{name} leaves {sorted(a)}, but should be {sorted(e)} ({what})"
    for path in e:
        assert_equal(f"{name}/{path}" if path else name, a[path], e[path], what)


def arrays_differ(a, b) -> bool:
    pa, pb = array_leaves(a), array_leaves(b)
    return any(k in pb and (pa[k].shape != pb[k].shape or not np.array_equal(pa[k], pb[k])) for k in pa)


# --- errors the layer raises, explained by the declaration fields that would fix them (hints.py) ----------------


@contextlib.contextmanager
def step(name: str):
    """The step a property takes (``"vmap over rows"``): the hints of any error raised inside are that step's."""
    token = hints.STEP.set(name)
    try:
        yield
    finally:
        hints.STEP.reset(token)


@contextlib.contextmanager
def explained(spec: ModuleSpec, what: str):
    """Any error the layer raises inside gets a note: the declaration, the step, and the fields that would fix it."""
    try:
        yield
    except Exception as exc:
        if hasattr(exc, "add_note") and not getattr(exc, "_conformance_explained", False):
            exc._conformance_explained = True
            exc.add_note(hints.note(spec, what))
        raise
