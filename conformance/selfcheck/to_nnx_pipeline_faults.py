"""Faults of Linen layers inside NNX models: ``bridge.ToNNX``'s call, ``lazy_init`` and the variable conversion.

Each patches flax itself (``Fault.patch``): the wrapper's ``__call__`` or
the Linen-to-NNX conversion of ``flax/nnx/bridge/variables.py``, as a
regression there would. The properties that catch them are in
``conformance/properties/to_nnx/pipelines``.
"""

from __future__ import annotations

from conformance.selfcheck.fault import fault

AREA = "to_nnx pipelines"


def _wrap_call(make):
    """Replace ``ToNNX.__call__`` with ``make(real_call)``, once per process."""
    from flax.nnx.bridge import wrappers

    real = getattr(wrappers.ToNNX, "_conformance_real_call", wrappers.ToNNX.__call__)
    wrappers.ToNNX._conformance_real_call = real
    wrappers.ToNNX.__call__ = make(real)


def _call_replaced(make) -> dict:
    """A fault whose patch replaces ``ToNNX.__call__`` with ``make(real_call)`` (flax imported only then)."""
    return dict(patch=lambda: _wrap_call(make))


def _replace(module, name: str, make) -> None:
    """``module.<name> = make(real)``, the real one kept on the module once per process (a patch runs again)."""
    key = f"_conformance_real_{name}"
    real = getattr(module, key, getattr(module, name))
    setattr(module, key, real)
    setattr(module, name, make(real))


def _variables_function_replaced(name: str, make, **extra) -> dict:
    """A fault whose patch replaces ``flax/nnx/bridge/variables.py``'s function ``name`` with ``make(real)`` (the
    wrapper looks these up at call time)."""

    def patch():
        from flax.nnx.bridge import variables as bv

        _replace(bv, name, make)

    return dict(patch=patch, **extra)


def _conversion_replaced(make) -> dict:
    """A fault whose patch replaces the conversion of one Linen variable (``variables.to_nnx_var``) with ``make(real)``."""
    return _variables_function_replaced("to_nnx_var", make)


def _public_name_replaced(name: str, make) -> dict:
    """A fault whose patch replaces ``flax.nnx.bridge.<name>`` (and ``bridge.wrappers.<name>``, where the bridge's
    own code looks it up) with ``make(real)``, the real one kept once per process."""

    def patch():
        from flax.nnx import bridge
        from flax.nnx.bridge import wrappers

        key = f"_conformance_real_{name}"
        real = getattr(wrappers, key, getattr(wrappers, name))
        setattr(wrappers, key, real)
        replacement = make(real)
        setattr(wrappers, name, replacement)
        setattr(bridge, name, replacement)

    return dict(patch=patch)


def _initializing(model) -> bool:
    return bool(model._pytree__state.initializing)


def _own_variables(model) -> bool:
    """True once the wrapper holds any Linen variable (lazy_init has run)."""
    return any(not k.startswith(("to_nnx__", "_pytree__")) for k in vars(model))


@fault(f"{AREA}: state", "the wrapper computes with the params its lazy_init created (cached with its Linen module), "
       "not the NNX state it holds: nnx.update, nnx.merge with another state and restored checkpoints are ignored")
def tonnx_state_updates_ignored():
    cached: dict = {}

    def make(real):
        from flax import nnx

        def call(self, *args, **kw):
            key = id(self.to_nnx__module)
            if _initializing(self):
                out = real(self, *args, **kw)
                cached[key] = nnx.to_pure_dict(nnx.state(self, nnx.Param))
                return out
            if key in cached:
                state = nnx.state(self, nnx.Param)
                nnx.replace_by_pure_dict(state, cached[key])
                nnx.update(self, state)
            return real(self, *args, **kw)

        return call

    return _call_replaced(make)


@fault(f"{AREA}: batch stats", "a training call's batch_stats updates are not written back into the NNX state")
def tonnx_batch_stats_not_written_back():
    def make(real):
        from flax import nnx

        def call(self, *args, **kw):
            if _initializing(self):
                return real(self, *args, **kw)
            before = nnx.to_pure_dict(nnx.state(self, nnx.BatchStat))
            out = real(self, *args, **kw)
            state = nnx.state(self, nnx.BatchStat)
            nnx.replace_by_pure_dict(state, before)
            nnx.update(self, state)
            return out

        return call

    return _call_replaced(make)


@fault(f"{AREA}: sow", "values the Linen module sows under mutable=['intermediates'] are dropped from the NNX state")
def tonnx_intermediates_dropped():
    def make(real):
        from flax import nnx

        def call(self, *args, **kw):
            out = real(self, *args, **kw)
            if not _initializing(self):
                nnx.pop(self, nnx.Intermediate)
            return out

        return call

    return _call_replaced(make)


