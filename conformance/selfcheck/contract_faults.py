"""The fault corpus: deliberately broken bridges, each imitating a plausible regression.

Every fault is a set of hooks (``Fault``) that ``conformance/selfcheck/faults.py`` wraps
around the real ``to_linen``: around init, around apply, on the constructor's
keywords, or on the reference's own argument checks (two faults break those:
they run before the bridge, and the bad-input properties must prove their
power too). The zoo's faults are in ``conformance/selfcheck/zoo_faults.py``;
``python -m conformance selfcheck`` proves the suite catches every one.
"""

from __future__ import annotations

import itertools
import math

from conformance.selfcheck.fault import _is_traced, _is_vmapped, _jax, _map_leaf, fault

# --- how the init key is used ---------------------------------------------------------------


@fault("init key", "init ignores the key it is given and always uses PRNGKey(0)")
def init_key_ignored():
    return dict(init=lambda base, self, key, x: base(self, _jax()[0].random.PRNGKey(0), x))


_first_key: dict = {}


@fault("init key", "init caches the first concrete key it sees and reuses it for later calls")
def init_key_reused():
    def init(base, self, key, x):
        if not _is_traced(key):
            key = _first_key.setdefault("key", key)
        return base(self, key, x)

    return dict(init=init)


_calls = itertools.count()


@fault("init key", "init folds a global call counter into the key: not reproducible")
def init_key_nondeterministic():
    jax = _jax()[0]
    return dict(init=lambda base, self, key, x: base(self, jax.random.fold_in(key, next(_calls)), x))


@fault("init key", "init derives params from the seed's low 16 bits only (key truncation)")
def init_key_truncated():
    def init(base, self, key, x):
        jax, jnp = _jax()
        return base(self, jnp.stack([jnp.zeros_like(key[0]), key[1] & 0xFFFF]).astype(key.dtype), x)

    return dict(init=init)


@fault("init key", "init routes the key through an extra fold_in: same statistics, other values")
def init_key_rerouted():
    jax = _jax()[0]
    return dict(init=lambda base, self, key, x: base(self, jax.random.fold_in(key, 1), x))


# --- params that do not flow into apply -------------------------------------------------------


@fault("params flow", "apply re-initialises from PRNGKey(0) instead of using the params passed")
def apply_ignores_params():
    def apply(base, self, variables, x):
        jax = _jax()[0]
        return base(self, self.init(jax.random.PRNGKey(0), x), x)

    return dict(apply=apply)


@fault("params flow", "apply drops the bias it is given (uses zeros)")
def apply_ignores_bias():
    jnp = _jax()[1]
    return dict(apply=lambda base, self, v, x: base(self, _map_leaf(v, "bias", jnp.zeros_like), x))


@fault("params flow", "apply keeps the kernel of its first call per shape (a stale cache)")
def apply_stale_kernel():
    cache: dict = {}

    def apply(base, self, v, x):
        k = v["params"]["linear"]["kernel"]
        if not _is_traced(k):
            k = cache.setdefault((tuple(k.shape), str(k.dtype)), k)
        return base(self, _map_leaf(v, "kernel", lambda _: k), x)

    return dict(apply=apply)


# --- output shape, dtype, device -----------------------------------------------------------------


@fault("output shape", "the output drops its last feature when features > 1")
def output_truncated():
    return dict(apply=lambda base, self, v, x: (lambda y: y[..., :-1] if y.shape[-1] > 1 else y)(base(self, v, x)))


@fault("output shape", "batched output comes back flattened to 1-D")
def batched_output_flattened():
    return dict(apply=lambda base, self, v, x: base(self, v, x).reshape(-1))


@fault("output dtype", "the output is cast back to the input's dtype")
def output_in_input_dtype():
    return dict(apply=lambda base, self, v, x: base(self, v, x).astype(x.dtype))


@fault("param dtype", "params are created in float16 (param_dtype changed)")
def params_float16():
    jax, jnp = _jax()
    return dict(init=lambda base, self, key, x: jax.tree.map(lambda a: a.astype(jnp.float16), base(self, key, x)))


