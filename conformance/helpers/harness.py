"""What the properties run: devices, placed inputs, cached compiled calls, the oracle.

Compiled functions are cached per (width, features, form), and jax caches
their executables per shape, dtype and device, so a run compiles once per
point of the shape menu instead of once per example.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np

from conformance.numerics import errormodel
from conformance.helpers.devices import device_by_id
from conformance.helpers.hypothesis_helpers import CURRENT_PROPERTY, Case
from reference import _compat, check_features, linen_module, prng_key

def x64_for(dtype: str) -> bool:
    return dtype in ("float64", "int64")


@contextlib.contextmanager
def numerics(case_or_dtype):
    """The scope a case runs in: x64 on when its dtype needs it, and only then; a case's device as jax's default.

    The default device is part of jit's trace context, so each device gets its
    own trace, as a pipeline that pins a device would.
    """
    if isinstance(case_or_dtype, Case):
        with _compat.maybe_x64(x64_for(case_or_dtype.dtype)), jax.default_device(device_by_id(case_or_dtype.device)):
            yield
    else:
        with _compat.maybe_x64(x64_for(case_or_dtype)):
            yield


def place(x_np: np.ndarray, device: str):
    """``x`` as a JAX array committed to ``device``.

    ``device_put`` of the NumPy array itself: ``jnp.asarray`` would compile a
    staging computation per shape and dtype, in every xdist worker.
    """
    return jax.device_put(x_np, device_by_id(device))


def case_x(case: Case):
    return place(case.x.build(), case.device)


# --- compiled building blocks ------------------------------------------------------------


def module(width: int, features, form: str = "closure"):
    return linen_module(int(width), check_features(features), form)


@functools.lru_cache(maxsize=None)
def jit_init(width: int, features: int, form: str = "closure"):
    """``jit(init)`` with the seed traced: one compile per shape, not per seed."""
    m = module(width, features, form)
    return jax.jit(lambda seed, x: m.init(prng_key(seed), x))


@functools.lru_cache(maxsize=None)
def jit_apply(width: int, features: int, form: str = "closure"):
    return jax.jit(module(width, features, form).apply)


@functools.lru_cache(maxsize=None)
def jit_init_many(width: int, features: int):
    """Init vmapped over a vector of seeds: many seeds in one call."""
    m = module(width, features)
    return jax.jit(jax.vmap(lambda seed, x: m.init(prng_key(seed), x), in_axes=(0, None)))


def seed_array(seed: int):
    """A seed as the traced argument of ``jit_init`` (int32, or int64 under x64); NumPy, so nothing compiles."""
    return np.asarray(int(seed), dtype=np.int64 if _compat.x64_enabled() else np.int32)


def dummy_x(case: Case):
    """The input a pipeline initialises with: float32 zeros of x's width, on the case's device.

    Params must not depend on it (test_init_ignores_x checks that with the real
    x), so every other property initialises from it: one init compile per width
    and feature count instead of one per input dtype and batch shape.
    """
    return _zeros_on(case.width, case.device)


@functools.lru_cache(maxsize=None)
def _zeros_on(width: int, device: str):
    """Placed once per width and device, not once per example (jax arrays are immutable)."""
    return place(np.zeros((width,), np.float32), device)


def init_jit(case: Case, x=None):
    """Compiled init of the case's seed, from ``x`` or else the dummy input."""
    return jit_init(case.width, case.features_int)(seed_array(case.seed_int), dummy_x(case) if x is None else x)


def apply_jit(case: Case, variables, x):
    return jit_apply(case.width, case.features_int)(variables, x)


def tree_paths(tree) -> dict:
    """{'params/linear/kernel': leaf} for every leaf, boxed leaves unboxed."""
    flat, _ = jax.tree_util.tree_flatten_with_path(_compat.unbox(tree))  # also flax 0.9's VariableState leaves
    return {"/".join(_key(k) for k in path): v for path, v in flat}


