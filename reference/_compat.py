"""Small shims over the flax and jax APIs that moved between releases."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import warnings

import jax
from flax import nnx  # noqa: F401  (re-exported: the suite reaches nnx through here)
from flax.nnx import bridge


def to_linen(cls, *args, **kwargs):
    """``bridge.to_linen`` looked up at call time, so a patched bridge is seen."""
    fn = getattr(bridge, "to_linen", None)
    if fn is not None:
        return fn(cls, *args, **kwargs)
    return bridge.ToLinen(cls, args=args, kwargs=kwargs)


def to_nnx(linen_module, rngs):
    """``bridge.ToNNX(linen_module, rngs=rngs)``, looked up at call time (a patched bridge is seen)."""
    return bridge.ToNNX(linen_module, rngs=rngs)


def lazy_init(model, *args, **kwargs):
    """``bridge.lazy_init(model, *args)``: the wrapped Linen module's variables created from a sample input."""
    return bridge.lazy_init(model, *args, **kwargs)


def pure_dict(state) -> dict:
    """An ``nnx.State`` as nested plain dicts of arrays: ``nnx.to_pure_dict`` (the ``State`` method is deprecated from
    0.12, and flax 0.9 has neither: there the mapping is walked)."""
    fn = getattr(nnx, "to_pure_dict", None)
    if fn is not None:
        return fn(state)
    if hasattr(state, "to_pure_dict"):
        return state.to_pure_dict()
    return _walk_pure(state)


def _walk_pure(node):
    if hasattr(node, "items") and not hasattr(node, "value"):
        return {k: _walk_pure(v) for k, v in node.items()}
    return get_value(node) if hasattr(node, "value") else node


# flax 0.9's ToNNX keeps each Linen collection as an attribute named after it: its NNX paths begin with the
# collection's name ('params', 'Dense_0', 'kernel'); from 0.10 a variable's type says its collection.
def _flax_minor() -> tuple:
    import flax

    return tuple(int(p) for p in flax.__version__.split(".")[:2] if p.isdigit())


TONNX_PATHS_BEGIN_WITH_COLLECTION = _flax_minor() < (0, 10)  # no attribute tells the layouts apart


def without_collection(path: tuple, collection: str) -> tuple:
    """A ToNNX variable's path as the Linen collection ``collection`` names it (flax 0.9's leading name dropped)."""
    if TONNX_PATHS_BEGIN_WITH_COLLECTION and path and str(path[0]) == collection:
        return tuple(path[1:])
    return tuple(path)


def collection_of(variable_type) -> str | None:
    """The Linen collection a ToNNX variable type stands for, by flax's registry (0.10.4 on), else the bridge's
    (0.10.0-0.10.3) or 0.9's, else the name the bridge gave the type it made for the collection; None for none."""
    try:
        from flax.nnx import variablelib
    except ImportError:  # flax 0.9
        variablelib = None
    for lookup in (getattr(variablelib, "variable_name_from_type", None), _bridge_variable_type_name()):
        if lookup is not None:
            try:
                return lookup(variable_type)
            except (ValueError, KeyError):
                pass
    name = getattr(variable_type, "__name__", "")
    return name if name and name[0].islower() else None


def register_variable_type(name: str, variable_type) -> None:
    """Register ``variable_type`` as the NNX type of the Linen collection ``name``, as a team does: flax's registry
    (``register_variable_name``, 0.10.4 on; ``register_variable_name_type_pair`` in 0.10.3 and 0.9), else the
    bridge's own (0.10.0-0.10.2). Overwrites where the release can (a test process registers once)."""
    modules = []
    for path in ("flax.nnx.variablelib", "flax.nnx.bridge.variables", "flax.nnx.nnx.variables"):
        try:
            modules.append(importlib.import_module(path))
        except ImportError:
            pass
    for module in modules:
        for fn_name in ("register_variable_name", "register_variable_name_type_pair"):
            fn = getattr(module, fn_name, None)
            if fn is not None:
                params = inspect.signature(fn).parameters
                fn(name, variable_type, **({"overwrite": True} if "overwrite" in params else {}))
                return
    raise NotImplementedError("this flax has no registry of Variable types by collection name")


def _bridge_variable_type_name():
    """The bridge's own registry's lookup (0.10.0-0.10.3), else 0.9's (``flax.nnx.nnx.variables``); None for none."""
    for path in ("flax.nnx.bridge.variables", "flax.nnx.nnx.variables"):
        try:
            lookup = getattr(importlib.import_module(path), "variable_type_name", None)
        except ImportError:
            continue
        if lookup is not None:
            return lookup
    return None


def tonnx_params(params: dict) -> dict:
    """A ToNNX model's ``nnx.Param`` state as a plain dict, as Linen names it (flax 0.9's 'params' level dropped)."""
    return params["params"] if TONNX_PATHS_BEGIN_WITH_COLLECTION and set(params) == {"params"} else params


