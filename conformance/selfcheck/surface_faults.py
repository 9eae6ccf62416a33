"""Faults of the bridge's public surface: methods at init, attribute reads, ``ToLinen``'s fields,
``to_linen_class``, Linen's metadata boxes at apply; and one that only warns.

Each imitates a change that flax's own history made or undid in ``flax/nnx/bridge``
(docs/bridge-surface.md). The properties that catch them are in
``conformance/properties/surface``; ``deprecation_warning_on_init`` changes no
number and is caught by the warnings the suite records (docs/selfcheck.md).
"""

from __future__ import annotations

import dataclasses
import warnings

from conformance.selfcheck.fault import fault


def _base(self):
    """The real ToLinen class the faulty module derives from."""
    return type(self).__mro__[1]


@fault("surface: methods", "init and init_with_output ignore nnx_method= and method=: __call__ runs at init")
def init_method_ignored():
    def call(self, *xs, nnx_method=None, **kw):
        if self.is_initializing():
            nnx_method = None
        return _base(self).__call__(self, *xs, nnx_method=nnx_method, **kw)

    return dict(attrs={"__call__": call})


@fault("surface: attributes", "constructor keywords no longer read as attributes of the bridged module (AttributeError)")
def constructor_kwargs_unreadable():
    def getattr_(self, name):
        if name in dict(object.__getattribute__(self, "kwargs")):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return _base(self).__getattr__(self, name)

    return dict(attrs={"__getattr__": getattr_})


@fault("surface: signature", "ToLinen gains a field before metadata_fn (as abstract_init in flax 0.11): a positional "
       "metadata_fn lands in another slot")
def tolinen_field_inserted():
    def patch():
        from flax.core import FrozenDict
        from flax.nnx import bridge

        real = getattr(bridge, "_conformance_real_ToLinen", bridge.ToLinen)
        bridge._conformance_real_ToLinen = real
        default_fn = next(f.default for f in dataclasses.fields(real) if f.name == "metadata_fn")

        class ToLinen(real):
            pass

        def __init__(self, nnx_class, args=(), kwargs=FrozenDict({}), skip_rng=False, abstract_init=True,
                     metadata_fn=default_fn, **linen_kw):
            real.__init__(self, nnx_class=nnx_class, args=args, kwargs=kwargs, skip_rng=skip_rng,
                          metadata_fn=metadata_fn, **linen_kw)

        ToLinen.__init__ = __init__
        bridge.ToLinen = ToLinen  # to_linen builds wrappers.ToLinen by keyword: unchanged

    return dict(patch=patch)


def _swap_to_linen_class(make):
    """A patch putting ``make(real)`` in place of ``to_linen_class`` (in the wrappers, and where ``bridge`` exports it)."""

    def patch():
        from flax.nnx import bridge
        from flax.nnx.bridge import wrappers

        real = getattr(wrappers, "_conformance_real_to_linen_class", getattr(wrappers, "to_linen_class", None))
        if real is None:  # a release before 0.12.0: nothing to break
            return
        wrappers._conformance_real_to_linen_class = real
        fake = make(real)
        wrappers.to_linen_class = fake
        if hasattr(bridge, "to_linen_class"):
            bridge.to_linen_class = fake

    return patch


@fault("surface: to_linen_class", "subclasses of to_linen_class's class drop the arguments it was given: init fails")
def to_linen_class_drops_partial_kwargs():
    def make(real):
        def to_linen_class(base_nnx_class, *args, **partial_kwargs):
            return real(base_nnx_class, *args)

        return to_linen_class

    return dict(patch=_swap_to_linen_class(make))


@fault("surface: to_linen_class", "to_linen_class drops base_metadata_fn: its subclasses box leaves as the default does")
def to_linen_class_drops_base_metadata_fn():
    def make(real):
        def to_linen_class(base_nnx_class, base_metadata_fn=None, base_skip_rng=False, **partial_kwargs):
            return real(base_nnx_class, base_skip_rng=base_skip_rng, **partial_kwargs)

        return to_linen_class

    return dict(patch=_swap_to_linen_class(make))


@fault("surface: to_linen_class", "to_linen_class drops base_skip_rng: its subclasses hand rngs to a constructor "
       "without them (TypeError at init)")
def to_linen_class_drops_base_skip_rng():
    def make(real):
        def to_linen_class(base_nnx_class, *args, base_skip_rng=False, **partial_kwargs):
            return real(base_nnx_class, *args, **partial_kwargs)

        return to_linen_class

    return dict(patch=_swap_to_linen_class(make))


@fault("surface: metadata boxes", "apply restores the NNX state through linen_vars_to_nnx_attrs (flax commit 5bcb1f56, "
       "rolled back the next day): a path held by two collections, and Linen's logical boxes in a mesh, are refused")
def state_restored_through_nnx_conversion():
    def apply_kw(base, self, v, x, kw):
        from flax.nnx.bridge import variables as bv

        bv.linen_vars_to_nnx_attrs(dict(v))  # raises where that conversion does
        return base(self, v, x, kw)

    return dict(apply_kw=apply_kw)


@fault("surface: warnings", "init emits a DeprecationWarning on every call; every number is unchanged")
def deprecation_warning_on_init():
    def init(base, self, key, x):
        warnings.warn("ToLinen.init: this form of init is deprecated (imitated by the fault corpus)",
                      DeprecationWarning, stacklevel=2)
        return base(self, key, x)

    return dict(init=init, only_warns=True)