def _key(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


# --- variables -----------------------------------------------------------------------

KERNEL = ("params", "linear", "kernel")
BIAS = ("params", "linear", "bias")
# The ToNNX direction's params: the model's nnx.Param state as a dict (conformance/helpers/harness_nnx.py).
NNX_KERNEL = ("kernel",)
NNX_BIAS = ("bias",)


def unbox(v):
    """``v`` with its boxes removed: Linen metadata, and flax 0.9's ``VariableState`` leaves."""
    return _compat.unbox(v)


def leaf(variables, path):
    """The array at ``path`` ('params/linear/kernel'), unboxed; KeyError naming the path."""
    node = variables
    for i, k in enumerate(path):
        try:
            node = node[k]
        except (KeyError, TypeError):
            raise KeyError(f"variables has no {'/'.join(path[: i + 1])} (the contract's {'/'.join(path)})") from None
    return unbox(node)


def replace_leaf(variables, path, value):
    """A copy of ``variables`` with the leaf at ``path`` replaced, boxing kept."""

    def rebuild(node, i):
        node = dict(node)
        k = path[i]
        if i == len(path) - 1:
            node[k] = _compat.rebox(node[k], value)
        else:
            node[k] = rebuild(node[k], i + 1)
        return node

    return rebuild(variables, 0)


def kernel_bias(variables):
    """(kernel, bias) of either direction: Linen variables (params/linear/...), or ToNNX's params dict."""
    if "params" in variables or "kernel" not in variables:
        return leaf(variables, KERNEL), leaf(variables, BIAS)
    return leaf(variables, NNX_KERNEL), leaf(variables, NNX_BIAS)


# --- the float64 oracle -------------------------------------------------------------------


def oracle(x, kernel, bias):
    """``x @ kernel + bias`` in float64 NumPy, and the magnitude ``|x| @ |kernel| + |bias|``."""
    x64 = np.asarray(x, dtype=np.float64)
    k64 = np.asarray(kernel, dtype=np.float64)
    b64 = np.asarray(bias, dtype=np.float64)
    return x64 @ k64 + b64, np.abs(x64) @ np.abs(k64) + np.abs(b64)


def result_dtype(x_dtype, param_dtype=jnp.float32):
    """JAX's promotion of the input and parameter dtypes: the dtype the product accumulates in."""
    return jnp.result_type(x_dtype, param_dtype)


def affine_bound(x, magnitude):
    """The error model's bound on ``x @ kernel + bias`` against the exact value (magnitude from ``oracle``)."""
    return errormodel.affine_error(int(np.shape(x)[-1]), result_dtype(x.dtype), magnitude)


def linearity_bound(xv, yv, zv, a, b, fx, fy, variables):
    """Bound on ``|f(z) - (a f(x) + b f(y))|``, ``z = a x + b y`` exact, for one layer of ``variables``.

    Equal in reals (the bias is zero at init): three products, each within its
    own affine error, plus the two float64 roundings of the combination.
    """
    k, bias = (np.abs(np.asarray(v, np.float64)) for v in kernel_bias(variables))
    mag_x, mag_y, mag_z = (np.abs(np.asarray(v, np.float64)) @ k + bias for v in (xv, yv, zv))
    fx64, fy64 = np.asarray(fx, np.float64), np.asarray(fy, np.float64)
    return (affine_bound(zv, mag_z) + abs(a) * affine_bound(xv, mag_x) + abs(b) * affine_bound(yv, mag_y)
            + 2 * errormodel.rounding_error("float64", np.abs(a * fx64) + np.abs(b * fy64)))


def param_grad_bounds(x, c):
    """d/d(kernel, bias) of ``sum(y * c)`` for 1-D x: (outer(x, c), its bound, the bias gradient's bound).

    One product per kernel element in the accumulation dtype, then a rounding
    into the params' float32; the bias gradient is ``c`` itself, carried exactly
    or rounded once into float32.
    """
    expected = np.outer(np.asarray(x, np.float64), c)
    acc = result_dtype(x.dtype)
    product = errormodel.dot_error(1, acc, np.abs(expected))
    bound = product + errormodel.cast_error(acc, "float32", np.abs(expected) + product)
    return expected, bound, errormodel.cast_error(acc, "float32", np.abs(c))


# --- two computations of the same variables and outputs ---------------------------------------


def init_difference(path: str, value):
    """Bound on the difference of two inits' leaf ``path`` (same seed, another compilation, device or release).

    The kernel is sampled (lecun_normal): the sampler's conditioning bounds it.
    The bias is zeros: exact, so it must be identical.
    """
    v = np.asarray(value, np.float64)
    if path.endswith("kernel"):
        return errormodel.sampler_difference(v, errormodel.lecun_sigma(v.shape[0]))
    return np.zeros_like(v)


def outputs_difference(x, variables):
    """Bound on two applies of ``variables``'s layer to ``x``, each from its own init of the same seed.

    The params may differ by the init model; each product adds its own affine error.
    """
    kernel, bias = kernel_bias(variables)
    return errormodel.affine_difference(
        x, kernel, bias, init_difference("kernel", kernel), init_difference("bias", bias), result_dtype(x.dtype)
    )


def outputs_same_params(x, variables):
    """Bound on two applies of the same params to ``x``: two affine errors."""
    _, mag = oracle(x, *kernel_bias(variables))
    return 2 * affine_bound(x, mag)


# --- running a case ---------------------------------------------------------------------------


def observe(case: Case, x=None):
    """(x, variables, y): compiled init (from the dummy input), compiled apply on x."""
    x = case_x(case) if x is None else x
    variables = init_jit(case)
    return x, variables, apply_jit(case, variables, x)


def property_settings(fraction: float = 1.0, shrink: bool = True):
    """Settings of the loaded profile, with ``fraction`` of its examples for costly examples.

    ``shrink=False`` for properties whose verdict does not depend on the inputs
    (what flax does with a params tree): a smaller example would explain nothing.
    """
    from hypothesis import Phase, settings

    n = settings.default.max_examples
    phases = settings.default.phases if shrink else [p for p in settings.default.phases if p is not Phase.shrink]
    return settings(max_examples=max(2, int(round(n * fraction))), phases=phases)


def given_data(fraction: float = 1.0, shrink: bool = True, rotation: str | None = None):
    """``@given(data=st.data())`` under the profile's settings, scaled by ``fraction``.

    ``rotation``: draw the compile keys of the property of that name instead of
    this one's (``compile_keys``): the other direction's twin of a property
    then meets the same shapes, dtypes and batches, and the eager operations
    and samplers both run compile once.
    """
    from hypothesis import given
    from hypothesis import strategies as st

    def wrap(fn):
        @functools.wraps(fn)
        def named(*args, **kwargs):  # the strategies pair their draws per property (compile_keys)
            token = CURRENT_PROPERTY.set(rotation or fn.__name__)
            try:
                return fn(*args, **kwargs)
            finally:
                CURRENT_PROPERTY.reset(token)

        return property_settings(fraction, shrink)(given(data=st.data())(named))

    return wrap
