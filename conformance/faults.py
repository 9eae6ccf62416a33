"""A corpus of deliberately broken bridges, and the pytest plugin that swaps one in.

Two more faults break the reference's own argument checks instead: they run
before the bridge, and the bad-input properties must prove their power too.

    pytest --pyargs conformance -p conformance.faults --fault NAME

replaces ``flax.nnx.bridge.to_linen`` (in every xdist worker) with one whose
module misbehaves as described. Each fault imitates a plausible regression of
the bridge or of what it wraps; ``python -m conformance selfcheck`` proves the
suite catches every one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable

FAULTS: dict[str, "Fault"] = {}


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    area: str
    description: str
    init: Callable | None = None  # (base_init, self, key, x) -> variables
    apply: Callable | None = None  # (base_apply, self, variables, x) -> y
    kwargs: Callable | None = None  # (cls, kwargs) -> the kwargs passed on to the real to_linen
    attrs: dict | None = None  # class attributes of the broken module
    reference: Callable | None = None  # (reference module) -> None: breaks the reference's own checks
    apply_kw: Callable | None = None  # (base_apply, self, variables, x, kw) -> out: sees rngs= and mutable=
    modules: str | None = None  # a factory 'package.module:function' declaring broken user modules


def fault(area: str, description: str):
    def register(fn):
        hooks = fn()
        FAULTS[fn.__name__] = Fault(fn.__name__, area, description, **hooks)
        return fn

    return register


# --- helpers the faults share (jax imported lazily: the plugin loads before jax is set up) ---


def _jax():
    import jax
    import jax.numpy as jnp

    return jax, jnp


def _is_traced(x) -> bool:
    jax, _ = _jax()
    return isinstance(x, jax.core.Tracer)


def _is_vmapped(x) -> bool:
    try:
        from jax._src.interpreters.batching import BatchTracer
    except ImportError:  # pragma: no cover - older jax
        from jax.interpreters.batching import BatchTracer
    return isinstance(x, BatchTracer)


def _map_leaf(variables, name: str, fn):
    """Apply ``fn`` to params/linear/<name>."""
    v = {c: dict(t) for c, t in variables.items()}
    lin = dict(v["params"]["linear"])
    lin[name] = fn(lin[name])
    v["params"] = {**v["params"], "linear": lin}
    return v


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


# --- the module zoo (reference/zoo.py) and the team's own modules ---------------------------------------


@fault("zoo: dropout", "apply replaces every stream key it is given with PRNGKey(0): the same mask every step")
def dropout_key_ignored():
    def apply_kw(base, self, v, x, kw):
        if kw.get("rngs"):
            jax = _jax()[0]
            kw["rngs"] = {name: jax.random.PRNGKey(0) for name in kw["rngs"]}
        return base(self, v, x, kw)

    return dict(apply_kw=apply_kw)


@fault("zoo: dropout", "init without a key for a stream the module draws from fails with an error that does not name it")
def init_error_hides_missing_stream():
    def init(base, self, key, x):
        try:
            return base(self, key, x)
        except Exception:  # noqa: BLE001 - the regression: whatever flax raised, the stream's name is lost
            raise RuntimeError("to_linen: init failed (an RNG key is missing)") from None

    return dict(init=init)


@fault("zoo: batch stats", "apply(mutable=[...]) returns the state it was given instead of the updated state")
def batch_stats_not_updated():
    def apply_kw(base, self, v, x, kw):
        out = base(self, v, x, kw)
        if kw.get("mutable") and isinstance(out, tuple):
            y, updates = out
            return y, {c: v[c] if c in v else t for c, t in updates.items()}
        return out

    return dict(apply_kw=apply_kw)


@fault("zoo: kwargs", "to_linen grows a keyword parameter dtype= and consumes it silently")
def kwarg_dtype_swallowed():
    return dict(kwargs=lambda cls, kw: {k: v for k, v in kw.items() if k != "dtype"})


@fault("user module", "a team's module whose apply ignores its params (declared through --module)")
def user_module_ignores_params():
    return dict(modules="conformance.faults:params_ignoring_modules")


def params_ignoring_modules():
    """A team's declaration whose module computes with a constant instead of its kernel."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from conformance.declare import ModuleSpec

    class IgnoresParams(nnx.Module):
        def __init__(self, width: int, features: int, rngs):
            self.linear = nnx.Linear(width, features, rngs=rngs)

        def __call__(self, x):
            return jnp.tanh(x @ jnp.full(self.linear.kernel.shape, 0.1, x.dtype))

    x = np.random.default_rng(0).uniform(-1, 1, (4, 8)).astype(np.float32)
    return ModuleSpec(name="user_ignores_params", nnx_class=IgnoresParams, kwargs=dict(width=8, features=5), inputs=(x,))


