"""The ToNNX direction's faults: a Linen module inside an NNX model, broken in one plausible way each.

Each patches flax (``Fault.patch``): ``ToNNX``'s call through
``tonnx_hooks.wrap_call`` (the lazy init runs through it too), or the
reference's own argument checks of this direction. The seed contract's
properties over ``reference.linen_inside_nnx``
(``conformance/properties/to_nnx/contract``) must catch every one.
"""

from __future__ import annotations

import itertools

from conformance.selfcheck.fault import _is_vmapped, _jax, fault
from conformance.selfcheck.tonnx_hooks import dense_params, initializing, stream_keys, traced, wrap_call


def _x(args):
    return args[0] if args else None


# --- lazy_init and the model's rng streams ----------------------------------------------------------


@fault("to_nnx: init key", "lazy_init ignores the model's rngs and initialises from PRNGKey(0)")
def tonnx_init_key_ignored():
    def call(base, self, args, kw):
        if initializing(self):
            kw = {**kw, "rngs": _jax()[0].random.PRNGKey(0)}
        return base(self, *args, **kw)

    return dict(patch=lambda: wrap_call(call))


_calls = itertools.count()


@fault("to_nnx: init key", "lazy_init folds a global call counter into the params key: not reproducible")
def tonnx_init_key_nondeterministic():
    def call(base, self, args, kw):
        if initializing(self):
            jax, nnx = _jax()[0], _nnx()
            n = next(_calls)
            kw = {**kw, "rngs": nnx.Rngs(**{k: jax.random.fold_in(v, n) for k, v in stream_keys(self).items()})}
        return base(self, *args, **kw)

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: init key", "ToNNX no longer hands the default stream to Linen as params: nnx.Rngs(seed) initialises from PRNGKey(0)")
def tonnx_default_stream_not_params():
    def call(base, self, args, kw):
        rngs = self.to_nnx__rngs
        if initializing(self) and rngs is not None and "params" not in dict(rngs.items()):
            kw = {**kw, "rngs": _jax()[0].random.PRNGKey(0)}
        return base(self, *args, **kw)

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: init key", "lazy_init hands Linen the params stream's own key, not a draw from the stream (flax before "
       "0.10.5, changed by commit 300494b0): each seed still gives its own params, but other params than the record's")
def tonnx_lazy_init_raw_stream_key():
    def call(base, self, args, kw):
        rngs = self.to_nnx__rngs
        streams = dict(rngs.items()) if rngs is not None else {}
        stream = streams.get("params", streams.get("default"))
        if initializing(self) and stream is not None and "rngs" not in kw:
            from reference import _compat

            kw = {**kw, "rngs": _compat.get_value(stream.key)}
        return base(self, *args, **kw)

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: variables", "the Linen variables are stored one attribute per collection, as flax 0.9 stored them "
       "(before commit 4a04f754): nnx.state paths read params/kernel, not kernel")
def tonnx_variables_under_collection_attributes():
    def patch():
        from flax.nnx import variablelib
        from flax.nnx.bridge import variables as bv

        to_nnx = getattr(bv, "_conformance_real_linen_vars_to_nnx_attrs", bv.linen_vars_to_nnx_attrs)
        to_linen = getattr(bv, "_conformance_real_nnx_attrs_to_linen_vars", bv.nnx_attrs_to_linen_vars)
        bv._conformance_real_linen_vars_to_nnx_attrs, bv._conformance_real_nnx_attrs_to_linen_vars = to_nnx, to_linen

        def by_collection(variables):
            return {col: to_nnx({col: tree}) for col, tree in variables.items()}

        def back(attrs):
            flat = {}
            for name, tree in attrs.items():
                leaves = bv.traversals.flatten_mapping(tree) if isinstance(tree, dict) else {(): tree}
                cols = {variablelib.variable_name_from_type(type(v)) for v in leaves.values()
                        if isinstance(v, variablelib.Variable)}
                flat.update(tree if cols == {name} else {name: tree})  # the collection's level dropped again
            return to_linen(flat)

        bv.linen_vars_to_nnx_attrs, bv.nnx_attrs_to_linen_vars = by_collection, back

    return dict(patch=patch)