@fault(f"{AREA}: partitioning", "Linen partition boxes (nn.Partitioned, nn.LogicallyPartitioned) become plain NNX "
       "variables: their names are dropped, so nothing is sharded")
def tonnx_partition_metadata_dropped():
    def make(real):
        from flax.core import meta
        from flax.nnx.bridge import variables as bv

        def to_nnx_var(col, x):
            if isinstance(x, meta.AxisMetadata) and not isinstance(x, bv.NNXMeta):
                x = x.unbox()
            return real(col, x)

        return to_nnx_var

    return _conversion_replaced(make)


@fault(f"{AREA}: dropout", "calls after lazy_init draw every stream from a fixed key: the model's and the call's "
       "nnx.Rngs are ignored, every call drops the same cells")
def tonnx_dropout_key_fixed():
    def make(real):
        from flax import nnx

        def call(self, *args, rngs=None, **kw):
            if not _initializing(self):
                streams = rngs if isinstance(rngs, nnx.Rngs) else self.to_nnx__rngs
                names = [name for name, _ in streams.items()] if isinstance(streams, nnx.Rngs) else ["dropout"]
                rngs = nnx.Rngs(**{name: 0 for name in names})
            return real(self, *args, rngs=rngs, **kw)

        return call

    return _call_replaced(make)


@fault(f"{AREA}: call", "keyword arguments of a call after lazy_init (deterministic=, train=) do not reach the Linen module")
def tonnx_call_kwargs_dropped():
    def make(real):
        def call(self, *args, rngs=None, method=None, mutable=None, **kw):
            if _initializing(self):
                return real(self, *args, rngs=rngs, method=method, mutable=mutable, **kw)
            return real(self, *args, rngs=rngs, method=method, mutable=mutable)

        return call

    return _call_replaced(make)


@fault(f"{AREA}: methods", "a Linen method called through the wrapper (model.negated(x), method=) runs __call__ instead")
def tonnx_method_routed_to_call():
    def make(real):
        def call(self, *args, method=None, **kw):
            return real(self, *args, **kw)

        return call

    return _call_replaced(make)


@fault(f"{AREA}: lazy_init", "calling a ToNNX that was never lazy_init'ed initialises it silently instead of raising")
def tonnx_call_before_init_initialises():
    def make(real):
        from flax.nnx import bridge

        def call(self, *args, **kw):
            if not _initializing(self) and not _own_variables(self):
                bridge.lazy_init(self, *args, **kw)
            return real(self, *args, **kw)

        return call

    return _call_replaced(make)


@fault(f"{AREA}: lazy_init", "lazy_init's check of its argument is inverted (flax 0.10.4's typo, fixed by ce6e2496): "
       "a plain function gets an AttributeError instead of the ValueError naming fn")
def tonnx_lazy_init_check_inverted():
    def make(real):
        def lazy_init(fn, *args, **kwargs):
            from flax import nnx

            if not isinstance(fn, nnx.Module) and not hasattr(fn, "__self__") and isinstance(fn.__self__, nnx.Module):
                # the typo: a plain function has no __self__, so the check itself raises AttributeError
                raise ValueError(f"{fn = } needs to be a method of an NNX Module.")
            return real(fn, *args, **kwargs)

        return lazy_init

    return _public_name_replaced("lazy_init", make)


@fault(f"{AREA}: batch stats", "a call's updates replace the nested attribute they belong to instead of merging into it "
       "(a shallow dict merge, as ToNNX did before flax commit 4e919207): params beside updated statistics are lost")
def tonnx_updates_merged_shallowly():
    def patch():
        from flax.nnx.bridge import variables as bv

        def shallow(original, update):
            return {**original, **update}

        bv._recursive_merge = shallow

    return dict(patch=patch)


@fault(f"{AREA}: own collections", "lazy_init makes no Variable type for a Linen collection flax does not name: a layer "
       "with a collection of its own fails with 'not registered' (the conversion without allow_register=True, as "
       "before flax commit f2892823)")
def tonnx_own_collection_unregistered():
    def make(real):
        from flax.nnx import variablelib

        def to_nnx_var(col, x):
            variablelib.variable_type_from_name(col)  # raises for a name nothing registered
            return real(col, x)

        return to_nnx_var

    return _conversion_replaced(make)


@fault(f"{AREA}: pytree", "the wrapper is not a pytree though native NNX modules are (class ToNNX(Module, "
       "pytree=False), as in flax 0.11 before commit f4bc868a): jax.tree.leaves(model) is [model]")
def tonnx_not_a_pytree():
    def make(real):
        class ToNNX(real, pytree=False):  # jax registers each class apart: a subclass left out is one opaque leaf
            pass

        ToNNX.__qualname__, ToNNX.__module__ = real.__qualname__, real.__module__
        return ToNNX

    return _public_name_replaced("ToNNX", make)