def optimizer_update(optimizer, model, grads) -> None:
    """One ``nnx.Optimizer`` step: ``update(model, grads)`` from flax 0.11, ``update(grads)`` before."""
    import inspect

    if "model" in inspect.signature(optimizer.update).parameters:
        optimizer.update(model, grads)
    else:
        optimizer.update(grads)


def set_hyperparam(optimizer, name: str, value) -> None:
    """An ``optax.inject_hyperparams`` value in the optimizer's state, set in place (eagerly).

    From flax 0.10 the value is a Variable (set through it); flax 0.9 keeps the
    plain array in the state's dict.
    """
    import jax.numpy as jnp

    params = optimizer.opt_state.hyperparams
    old = params[name]
    if isinstance(old, nnx.Variable):
        set_value(old, jnp.asarray(value, get_value(old).dtype))
    else:
        params[name] = jnp.asarray(value, old.dtype)


def filter_state(state, *filters):
    """The part of ``state`` that ``filters`` select: ``nnx.filter_state`` where it exists, else ``State.filter``."""
    fn = getattr(nnx, "filter_state", None)
    return fn(state, *filters) if fn is not None else state.filter(*filters)


def flat_state(state) -> list:
    """``[(path, variable), ...]`` of ``state``: ``nnx.to_flat_state`` where it exists, else ``State.flat_state``."""
    fn = getattr(nnx, "to_flat_state", None)
    if fn is not None:
        return list(fn(state))
    flat = state.flat_state()  # a dict {path: variable} before 0.10.3
    return list(flat.items()) if hasattr(flat, "items") else list(flat)


def enable_x64(on: bool = True):
    """Scoped x64 switch: ``jax.enable_x64`` (new) or ``jax.experimental.enable_x64`` (old)."""
    if hasattr(jax, "enable_x64") and callable(getattr(jax, "enable_x64")):
        return jax.enable_x64(on)
    from jax.experimental import enable_x64 as _enable, disable_x64 as _disable  # jax < 0.7

    return _enable() if on else _disable()


def x64_enabled() -> bool:
    return bool(jax.config.jax_enable_x64)


@contextlib.contextmanager
def maybe_x64(on: bool):
    if on and not x64_enabled():
        with enable_x64(True):
            yield
    else:
        yield


# --- boxed variables -------------------------------------------------------------------
# flax 0.9.x keeps every leaf of a ToLinen variables tree in an ``nnx.VariableState``
# (read through ``.value``; apply insists on getting it back boxed). From 0.10.0 plain
# Variables travel as raw arrays, and from 0.12 ``nnx.VariableState`` is a deprecated
# alias of ``nnx.Variable`` (never a leaf of a Linen variables tree).


def _variable_state_type():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vs = getattr(nnx, "VariableState", None)
    if vs is None or vs is getattr(nnx, "Variable", None):
        return None
    return vs


VARIABLE_STATE = _variable_state_type()


def is_variable_state(x) -> bool:
    return VARIABLE_STATE is not None and isinstance(x, VARIABLE_STATE)


def unbox(tree):
    """``tree`` with Linen metadata boxes and (flax 0.9) ``VariableState`` leaves replaced by their values."""
    from flax.core import meta

    if VARIABLE_STATE is not None:
        tree = jax.tree_util.tree_map(lambda v: v.value if is_variable_state(v) else v, tree, is_leaf=is_variable_state)
    return meta.unbox(tree)


def rebox(old, value):
    """``value`` in the box ``old`` came in (Linen metadata, a flax 0.9 ``VariableState``, or none)."""
    from flax.core import meta

    if isinstance(old, meta.AxisMetadata):
        return old.replace_boxed(value)
    if is_variable_state(old):
        return old.replace(value=value)
    return value


@contextlib.contextmanager
def lazy_sharding():
    """Partition annotations kept as metadata, not applied at creation (a Linen pipeline shards through jit).

    flax 0.12 places an annotated variable on creation unless eager sharding
    is off: ``nnx.use_eager_sharding(False)`` from 0.12.1, the
    ``flax_always_shard_variable`` flag in 0.12.0 (which has no context for
    it). Earlier releases only record the names.
    """
    ctx = getattr(nnx, "use_eager_sharding", None)
    if ctx is not None:
        with ctx(False):
            yield
        return
    import flax

    flag = "flax_always_shard_variable"
    if not hasattr(flax.config, flag):
        yield
        return
    old = getattr(flax.config, flag)
    flax.config.update(flag, False)
    try:
        yield
    finally:
        flax.config.update(flag, old)


def get_value(variable):
    """A Variable's value: ``get_value()`` where it exists (``.value`` is deprecated from flax 0.12)."""
    return variable.get_value() if hasattr(variable, "get_value") else variable.value


def set_value(variable, value) -> None:
    if hasattr(variable, "set_value"):
        variable.set_value(value)
    else:
        variable.value = value
