"""The bridge's public surface as a ``to_linen`` user touches it: builders for the surface properties, and the
installed release's surface read by introspection (what each side of the gate reports).

Every builder goes through ``flax.nnx.bridge`` at call time (``_compat.to_linen``,
``bridge.ToLinen``, ``to_linen_class``), so an injected fault is seen.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

from conformance.helpers import pipelines as pl
from reference import _compat


# --- the installed surface ------------------------------------------------------------------------


def _params(fn) -> list[str]:
    """Parameter names as the inventory records them: ``*args``/``**kwargs`` marked, ``self`` dropped."""
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        out.append({p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name)
    return out


def to_linen_class():
    """``to_linen_class`` where this release has it: exported from ``flax.nnx.bridge``, or only in its wrappers."""
    from flax.nnx import bridge

    fn = getattr(bridge, "to_linen_class", None)
    if fn is None:
        fn = getattr(getattr(bridge, "wrappers", None), "to_linen_class", None)
    return fn


def installed() -> dict:
    """The installed ``flax.nnx.bridge`` as ``conformance.core.surface`` compares it: names, fields and parameters."""
    from flax.nnx import bridge

    out: dict = {"exports": sorted(n for n in dir(bridge) if not n.startswith("_") and not inspect.ismodule(getattr(bridge, n)))}
    out["to_linen"] = _params(bridge.to_linen)
    out["ToLinen"] = [f.name for f in dataclasses.fields(bridge.ToLinen) if f.name not in ("parent", "name")]
    out["ToLinen.__call__"] = _params(bridge.ToLinen.__call__)
    fn = to_linen_class()
    if fn is not None:
        out["to_linen_class"] = _params(fn)
    meta = getattr(bridge, "NNXMeta", None)
    if meta is not None and dataclasses.is_dataclass(meta):
        out["NNXMeta"] = [f.name for f in dataclasses.fields(meta)]
    return out


# --- modules the surface properties build ---------------------------------------------------------


@functools.lru_cache(maxsize=None)
def shaped_class():
    """An NNX module whose methods differ in what they return: ``__call__`` the product, ``negated`` its negative,
    ``pooled`` the product summed over features (another shape), so an init that calls the wrong one is seen."""
    nnx = _compat.nnx
    import jax.numpy as jnp

    class Shaped(nnx.Module):
        def __init__(self, width, features, *, rngs):
            self.linear = nnx.Linear(width, features, rngs=rngs)

        def __call__(self, x):
            return self.linear(x)

        def negated(self, x):
            return -self.linear(x)

        def pooled(self, x):
            return jnp.sum(self.linear(x), axis=-1, keepdims=True)

    return Shaped


@functools.lru_cache(maxsize=None)
def method_parent(width: int, features: int):
    """A Linen parent holding the bridged ``Shaped`` in ``setup``; its ``pooled`` method reaches the child's."""
    import flax.linen as nn

    class MethodParent(nn.Module):
        def setup(self):
            with _compat.lazy_sharding():
                self.child = _compat.to_linen(shaped_class(), int(width), int(features))

        def __call__(self, x):
            return self.child(x)

        def pooled(self, x):
            return self.child.pooled(x)

    return MethodParent()


@functools.lru_cache(maxsize=None)
def shaped_top(width: int, features: int):
    with _compat.lazy_sharding():
        return _compat.to_linen(shaped_class(), int(width), int(features))


RAMP_STEP = 2.0**-10  # a power of two: every ramp value is exact in float32, however it is computed


@functools.lru_cache(maxsize=None)
def no_rngs_class():
    """An NNX module that takes no ``rngs`` (``skip_rng=True``): a fixed ``width x features`` ramp kernel (RAMP_STEP apart: exact)."""
    nnx = _compat.nnx
    import jax.numpy as jnp

    class Ramp(nnx.Module):
        def __init__(self, width, features):
            self.kernel = nnx.Param(jnp.arange(width * features, dtype=jnp.float32).reshape(width, features) * RAMP_STEP)

        def __call__(self, x):
            return x @ _compat.get_value(self.kernel)

    return Ramp


def ramp_kernel(width: int, features: int):
    """The kernel ``no_rngs_class()(width, features)`` builds, as numpy: what a module built without ``rngs`` holds."""
    import numpy as np

    return np.arange(width * features, dtype=np.float32).reshape(width, features) * np.float32(RAMP_STEP)


def read_constructor_attributes(module) -> dict:
    """``nnx.Linear``'s constructor arguments read off a bridged module: ``{name: value or ("AttributeError", msg)}``."""
    out = {}
    for name in ("use_bias", "in_features", "out_features"):
        try:
            out[name] = getattr(module, name)
        except AttributeError as exc:
            out[name] = ("AttributeError", str(exc))
    out["args"], out["kwargs"] = tuple(module.args), dict(module.kwargs)
    return out


def attributes_parent(width: int, features: int, where: str, use_bias: bool):
    """A Linen parent that reads the bridged ``nnx.Linear``'s constructor arguments in ``setup`` or ``compact``.

    It returns ``(y, read)``: what it read, as ``{name: value or the exception's type name}``.
    """
    import flax.linen as nn

    read_all = read_constructor_attributes
    box: dict = {}
    if where == "setup":

        class ReadsInSetup(nn.Module):
            def setup(self):
                self.child = _compat.to_linen(_compat.nnx.Linear, width, features, use_bias=use_bias)
                box["read"] = read_all(self.child)

            def __call__(self, x):
                return self.child(x)

        return ReadsInSetup(), box

    class ReadsInCompact(nn.Module):
        @nn.compact
        def __call__(self, x):
            child = _compat.to_linen(_compat.nnx.Linear, width, features, use_bias=use_bias, name=pl.CHILD)
            box["read"] = read_all(child)
            return child(x)

    return ReadsInCompact(), box