@fault(f"{AREA}: Linen boxes", "the wrapper hands the Linen layer raw arrays, its nn.Partitioned boxes stripped "
       "(as before flax commit 4bb2152d re-boxed the NNX variables): a layer reading its params' names finds none")
def tonnx_linen_boxes_unboxed():
    def make(real):
        from flax.core import meta

        return lambda attrs: meta.unbox(real(attrs))

    return _variables_function_replaced("nnx_attrs_to_linen_vars", make)


@fault(f"{AREA}: warnings", "every call of the wrapper reads each variable's deprecated .value on the way to Linen "
       "(flax before commit b5db513f): a DeprecationWarning per call, every number unchanged")
def tonnx_value_access_warns():
    def make(real):
        def to_linen_var(vs):
            vs.value  # noqa: B018 - the read is the fault: flax warns on it
            return real(vs)

        return to_linen_var

    return _variables_function_replaced("to_linen_var", make, only_warns=True)


@fault(f"{AREA}: registered types", "the conversion keeps a type cache of its own, as the bridge did before flax commit "
       "61634e47: a Linen collection the team registered an NNX Variable type for becomes a type the bridge made "
       "(named after the collection, mapped back to it), not the registered one")
def tonnx_registered_type_ignored():
    made: dict = {}

    def make(real):
        from flax import nnx

        def to_nnx_var(col, x):
            var = real(col, x)
            if type(var).__module__.startswith("flax."):  # flax's own types, and those it made for unnamed collections
                return var
            own = made.setdefault(col, type(col, (nnx.Variable,), {}))
            return own(var.get_value())

        return to_nnx_var

    def name_from_type(real_name):
        def variable_name_from_type(typ, /, **kw):  # the way back knows the bridge's own types
            return next((n for n, t in made.items() if t is typ), None) or real_name(typ, **kw)

        return variable_name_from_type

    def patch():
        from flax.nnx import variablelib
        from flax.nnx.bridge import variables as bv

        _replace(bv, "to_nnx_var", make)
        _replace(variablelib, "variable_name_from_type", name_from_type)

    return dict(patch=patch)


@fault(f"{AREA}: lazy_init", "a new ToNNX keeps its Linen collections in a set until lazy_init makes it a tuple (flax "
       "before commit 4bb2152d): the graph definition of a model not yet initialised cannot be hashed, so nnx.jit "
       "cannot take it")
def tonnx_uninitialised_graphdef_unhashable():
    def patch():
        from flax.nnx.bridge import wrappers

        def make_init(real):
            def init(self, *args, **kwargs):
                real(self, *args, **kwargs)
                self.to_nnx__linen_collections = set()  # a static attribute: part of the graph definition

            return init

        def make_call(real):
            def call(self, *args, **kwargs):
                out = real(self, *args, **kwargs)
                if isinstance(getattr(self, "to_nnx__linen_collections", None), set):
                    self.to_nnx__linen_collections = tuple(sorted(_held_collections(self)))
                return out

            return call

        _replace(wrappers.ToNNX, "__init__", make_init)
        _wrap_call(make_call)

    return dict(patch=patch)


def _held_collections(model) -> set:
    """The Linen collections the wrapper holds, by the first key of each of its own attributes' state paths."""
    return {k for k in vars(model) if not k.startswith(("to_nnx__", "_pytree__")) and k not in ("module", "rngs")}


@fault(f"{AREA}: attributes", "an attribute of the wrapper that is no Variable goes to Linen under a collection 'nnx' "
       "(as before flax commit 1c0fca00) instead of being refused: the layer is applied with a variable it never declared")
def tonnx_plain_attribute_passed_to_the_layer():
    def make(real):
        def nnx_attrs_to_linen_vars(nnx_attrs):
            from flax.nnx import variablelib

            plain = {k: v for k, v in nnx_attrs.items() if not isinstance(v, (dict, variablelib.Variable))}
            out = real({k: v for k, v in nnx_attrs.items() if k not in plain})
            return {**out, "nnx": plain} if plain else out

        return nnx_attrs_to_linen_vars

    return _variables_function_replaced("nnx_attrs_to_linen_vars", make)


@fault(f"{AREA}: attributes", "the wrapper takes what it is given for a static attribute, as native modules do (before "
       "flax commit 431291ed marked it as data): a dict of Variables set on the model is refused ('Found data ... "
       "assigned to static attribute')")
def tonnx_assigned_variables_refused():
    def patch():
        from flax.nnx.bridge import wrappers

        def setattr_as_a_module(self, name, value):
            super(wrappers.ToNNX, self)._setattr(name, value)

        _replace(wrappers.ToNNX, "_setattr", lambda real: setattr_as_a_module)

    return dict(patch=patch)