@fault("device", "the eager output is moved to the first device, not left on x's device")
def output_on_first_device():
    def apply(base, self, v, x):
        jax = _jax()[0]
        y = base(self, v, x)
        return y if _is_traced(y) else jax.device_put(y, jax.devices()[0])

    return dict(apply=apply)


# --- faults under one transform or input form only ---------------------------------------------------


@fault("jit only", "under jit the output is scaled by (1 + 2**-10): a miscompiled fusion")
def jit_only_scaled():
    return dict(apply=lambda base, self, v, x: base(self, v, x) * ((1 + 2**-10) if _is_traced(x) and not _is_vmapped(x) else 1))


@fault("eager only", "eager apply adds 1e-4 to every output (an op-by-op path bug)")
def eager_only_shifted():
    return dict(apply=lambda base, self, v, x: base(self, v, x) + (0 if _is_traced(x) else 1e-4))


@fault("vmap only", "under vmap the output's sign flips (a wrong batching rule)")
def vmap_only_negated():
    return dict(apply=lambda base, self, v, x: base(self, v, x) * (-1 if _is_vmapped(x) else 1))


@fault("batched only", "batched input is read with its feature axis reversed")
def batched_input_reversed():
    return dict(apply=lambda base, self, v, x: base(self, v, x[..., ::-1] if x.ndim > 1 else x))


# --- faults for some widths, feature counts or dtypes only ----------------------------------------------


@fault("width", "inputs wider than 128 lose their columns past 128")
def wide_input_truncated():
    def apply(base, self, v, x):
        jnp = _jax()[1]
        if x.shape[-1] <= 128:
            return base(self, v, x)
        return base(self, v, jnp.concatenate([x[..., :128], jnp.zeros_like(x[..., 128:])], -1))

    return dict(apply=apply)


@fault("features", "with more than 64 features the columns past 64 are zero")
def many_features_zeroed():
    def apply(base, self, v, x):
        y = base(self, v, x)
        return y if y.shape[-1] <= 64 else y.at[..., 64:].set(0)

    return dict(apply=apply)


@fault("dtype", "half-precision inputs are multiplied in their own dtype (precision loss)")
def half_precision_matmul():
    def apply(base, self, v, x):
        jnp = _jax()[1]
        if x.dtype not in (jnp.float16, jnp.bfloat16):
            return base(self, v, x)
        k = v["params"]["linear"]["kernel"].astype(x.dtype)
        return (x @ k).astype(jnp.float32) + v["params"]["linear"]["bias"]

    return dict(apply=apply)


# --- initializer distribution ------------------------------------------------------------------------------


@fault("initializer", "kernel drawn uniform with lecun variance instead of truncated normal")
def init_uniform():
    def init(base, self, key, x):
        jax = _jax()[0]
        v = base(self, key, x)
        bound = math.sqrt(3.0 / x.shape[-1])
        return _map_leaf(v, "kernel", lambda k: jax.random.uniform(jax.random.fold_in(key, 7), k.shape, k.dtype, -bound, bound))

    return dict(init=init)


@fault("initializer", "kernel scaled by fan-out (1/sqrt(features)) instead of fan-in")
def init_fan_out():
    def init(base, self, key, x):
        v = base(self, key, x)
        return _map_leaf(v, "kernel", lambda k: k * math.sqrt(x.shape[-1] / k.shape[-1]))

    return dict(init=init)


@fault("initializer", "bias initialised to 0.01 instead of zeros")
def bias_init_nonzero():
    return dict(init=lambda base, self, key, x: _map_leaf(base(self, key, x), "bias", lambda b: b + 0.01))


# --- gradients ----------------------------------------------------------------------------------------------


@fault("gradients", "the bias is behind stop_gradient: it never trains")
def grad_bias_stopped():
    jax = _jax()[0]
    return dict(apply=lambda base, self, v, x: base(self, _map_leaf(v, "bias", jax.lax.stop_gradient), x))


