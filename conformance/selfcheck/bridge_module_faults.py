"""Faults of ``bridge.Module`` (Linen code run as NNX modules), each a change flax really made to it.

Each patches ``flax/nnx/bridge/module.py`` as it was before a commit of flax's
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


@fault(AREA, "init and apply return every variable in its NNX box (NNXMeta), plain params included, as before flax "
       "commit c01ff11e: a Linen pipeline reading init's output finds boxes where Linen gives arrays")
def bridge_module_init_returns_boxes():
    def patch():
        import types

        mod = _module_py()
        real = getattr(mod, "_conformance_real_bridge_variables", mod.bridge_variables)
        mod._conformance_real_bridge_variables = real
        proxy = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
        proxy.is_vanilla_variable = lambda variable: False  # every param carried an "unbox" metadata key

        def to_linen_var(variable):
            if "linen_meta_type" in variable.get_metadata():
                return real.to_linen_var(variable)
            return real.NNXMeta(type(variable), variable.get_value(), variable.get_metadata())

        proxy.to_linen_var = to_linen_var
        mod.bridge_variables = proxy

    return dict(patch=patch)


@fault(AREA, "an explicitly named submodule advances the compact type counter too (before flax commit 06a50e88): the "
       "auto-named sibling after it is Inner_1, not Linen's Inner_0, so its variables move to another path")
def bridge_module_named_submodule_counted():
    def make(real):
        def meta_call(cls, *args, **kwargs):
            mod = _module_py()
            ctx = mod.MODULE_CONTEXT.module_stack[-1]
            if ctx is not None and ctx.in_compact and "name" in kwargs:
                ctx.type_counter[cls] += 1
            return real(cls, *args, **kwargs)

        return meta_call

    return dict(patch=lambda: _replace(_module_py().ModuleMeta, "__call__", make))


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
    def make(real):
        def meta_call(cls, *args, **kwargs):
            import inspect

            ctx = _module_py().MODULE_CONTEXT.module_stack[-1]
            if ctx is not None and not ctx.in_compact and "name" not in inspect.get_annotations(cls):
                kwargs.pop("name", None)
            return real(cls, *args, **kwargs)

        return meta_call

    return dict(patch=lambda: _replace(_module_py().ModuleMeta, "__call__", make))


@fault(AREA, "a Linen layer held through ToNNX in a bridge.Module is applied immutably: ToNNX does not take mutable "
       "from the module's apply (as before flax commit 300494b0), so its BatchNorm cannot update its statistics")
def bridge_module_wrapped_linen_ignores_mutable():
    def patch():
        import types

        from flax.nnx.bridge import wrappers

        real = getattr(wrappers, "_conformance_real_bdg_module", wrappers.bdg_module)
        wrappers._conformance_real_bdg_module = real
        proxy = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
        proxy.current_module = lambda: None
        wrappers.bdg_module = proxy

    return dict(patch=patch)


@fault(AREA, "init and apply return the RNG streams' state as variables too (as before flax commit 54138501): Linen "
       "has no such collection, so a Linen pipeline finds keys and counts among its variables")
def bridge_module_returns_rng_state():
    def patch():
        import types

        mod = _module_py()
        real = getattr(mod, "_conformance_real_rnglib", mod.rnglib)
        mod._conformance_real_rnglib = real
        proxy = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
        proxy.RngState = type("NoRngStateSkipped", (), {})  # nothing is an instance: no RNG state is left out
        mod.rnglib = proxy

    return dict(patch=patch)
