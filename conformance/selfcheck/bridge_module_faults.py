"""Faults of ``bridge.Module`` (Linen code run as NNX modules), each a change flax really made to it.

Each patches ``flax/nnx/bridge/module.py`` (or, for a Linen layer held in a
bridge module, ``wrappers.py``'s ``ToNNX``) as it was before a commit of flax's
history, re-expressed on the installed release. The properties that catch them:
``conformance/properties/to_nnx/pipelines/test_bridge_module.py``.
"""

from __future__ import annotations

from conformance.selfcheck.fault import fault
from conformance.selfcheck.to_nnx_pipeline_faults import _replace

AREA = "to_nnx pipelines: bridge.Module"


def _module_py():
    from flax.nnx.bridge import module

    return module


def _proxied(owner, name: str, overrides) -> None:
    """``owner.<name>``, a module ``owner`` imported, replaced by a copy of its namespace with ``overrides(real)`` set
    on it; the real one kept on ``owner`` once per process (a patch runs again)."""
    import types

    key = f"_conformance_real_{name}"
    real = getattr(owner, key, getattr(owner, name))
    setattr(owner, key, real)
    proxy = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
    for attr, value in overrides(real).items():
        setattr(proxy, attr, value)
    setattr(owner, name, proxy)


def _meta_call_adjusted(adjust) -> dict:
    """A fault of ``ModuleMeta.__call__``: ``adjust(ctx, cls, kwargs)`` runs first where a module context is open."""

    def make(real):
        def meta_call(cls, *args, **kwargs):
            ctx = _module_py().MODULE_CONTEXT.module_stack[-1]
            if ctx is not None:
                adjust(ctx, cls, kwargs)
            return real(cls, *args, **kwargs)

        return meta_call

    return dict(patch=lambda: _replace(_module_py().ModuleMeta, "__call__", make))


@fault(AREA, "init and apply return every variable in its NNX box (NNXMeta), plain params included, as before flax "
       "commit c01ff11e: a Linen pipeline reading init's output finds boxes where Linen gives arrays")
def bridge_module_init_returns_boxes():
    def overrides(real):
        def to_linen_var(variable):
            if "linen_meta_type" in variable.get_metadata():
                return real.to_linen_var(variable)
            return real.NNXMeta(type(variable), variable.get_value(), variable.get_metadata())

        # every param carried an "unbox" metadata key: none was a vanilla variable
        return {"is_vanilla_variable": lambda variable: False, "to_linen_var": to_linen_var}

    return dict(patch=lambda: _proxied(_module_py(), "bridge_variables", overrides))


@fault(AREA, "an explicitly named submodule advances the compact type counter too (before flax commit 06a50e88): the "
       "auto-named sibling after it is Inner_1, not Linen's Inner_0, so its variables move to another path")
def bridge_module_named_submodule_counted():
    def adjust(ctx, cls, kwargs):
        if ctx.in_compact and "name" in kwargs:
            ctx.type_counter[cls] += 1

    return _meta_call_adjusted(adjust)


@fault(AREA, "apply takes Linen's boxed variables as plain values (the boxes unboxed before the NNX state is built, as "
       "before flax commit 1c0fca00): the variables it returns have lost their nn.Partitioned annotations")
def bridge_module_apply_unboxes_linen_variables():
    def make(real):
        def apply(self, variables, *args, **kwargs):
            from flax.core import meta

            return real(self, meta.unbox(variables), *args, **kwargs)

        return apply

    return dict(patch=lambda: _replace(_module_py().Module, "apply", make))


@fault(AREA, "a submodule given name= in setup() loses the name and lives under its attribute (setup ran with no "
       "parent on the module stack, as before flax commits cb1bb173 and 18faf549): Linen files it under the name")
def bridge_module_setup_name_dropped():
    def adjust(ctx, cls, kwargs):
        import inspect

        if not ctx.in_compact and "name" not in inspect.get_annotations(cls):
            kwargs.pop("name", None)

    return _meta_call_adjusted(adjust)


@fault(AREA, "a Linen layer held through ToNNX in a bridge.Module is applied immutably: ToNNX does not take mutable "
       "from the module's apply (as before flax commit 300494b0), so its BatchNorm cannot update its statistics")
def bridge_module_wrapped_linen_ignores_mutable():
    def patch():
        from flax.nnx.bridge import wrappers

        _proxied(wrappers, "bdg_module", lambda real: {"current_module": lambda: None})

    return dict(patch=patch)


@fault(AREA, "init and apply return the RNG streams' state as variables too (as before flax commit 54138501): Linen "
       "has no such collection, so a Linen pipeline finds keys and counts among its variables")
def bridge_module_returns_rng_state():
    # nothing is an instance of the RNG state type it skips: no RNG state is left out
    return dict(patch=lambda: _proxied(_module_py(), "rnglib", lambda real: {"RngState": type("NoRngStateSkipped", (), {})}))


@fault(AREA, "the bridge walks a bridge module in the ambient graph mode, not always as a graph (as before flax commit "
       "8f8ec30a): in NNX's tree mode init raises, a bridge module being no pytree")
def bridge_module_walked_in_the_ambient_mode():
    def overrides(real):
        return {"iter_graph": lambda node, graph=None, **kw: real.iter_graph(node, **kw)}

    return dict(patch=lambda: _proxied(_module_py(), "graphlib", overrides))