@fault("to_nnx: rng streams", "under a trace the call hands Linen a fixed key: nnx.jit never advances the model's streams")
def tonnx_streams_frozen_under_jit():
    def call(base, self, args, kw):
        if not initializing(self) and traced(_x(args)) and "rngs" not in kw:
            kw = {**kw, "rngs": _jax()[0].random.PRNGKey(0)}
        return base(self, *args, **kw)

    return dict(patch=lambda: wrap_call(call))


# --- the params the call computes with -------------------------------------------------------------


@fault("to_nnx: params flow", "the call subtracts the bias again: no bias reaches the output or its gradient")
def tonnx_call_drops_bias():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        params = dense_params(self)
        return y if params is None else y - params[1].astype(y.dtype)

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: gradients", "the call stops the gradient to the kernel (and x): only the bias trains")
def tonnx_kernel_gradient_stopped():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        params = dense_params(self)
        if params is None:
            return y
        jax = _jax()[0]
        b = params[1].astype(y.dtype)
        return jax.lax.stop_gradient(y) + (b - jax.lax.stop_gradient(b))  # the same value, another gradient

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: variables", "lazy_init converts the Linen bias into a plain nnx.Variable, not an nnx.Param")
def tonnx_bias_not_a_param():
    def call(base, self, args, kw):
        init = initializing(self)
        y = base(self, *args, **kw)
        if init and isinstance(getattr(self, "bias", None), _nnx().Param):
            from reference import _compat

            self.bias = _nnx().Variable(_compat.get_value(self.bias))
        return y

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: dtype", "lazy_init stores the params in a floating x's dtype instead of float32")
def tonnx_params_in_input_dtype():
    def call(base, self, args, kw):
        init = initializing(self)
        y = base(self, *args, **kw)
        x = _x(args)
        jnp = _jax()[1]
        if init and x is not None and jnp.issubdtype(x.dtype, jnp.floating):
            from reference import _compat

            for name in ("kernel", "bias"):
                var = getattr(self, name, None)
                if var is not None:
                    _compat.set_value(var, _compat.get_value(var).astype(x.dtype))
        return y

    return dict(patch=lambda: wrap_call(call))


# --- the output ------------------------------------------------------------------------------------


@fault("to_nnx: output dtype", "the call casts its output to x's dtype (int8 in, int8 out)")
def tonnx_output_in_input_dtype():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        x = _x(args)
        return y if initializing(self) or x is None else y.astype(x.dtype)

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: output shape", "the call drops the last output feature")
def tonnx_output_truncated():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        return y[..., :-1] if dense_params(self) is not None and y.shape[-1] > 1 else y

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: output shape", "the call flattens inputs with more than one batch axis into one")
def tonnx_batch_axes_flattened():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        return y.reshape((-1, y.shape[-1])) if dense_params(self) is not None and y.ndim > 2 else y

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: numerics", "the call clips x to [-4, 4] (a saturating input cast): not linear in x")
def tonnx_input_clipped():
    def call(base, self, args, kw):
        if dense_params(self) is not None and args:
            args = (_jax()[1].clip(args[0], -4, 4).astype(args[0].dtype), *args[1:])
        return base(self, *args, **kw)

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: jit only", "under a trace the call's output is scaled by 1 + 2**-8")
def tonnx_jit_only_scaled():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        return y * (1 + 2**-8) if dense_params(self) is not None and traced(_x(args)) else y

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: vmap only", "under nnx.vmap the call's output is negated")
def tonnx_vmap_only_negated():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        return -y if dense_params(self) is not None and _is_vmapped(_x(args)) else y

    return dict(patch=lambda: wrap_call(call))


@fault("to_nnx: device", "the eager call's output lands on the first device, not x's")
def tonnx_output_on_first_device():
    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        if initializing(self) or traced(y):
            return y
        from conformance.helpers.devices import all_devices

        return _jax()[0].device_put(y, all_devices()[0])

    return dict(patch=lambda: wrap_call(call))


# --- the reference's own checks of this direction --------------------------------------------------


@fault("to_nnx: argument checks", "linen_inside_nnx's argument checks are gone: bad input reaches ToNNX and lazy_init")
def tonnx_checks_removed():
    def patch(ref):
        mod = ref.linen_in_nnx
        mod.check_seed = lambda s: int(s) if isinstance(s, (int, float)) else s
        mod.check_features = lambda f: int(f) if isinstance(f, (int, float)) else f
        mod.check_x = lambda x: x

    return dict(reference=patch)


def _nnx():
    from flax import nnx

    return nnx
