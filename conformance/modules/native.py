"""The oracle of a declared module: its NNX class run natively, without the bridge.

Where a property rests on a fact about the layer (its params depend on the
seed; evaluation draws no randomness; training updates this collection), the
fact is taken from the same class run as NNX runs it: what it does natively is
what the bridged module must do. The native module is the class's graph with
its state filled from a Linen variables tree (``{collection: {path...: array}}``,
as ``init`` gives it) and each RNG stream's key given, then called in the
declared mode, exactly as the declaration says the bridged module is called.

Everything is compiled once per declared module, mode and input shape.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from conformance.modules.declare import ModuleSpec, as_call, rngs_outside_training
from reference import _compat

nnx = _compat.nnx

DEFAULT_STREAM = "default"  # the stream NNX falls back to for a stream it was not given


def _collection(var) -> str:
    """The Linen collection a Variable lives in, named as the bridge names it (flax's registry)."""
    from flax.nnx import variablelib

    name_of = getattr(variablelib, "variable_name_from_type", None)
    if name_of is None:  # older flax: the registry is not public; its default is the class name
        return "params" if isinstance(var, nnx.Param) else type(var).__name__
    try:
        return name_of(type(var), allow_register=True)
    except TypeError:
        return name_of(type(var))


def _is_rng(var) -> bool:
    return isinstance(var, getattr(nnx, "RngState", ()))


def _flat(state) -> list:
    return list(nnx.to_flat_state(state)) if hasattr(nnx, "to_flat_state") else list(state.flat_state().items())


def _value(var):
    return var.get_value() if hasattr(var, "get_value") else var.value


def construction_streams(spec: ModuleSpec) -> tuple:
    """The streams the native class is built with: params, the declared streams, and NNX's fallback."""
    return ("params", *spec.rng_streams, DEFAULT_STREAM)


def build(spec: ModuleSpec, keys: dict):
    return spec.nnx_class(*spec.args, **spec.kwargs, rngs=nnx.Rngs(**keys))


def _shaped(spec: ModuleSpec):
    """The class built abstractly (nothing computed), or concretely where its ``__init__`` reads values."""
    keys = {s: jax.random.PRNGKey(i) for i, s in enumerate(construction_streams(spec))}
    try:
        shaped = nnx.eval_shape(lambda: build(spec, keys))
    except Exception:  # noqa: BLE001 - a constructor that needs concrete values is built once for its structure
        return build(spec, keys)
    if _holds_tracer(shaped):
        return build(spec, keys)  # plain arrays (not Variables) leak out of eval_shape's trace as tracers
    return shaped


def _holds_tracer(node, seen=None) -> bool:
    """Whether a tracer hangs anywhere off ``node``'s attributes (nested modules, lists, tuples, dicts)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return False
    seen.add(id(node))
    if isinstance(node, jax.core.Tracer):
        return True
    if isinstance(node, (list, tuple)):
        return any(_holds_tracer(v, seen) for v in node)
    if isinstance(node, dict):
        return any(_holds_tracer(v, seen) for v in node.values())
    if isinstance(node, nnx.Module):
        return any(_holds_tracer(v, seen) for v in vars(node).values())
    return False


def _built_abstractly(spec: ModuleSpec, streams):
    """The class built abstractly (nothing computed) with a key for each of ``streams``; raises as its ``__init__`` does."""
    return nnx.eval_shape(lambda: build(spec, {s: jax.random.PRNGKey(0) for s in streams}))


def held_modules(spec: ModuleSpec) -> list:
    """The modules the class holds, built abstractly (nothing computed); empty if it cannot be built so."""
    try:
        # every stream a layer commonly takes at construction: a Dropout built with rngs= needs 'dropout'
        model = _built_abstractly(spec, (*construction_streams(spec), "dropout"))
        return [node for _, node in nnx.iter_graph(model) if isinstance(node, nnx.Module)]
    except Exception:  # noqa: BLE001 - a hint or a premise must not raise; without the modules it knows less
        return []


@functools.lru_cache(maxsize=None)
def needs_stream_to_build(spec: ModuleSpec, stream: str) -> bool:
    """Whether the class fails to build with the streams the bridge gives it (params and the declared ones) and builds
    with ``stream`` too: bonsai's Whisper holds an attention with a dropout rate above 0, which takes its key then."""
    if stream in spec.rng_streams:
        return False

    def builds(streams) -> bool:
        try:
            _built_abstractly(spec, streams)
            return True
        except Exception:  # noqa: BLE001 - any failure to build counts; only the contrast with `stream` decides
            return False

    return not builds(("params", *spec.rng_streams)) and builds(("params", *spec.rng_streams, stream))


@functools.lru_cache(maxsize=None)
def draws_in_every_mode(spec: ModuleSpec) -> bool:
    """Whether the class holds a Dropout built to draw whatever the mode (``deterministic=False``, a rate above 0),
    as bonsai's ViT does: such a layer needs its call-time ``nnx.Rngs`` at init and in evaluation too."""
    return any(isinstance(m, nnx.Dropout) and getattr(m, "deterministic", None) is False
               and (getattr(m, "rate", 0) or 0) > 0 for m in held_modules(spec))


def plain_array_leaves(spec: ModuleSpec) -> list[str]:
    """Paths of the arrays the class holds as plain attributes, not in an ``nnx.Variable`` (flax's
    ``07_array_leaves`` example keeps its weights so)."""
    return sorted("/".join(map(str, path)) for path, leaf in skeleton(spec)[1] if not isinstance(leaf, nnx.Variable))


@functools.lru_cache(maxsize=None)
def skeleton(spec: ModuleSpec):
    """``(graphdef, [(path, Variable), ...])`` of the class: its structure, whose values are replaced before use."""
    graphdef, state = nnx.split(_shaped(spec))
    return graphdef, _flat(state)


def _lookup(tree, path):
    node = tree
    for p in path:
        node = node[p if p in node else str(p)]
    return node


def _key_like(target, key, typed: bool):
    """``key`` in the form of the stream's own key: split to its shape where layers made under ``nnx.vmap`` stack
    one key per layer (as ``nnx.reseed(policy="match_shape")`` does), raw key data where the stream keeps raw keys."""
    batch = target.shape if typed else target.shape[:-1]
    key = key if batch == () else jax.random.split(key, batch)
    return key if typed else jax.random.key_data(key)


def _filled(spec: ModuleSpec, variables: dict, keys: dict):
    """The native module with ``variables``' values and the streams' ``keys`` (counts at zero)."""
    graphdef, flat = skeleton(spec)
    pure: dict = {}
    for path, var in flat:
        if _is_rng(var):
            if isinstance(var, nnx.RngKey):
                tag = getattr(var, "tag", None) or (path[-2] if len(path) > 1 else DEFAULT_STREAM)
                raw = keys.get(tag, keys[DEFAULT_STREAM])
                typed = jnp.issubdtype(_value(var).dtype, jax.dtypes.prng_key)
                value = _key_like(_value(var), jax.random.wrap_key_data(raw), typed)
            else:
                value = jnp.zeros(_value(var).shape, _value(var).dtype)
        else:
            coll = _collection(var)
            try:
                value = _lookup(variables[coll], path)
            except (KeyError, TypeError, IndexError) as exc:
                raise KeyError(f"the native {spec.nnx_class.__name__} has {coll}/{'/'.join(map(str, path))}, "
                               f"which the variables lack") from exc
        node = pure
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    state = _abstract(spec)
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state)