# --- the swap -----------------------------------------------------------------------------------------------


def _faulty_init(f: Fault, base, self, key, x, kw):
    """``f.init`` around the real init; given a key per stream (the zoo's init), it acts on the params key."""
    if not isinstance(key, dict):
        return f.init(lambda s, k, x_: base.init(s, k, x_, **kw), self, key, x)
    return f.init(lambda s, k, x_: base.init(s, {**key, "params": k}, x_, **kw), self, key["params"], x)


def _faulty_apply(f: Fault, base, self, v, x, kw):
    """``f.apply`` around the real apply; under ``mutable=`` it acts on the output and the updates pass through."""
    if not kw.get("mutable"):
        return f.apply(lambda s, v_, x_: base.apply(s, v_, x_, **kw), self, v, x)
    updates = {}

    def output_only(s, v_, x_):
        y, upd = base.apply(s, v_, x_, **kw)
        updates["last"] = upd
        return y

    y = f.apply(output_only, self, v, x)
    return y, updates["last"]


def broken_to_linen(real_to_linen, f: Fault):
    """A ``to_linen`` whose modules run ``f``'s init and apply hooks around the real ones."""
    import flax.linen as nn

    def to_linen(cls, *args, **kwargs):
        if f.kwargs:
            kwargs = f.kwargs(cls, kwargs)
        module = real_to_linen(cls, *args, **kwargs)
        base = type(module)
        methods = dict(f.attrs or {})
        if f.init:
            methods["init"] = lambda self, key, x, **kw: _faulty_init(f, base, self, key, x, kw)
        if f.apply:
            methods["apply"] = lambda self, v, x, **kw: _faulty_apply(f, base, self, v, x, kw)
        if f.apply_kw:
            methods["apply"] = lambda self, v, x, **kw: f.apply_kw(lambda s, v_, x_, kw_: base.apply(s, v_, x_, **kw_),
                                                                 self, v, x, dict(kw))
        faulty = type(f"Faulty_{base.__name__}", (base,), methods)
        fields = {fl.name: getattr(module, fl.name) for fl in dataclasses.fields(module) if fl.init and fl.name != "parent"}
        assert isinstance(module, nn.Module)
        return faulty(**fields)

    return to_linen


ACTIVE: str | None = None  # the fault installed in this process: repro snippets re-apply it


def unknown_fault_message(name: str) -> str:
    return f"--fault {name!r} is not a fault of the corpus; one of: {', '.join(sorted(FAULTS))}"


def install(name: str) -> None:
    """Swap ``flax.nnx.bridge.to_linen`` for the broken one named ``name``."""
    global ACTIVE
    if name not in FAULTS:
        raise ValueError(unknown_fault_message(name))
    from flax.nnx import bridge

    f = FAULTS[name]
    ACTIVE = name
    if f.modules:  # a broken user module: declared as a team would, through the environment (xdist workers too)
        import os

        from conformance import declare

        os.environ[declare.MODULE_ENV] = f.modules
        return
    if f.reference:
        import reference

        f.reference(reference)
        return
    real = getattr(bridge, "_conformance_real_to_linen", bridge.to_linen)
    bridge._conformance_real_to_linen = real
    bridge.to_linen = broken_to_linen(real, f)


# --- pytest plugin ----------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--fault", default=None, help=f"swap in a broken bridge: one of {', '.join(sorted(FAULTS))}")
    parser.addoption("--catchers-first", action="store_true",
                     help="run the properties that catch most of the corpus first (selfcheck --first-catch)")


def catchers_first(items, order) -> list:
    """``items`` with those whose property is in ``order`` first, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(item.originalname or item.name.split("[")[0], len(rank)))


def pytest_collection_modifyitems(config, items):
    if config.getoption("--catchers-first"):
        from conformance import config as defaults

        items[:] = catchers_first(items, defaults.FIRST_CATCH_ORDER)


def pytest_configure(config):
    import pytest

    name = config.getoption("--fault")
    if name and name not in FAULTS:
        raise pytest.UsageError(unknown_fault_message(name))
    from conformance import _setup

    if name and _setup.role(config) != "controller":  # the xdist controller runs no tests and never imports jax
        install(name)  # in every process that runs tests


def pytest_report_header(config):
    name = config.getoption("--fault")
    if name:
        return [f"conformance: FAULT INJECTED: {name}: {FAULTS[name].description}"]