@fault("gradients", "the kernel's gradient is doubled (a wrong custom VJP)")
def grad_kernel_doubled():
    jax = _jax()[0]

    @jax.custom_vjp
    def ident(k):
        return k

    ident.defvjp(lambda k: (k, None), lambda _, g: (2 * g,))
    return dict(apply=lambda base, self, v, x: base(self, _map_leaf(v, "kernel", ident), x))


# --- variables tree -----------------------------------------------------------------------------------------


@fault("variables tree", "an extra 'cache' collection appears beside params")
def extra_collection():
    def init(base, self, key, x):
        jnp = _jax()[1]
        return {**base(self, key, x), "cache": {"linear": {"count": jnp.zeros((), jnp.int32)}}}

    def apply(base, self, v, x):
        return base(self, {c: t for c, t in v.items() if c != "cache"}, x)

    return dict(init=init, apply=apply)


@fault("variables tree", "leaves come back boxed in flax.linen.Partitioned metadata")
def boxed_leaves():
    def init(base, self, key, x):
        from flax import linen as nn

        jax = _jax()[0]
        return jax.tree.map(lambda a: nn.Partitioned(a, (None,) * a.ndim), base(self, key, x))

    def apply(base, self, v, x):
        from flax.core import meta

        return base(self, meta.unbox(v), x)

    return dict(init=init, apply=apply)


@fault("variables tree", "apply drops params leaves it does not know, silently")
def unknown_leaves_dropped():
    def apply(base, self, v, x):
        lin = v["params"]["linear"]
        return base(self, {**v, "params": {**v["params"], "linear": {k: lin[k] for k in ("kernel", "bias") if k in lin}}}, x)

    return dict(apply=apply)


@fault("module", "to_linen keeps only the keywords the class's __init__ declares, swallowing the rest")
def kwargs_swallowed():
    import inspect

    def kwargs(cls, kw):
        known = inspect.signature(cls.__init__).parameters
        return {k: v for k, v in kw.items() if k in known}

    return dict(kwargs=kwargs)


@fault("module", "the wrapped module is not hashable, so it cannot be a jit static argument")
def module_unhashable():
    return dict(attrs={"__hash__": None})


@fault("initializer", "init draws params in the input's dtype, then casts them to float32")
def init_in_input_dtype():
    def init(base, self, key, x):
        jax, jnp = _jax()
        v = base(self, key, x)
        if not jnp.issubdtype(x.dtype, jnp.floating) or x.dtype == jnp.float32:
            return v
        return jax.tree.map(lambda a: a.astype(x.dtype).astype(a.dtype), v)

    return dict(init=init)


# --- small numeric drift ------------------------------------------------------------------------------------


@fault("numerics", "the output drifts by a relative 1e-5 (a changed accumulation)")
def drift_1e5():
    return dict(apply=lambda base, self, v, x: base(self, v, x) * (1 + 1e-5))


@fault("numerics", "the product runs in bfloat16 (matmul precision lost)")
def bf16_matmul():
    def apply(base, self, v, x):
        jnp = _jax()[1]
        lin = v["params"]["linear"]
        y = jnp.dot(x.astype(jnp.bfloat16), lin["kernel"].astype(jnp.bfloat16), preferred_element_type=jnp.float32)
        return (y + lin["bias"]).astype(jnp.result_type(x.dtype, jnp.float32))

    return dict(apply=apply)


# --- the reference's argument checks (they run before the bridge) -------------------------------


@fault("argument checks", "the reference's argument checks are gone: bad input reaches flax")
def checks_removed():
    def patch(ref):
        ref.check_seed = lambda s: int(s) if isinstance(s, (int, float)) else s
        ref.check_features = lambda f: int(f) if isinstance(f, (int, float)) else f
        ref.check_x = lambda x: x

    return dict(reference=patch)


@fault("argument checks", "the seed check is off by one and rejects the domain's top, 2**31 - 1")
def seed_check_off_by_one():
    def patch(ref):
        import numpy as np

        original = ref.check_seed

        def check_seed(s):
            if isinstance(s, (int, float, np.generic)) and float(s) >= 2**31 - 1:
                raise ValueError(f"seed must be an integer below 2147483647; got {s!r}")
            return original(s)

        ref.check_seed = check_seed

    return dict(reference=patch)