def _abstract(spec: ModuleSpec):
    """A fresh state of the class's structure (replace_by_pure_dict fills it in place)."""
    return nnx.split(_shaped(spec))[1]


def stream_keys(spec: ModuleSpec, key_seed, streams=None) -> dict:
    """A key for every stream the native module may draw from, derived from ``key_seed``."""
    key = jax.random.PRNGKey(key_seed)
    names = tuple(streams if streams is not None else spec.rng_streams) + (DEFAULT_STREAM,)
    return {s: jax.random.fold_in(key, 101 + i) for i, s in enumerate(dict.fromkeys(names))}


def call(spec: ModuleSpec, mode: str, variables: dict, x, keys: dict):
    """``(output, {collection: tree})``: the native module called as the declaration says, and its state after.

    ``mode`` is ``"train"`` or ``"eval"``. The state holds every collection
    but the RNG streams' own, so a collection the call creates shows up.
    """
    c = as_call(x)
    model = _filled(spec, variables, keys)
    if spec.mode_switch == "train_eval":
        model.train() if mode == "train" else model.eval()
    kwargs = {**c.kwargs, **(spec.train_kwargs if mode == "train" else spec.eval_kwargs)}
    method = getattr(model, spec.method or "__call__")
    if spec.call_rngs and (mode == "train" or draws_in_every_mode(spec)):
        kwargs[spec.call_rngs] = nnx.Rngs(**{s: keys[s] for s in spec.rng_streams})
    elif spec.call_rngs and spec.call_rngs not in kwargs:
        kwargs.update(rngs_outside_training(method, spec.call_rngs))
    y = method(*c.args, **kwargs)
    return y, collections_of(model)


def collections_of(model) -> dict:
    """``{collection: nested dict of arrays}`` of a module's state, RNG streams left out."""
    out: dict = {}
    for path, var in _flat(nnx.state(model)):
        if _is_rng(var):
            continue
        node = out.setdefault(_collection(var), {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = _value(var)
    return out


@functools.lru_cache(maxsize=None)
def jit_call(spec: ModuleSpec, mode: str):
    return jax.jit(functools.partial(call, spec, mode))


@functools.lru_cache(maxsize=None)
def call_fn(spec: ModuleSpec, mode: str):
    """The native call as a function of ``(variables, x, keys)`` (for the running-error analysis)."""
    return functools.partial(call, spec, mode)


@functools.lru_cache(maxsize=None)
def jit_params(spec: ModuleSpec):
    """``key -> {path: array}`` of the params the class draws natively from that params key."""

    def draw(key):
        keys = {s: jax.random.fold_in(key, i) for i, s in enumerate(construction_streams(spec))}
        keys["params"] = key
        return collections_of(build(spec, keys)).get("params", {})

    return jax.jit(draw)


def params(spec: ModuleSpec, seed: int) -> dict:
    return jit_params(spec)(jax.random.PRNGKey(np.uint32(seed)))
