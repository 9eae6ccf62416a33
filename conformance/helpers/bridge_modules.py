"""``bridge.Module`` beside its Linen twin: one module definition, written once for each framework.

``bridge.Module`` lets Linen code run as NNX modules: ``@bridge.compact``,
``setup``, ``self.param``, ``self.variable``, ``is_initializing``,
``init`` and ``apply`` as Linen spells them. Its oracle is therefore the same
definition on ``nn.Module``: ``twins(box)`` builds both from one body.
The top module is built in ``setup`` and called through a plain method. It holds a compact body with an
explicitly named submodule and an auto-named one (Linen counts only the generated names), a stage built in
``setup``, a submodule that reads its own ``name`` (a bridge module declares the field), an annotated kernel
where ``box`` asks (``bridge.with_partitioning`` beside ``nn.with_partitioning``) and a counter in a collection
of its own, bumped by a call given ``count=True`` (under ``mutable``), never by ``init``; each submodule also
records, in that collection, whether it saw ``is_initializing()`` when ``init`` made it. Beside the body,
``setup`` names one submodule apart from its attribute (Linen files it under the name) and holds a Linen
``nn.BatchNorm`` (through ``bridge.linen_in_bridge_mdl``, a ``ToNNX``, on the bridge side) whose statistics that
call updates: the wrapped layer must take ``mutable`` from the module's ``apply``, and its RNG streams must stay
out of the variables. Before it sits an ``nn.Dense``, on the bridge side an ``nnx.Linear`` declared graph-only
(``pytree=False``) through ``bridge.nnx_in_bridge_mdl`` (the same parameter names, shapes and operations).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from conformance.core import config
from reference import _compat

BOXES = (None, "Partitioned")  # the kernel plain, or annotated with nn.Partitioned's names
PARTITION = config.PIPELINE_PARTITION
COUNTS = config.TONNX_OWN_COLLECTION
NORM_MOMENTUM = 0.5  # the statistics move visibly in one training call


def available() -> bool:
    """Whether the installed flax has the Linen-style ``bridge.Module`` (from 0.10.4: flax commit f2892823).

    flax 0.9.0 and 0.10.0 export another ``Module`` under that name (NNX's own,
    without ``param`` or ``apply``); 0.10.1 to 0.10.3 export none.
    """
    from flax.nnx import bridge

    module = getattr(bridge, "Module", None)
    return hasattr(bridge, "compact") and all(hasattr(module, a) for a in ("param", "variable", "apply", "init"))


@functools.lru_cache(maxsize=None)
def twins(box: str | None = None):
    """(Linen class, bridge.Module class) of the same definition; ``box`` annotates the kernels (``BOXES``)."""
    import flax.linen as nn
    from flax.nnx import bridge

    if box not in BOXES:
        raise ValueError(f"box must be one of {BOXES}; got {box!r}")
    from flax import nnx

    graph_linear = _graph_only(nnx.Linear)
    linen_layers = {"norm": lambda: nn.BatchNorm(momentum=NORM_MOMENTUM), "dense": lambda features: nn.Dense(features)}
    bridged_layers = {  # a Linen layer and an NNX one, as bridge modules hold them (on the module's streams)
        "norm": lambda: bridge.linen_in_bridge_mdl(nn.BatchNorm(momentum=NORM_MOMENTUM)),
        "dense": lambda features: bridge.nnx_in_bridge_mdl(lambda rngs: graph_linear(features, features, rngs=rngs))}
    return (_define(nn, nn.compact, nn.with_partitioning, box, linen_layers),
            _define(bridge, bridge.compact, getattr(bridge, "with_partitioning", None), box, bridged_layers))


def _graph_only(cls):
    """A subclass of the NNX module ``cls`` declared ``pytree=False``, as a team's graph-only layer is: the bridge
    must walk it as a graph in NNX's tree mode too. Before flax 0.11 no NNX module was a pytree: a plain subclass."""
    import types

    try:
        return types.new_class(f"GraphOnly{cls.__name__}", (cls,), {"pytree": False})
    except TypeError:
        return types.new_class(f"GraphOnly{cls.__name__}", (cls,))


def _define(ns, compact, with_partitioning, box, layers):
    import flax.linen as nn
    import jax.numpy as jnp

    kernel_init = nn.initializers.lecun_normal()
    if box == "Partitioned":
        kernel_init = with_partitioning(kernel_init, PARTITION)

    class Inner(ns.Module):
        features: int

        @compact
        def __call__(self, x):
            w = self.param("kernel", kernel_init, (x.shape[-1], self.features))
            b = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            # A submodule knows it is being initialised, as its parent does: Linen records 1 here at init.
            self.variable(COUNTS, "made_at_init", lambda: jnp.asarray(self.is_initializing(), jnp.int32))
            return x @ _value(w) + _value(b)

    class Stage(ns.Module):
        """A submodule built in ``setup``, under a compact parent."""

        features: int

        def setup(self):
            self.proj = Inner(self.features)

        def __call__(self, x):
            return self.proj(x)

    class Tagged(ns.Module):
        """Reads its own name, as Linen code may: a Linen module has the field, a bridge module declares it."""

        if ns is not nn:
            name: str

        @compact
        def __call__(self, x):
            self.variable(COUNTS, "name_length", lambda: jnp.asarray(len(self.name), jnp.int32))
            return x

    class Outer(ns.Module):
        features: int

        @compact
        def __call__(self, x, count: bool = False):
            h = Inner(self.features, name="first")(x)
            h = Inner(self.features)(h)  # auto-named after a named sibling: Inner_0, as Linen counts
            h = Stage(self.features)(h)
            h = Tagged(name="tagged")(h)
            calls = self.variable(COUNTS, "calls", lambda: jnp.zeros((), jnp.int32))
            if count and not self.is_initializing():  # bridge.Module has no is_mutable_collection: the caller says
                _compat.set_value(calls, _compat.get_value(calls) + 1)
            return h

    class Model(ns.Module):
        """The top: built in ``setup``, called through a plain method (no compact of its own)."""

        features: int

        def setup(self):
            self.body = Outer(self.features)
            # Named apart from its attribute, and the name sorts after it: Linen files it under the name.
            self.post = Inner(self.features, name="projection")
            self.head = layers["dense"](self.features)
            self.norm = layers["norm"]()

        def __call__(self, x, count: bool = False):
            return self.norm(self.head(self.post(self.body(x, count))), use_running_average=not count)

    return Model


def _value(v):
    """A param as an array: Linen hands the value, ``bridge.Module`` its ``nnx.Param``."""
    return _compat.get_value(v) if isinstance(v, _compat.nnx.Variable) else v


def layout(variables) -> dict:
    """``{path: (leaf type, shape, dtype, partition names)}``: what a pipeline reads of a variables tree."""
    import flax.linen as nn

    flat, _ = jax.tree_util.tree_flatten_with_path(variables, is_leaf=lambda a: isinstance(a, nn.meta.AxisMetadata))
    out = {}
    for path, leaf in flat:
        value = nn.meta.unbox(leaf) if isinstance(leaf, nn.meta.AxisMetadata) else leaf
        names = tuple(getattr(leaf, "names", None) or ())
        dtype = getattr(value, "dtype", None)  # read off the array: a key array has no NumPy dtype
        out[jax.tree_util.keystr(path)] = (type(leaf).__name__ if isinstance(leaf, nn.meta.AxisMetadata) else "array",
                                           tuple(np.shape(value)), str(dtype if dtype is not None else np.asarray(value).dtype),
                                           names)
    return out