# --- ToLinen's fields --------------------------------------------------------------------------------

# ToLinen's fields a user passes by position, in the documented order (flax >= 0.12; 0.10.6-0.10.7 the same).
POSITIONAL_FIELDS = ("nnx_class", "args", "kwargs", "skip_rng", "metadata_fn")


@functools.lru_cache(maxsize=None)
def partitioned_kernel_init():
    """One initializer for every module (a ToLinen's kwargs compare by it): lecun_normal annotated with PARTITION."""
    nnx = _compat.nnx
    return nnx.with_partitioning(nnx.initializers.lecun_normal(), pl.PARTITION)


def linear_kwargs(use_bias: bool):
    """``nnx.Linear``'s keywords: a partitioned kernel (so the default ``metadata_fn`` boxes it), and ``use_bias``."""
    from flax.core import FrozenDict

    return FrozenDict({"use_bias": use_bias, "kernel_init": partitioned_kernel_init()})


def tolinen_by_position(*values):
    """``bridge.ToLinen(*values)``: the fields by position, as a team's code written against POSITIONAL_FIELDS has them."""
    from flax.nnx import bridge

    with _compat.lazy_sharding():
        return bridge.ToLinen(*values)


def tolinen_by_keyword(**fields):
    from flax.nnx import bridge

    with _compat.lazy_sharding():
        return bridge.ToLinen(**fields)


# --- to_linen_class ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def dense_subclass(width: int):
    """``class Dense(to_linen_class(nnx.Linear, in_features=width))``: a bridged layer declared once, as teams do."""
    base = to_linen_class()(_compat.nnx.Linear, in_features=int(width))

    class Dense(base):
        pass

    return Dense


@functools.lru_cache(maxsize=None)
def bare_leaves_subclass(width: int):
    """``class BareDense(to_linen_class(nnx.Linear, base_metadata_fn=get_value, in_features=width, kernel_init=...))``:
    the kernel is partitioned, so the default ``metadata_fn`` would box it; this base default keeps every leaf bare."""
    base = to_linen_class()(_compat.nnx.Linear, base_metadata_fn=_compat.get_value, in_features=int(width),
                            kernel_init=partitioned_kernel_init())

    class BareDense(base):
        pass

    return BareDense


@functools.lru_cache(maxsize=None)
def partitioned_top(width: int, features: int, **kw):
    """``to_linen(nnx.Linear, width, features, kernel_init=<partitioned>, **kw)``: the oracle of ``BareDense``."""
    return _compat.to_linen(_compat.nnx.Linear, int(width), int(features), kernel_init=partitioned_kernel_init(), **kw)


@functools.lru_cache(maxsize=None)
def rngless_subclass(width: int):
    """``class RampDense(to_linen_class(Ramp, base_skip_rng=True, width=width))``: ``Ramp`` takes no ``rngs``."""
    base = to_linen_class()(no_rngs_class(), base_skip_rng=True, width=int(width))

    class RampDense(base):
        pass

    return RampDense


def default_metadata_fn():
    """``ToLinen``'s default ``metadata_fn`` (it boxes annotated variables)."""
    from flax.nnx import bridge

    return next(f.default for f in dataclasses.fields(bridge.ToLinen) if f.name == "metadata_fn")


def boxed_paths(variables) -> list[str]:
    """The paths of ``variables`` whose leaf is a metadata box (``flax.core.meta.AxisMetadata``)."""
    import jax
    from flax.core import meta

    def is_box(leaf):
        return isinstance(leaf, meta.AxisMetadata)

    flat, _ = jax.tree_util.tree_flatten_with_path(variables, is_leaf=is_box)
    return sorted("/".join(str(getattr(k, "key", k)) for k in path) for path, leaf in flat if is_box(leaf))


@functools.lru_cache(maxsize=None)
def dense_parent(width: int, features: int):
    """A Linen parent holding ``Dense(out_features=features)`` in ``setup`` under the name ``child``."""
    import flax.linen as nn

    class DenseParent(nn.Module):
        def setup(self):
            self.child = dense_subclass(width)(out_features=int(features))

        def __call__(self, x):
            return self.child(x)

    return DenseParent()


@functools.lru_cache(maxsize=None)
def linear_top(width: int, features: int):
    """``to_linen(nnx.Linear, width, features)``: what ``Dense(out_features=features)`` must equal."""
    return _compat.to_linen(_compat.nnx.Linear, int(width), int(features))


# --- Linen metadata boxes ----------------------------------------------------------------------------


def linen_boxed(params, box: str):
    """``params`` with every array in Linen's own box ``box``: the kernel's names PARTITION, the bias's its last one."""
    import flax.linen as nn

    cls = {"LogicallyPartitioned": nn.LogicallyPartitioned, "Partitioned": nn.Partitioned}.get(box)
    if cls is None:
        raise ValueError(f"box must be one of ('LogicallyPartitioned', 'Partitioned'); got {box!r}")
    import jax

    def wrap(a):
        names = tuple(pl.PARTITION) if a.ndim == 2 else tuple(pl.PARTITION[-1:])
        return cls(a, names)

    return jax.tree_util.tree_map(wrap, params)


def as_affine(variables) -> dict:
    """A bare ``nnx.Linear``'s variables laid out as the error model reads an affine layer's (params/linear/...)."""
    return {"params": {"linear": dict(variables["params"])}}


def mesh_context(mesh):
    """``mesh`` as the ambient mesh (``conformance.helpers.mesh.ambient``)."""
    from conformance.helpers.mesh import ambient

    return ambient(mesh)
