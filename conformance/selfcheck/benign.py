"""A corpus of benign perturbations: numerically legitimate changes a correct gate must accept.

Beside the fault corpus (conformance/selfcheck/contract_faults.py): each perturbation imitates
what a new flax, jax or device may legitimately do — compile the sampler
differently, sum the product in another order, fuse a multiply-add, round a
batched kernel differently — and stays inside the error model
(docs/error-model.md). ``python -m conformance selfcheck`` runs the suite
under each one and requires it to pass, with the change seen as drift.

    pytest --pyargs conformance -p conformance.benign --perturb NAME
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import pytest

from conformance.core import config as _config
from conformance.core import jax_setup as _setup

PERTURBATIONS: dict[str, "Perturbation"] = {}


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """A perturbation's hooks, each with the predicate that says where it acts (``reach.py`` observes them)."""

    name: str
    description: str
    sampler: Callable | None = None  # (key) -> bool: where lecun_normal's uniform draw is nudged by one ulp
    numbers_when: Callable | None = None  # (x) -> bool: where ``numbers`` replaces the contract's output
    numbers: Callable | None = None  # (x, kernel, bias, y) -> y: the contract's output, in both directions
    modules_when: Callable | None = None  # (x) -> bool: where the zoo's and a team's products are summed otherwise
    nested: bool = False  # a traced params-only module's products summed otherwise, wherever the bridge runs it
    xla_flags: str = ""  # compiler flags, set before the backend starts (every program compiles otherwise)

    def numbers_or_none(self, x, kernel, bias, y):
        """``numbers`` where ``numbers_when(x)`` holds, else None: the hook both directions install."""
        return self.numbers(x, kernel, bias, y) if self.numbers_when(x) else None


def perturbation(description: str):
    def register(fn):
        PERTURBATIONS[fn.__name__] = Perturbation(fn.__name__, description, **fn())
        return fn

    return register


# --- where a computation runs -------------------------------------------------------------------


def _traced(x) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def _on_other_device(x) -> bool:
    """True when ``x`` (or, while tracing, the scope's default device) is not the first device."""
    import jax

    from conformance.helpers.devices import all_devices

    first = all_devices()[0]
    if not _traced(x) and hasattr(x, "devices"):
        return set(x.devices()) != {first}
    where = jax.config.jax_default_device
    return where is not None and where != first


def _linear_params(v):
    from reference import _compat

    lin = _compat.unbox(v).get("params", {}).get("linear", {})
    return lin.get("kernel"), lin.get("bias")


def _alternate_ulp(y):
    """``y`` moved one ulp up at even flat indices and one down at odd ones."""
    import jax.numpy as jnp

    idx = jnp.arange(y.size).reshape(y.shape) % 2
    return jnp.where(idx == 0, jnp.nextafter(y, jnp.inf), jnp.nextafter(y, -jnp.inf)).astype(y.dtype)


def is_reference(module) -> bool:
    """The contract's module (the reference's NNX class), whose output is ``x @ kernel + bias``."""
    return getattr(getattr(module, "nnx_class", None), "__module__", "") == "reference"


def reference_linear(module, v):
    """(kernel, bias) of the contract's module, or None for the zoo's and a team's modules (or params without them)."""
    if not is_reference(module):
        return None
    kernel, bias = _linear_params(v)
    return None if kernel is None or bias is None else (kernel, bias)


def _numerics(fn):
    """An apply hook that keeps flax's own apply (errors, warnings, purity) and replaces only its numbers."""

    def apply(base, self, v, x):
        y = base(self, v, x)
        params = reference_linear(self, v)
        if params is None:
            return y
        out = fn(x, params[0], params[1], y)
        return y if out is None else out.astype(y.dtype)

    return apply


# --- the real-layer tier: every product of a layer summed in another order ------------------------------------


def _split_dot(eqn, vals):
    """``dot_general`` as two partial products over halves of its first contracting axis, then their sum."""
    import jax

    (lc, rc), _ = eqn.params["dimension_numbers"]
    a, b = vals
    if not lc or a.shape[lc[0]] < 2:
        return eqn.primitive.bind(a, b, **eqn.params)
    h = a.shape[lc[0]] // 2
    a1, a2 = jax.lax.slice_in_dim(a, 0, h, axis=lc[0]), jax.lax.slice_in_dim(a, h, a.shape[lc[0]], axis=lc[0])
    b1, b2 = jax.lax.slice_in_dim(b, 0, h, axis=rc[0]), jax.lax.slice_in_dim(b, h, b.shape[rc[0]], axis=rc[0])
    out = eqn.outvars[0].aval.dtype
    acc = jax.numpy.result_type(out, jax.numpy.float32)
    if acc == out:
        return eqn.primitive.bind(a2, b2, **eqn.params) + eqn.primitive.bind(a1, b1, **eqn.params)
    # A narrower product is accumulated in float32 (as XLA does on every backend): the halves too, then one rounding.
    params = {**eqn.params, "preferred_element_type": acc}
    return (eqn.primitive.bind(a2, b2, **params) + eqn.primitive.bind(a1, b1, **params)).astype(out)


def _eval_reordered(jaxpr, consts, args):
    """Evaluate ``jaxpr`` with every ``dot_general`` (nested calls included) summed as two halves, second first."""
    from jax.extend import core as jcore

    from conformance.numerics.running_error import bind_params

    env = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        vals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "dot_general":
            outs = [_split_dot(eqn, vals)]
        elif name in ("pjit", "jit", "closed_call") and "jaxpr" in eqn.params:
            inner = eqn.params["jaxpr"]
            outs = _eval_reordered(inner.jaxpr, inner.consts, vals)
        else:
            subfuns, params = bind_params(eqn)
            out = eqn.primitive.bind(*subfuns, *vals, **params)
            outs = list(out) if eqn.primitive.multiple_results else [out]
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _modules_reordered(when):
    """An apply hook for the zoo's and a team's modules: where ``when(x)``, their products in another order."""

    def apply_kw(base, self, v, x, kw):
        if is_reference(self) or not when(x):
            return base(self, v, x, kw)
        import jax

        closed = jax.make_jaxpr(lambda v_, x_: base(self, v_, x_, kw))(v, x)
        flat = jax.tree_util.tree_leaves((v, x))
        out = _eval_reordered(closed.jaxpr, closed.consts, flat)
        shape = jax.eval_shape(lambda v_, x_: base(self, v_, x_, kw), v, x)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shape), out)

    return apply_kw


# --- the sampler ----------------------------------------------------------------------------------


def _nudged_truncated_normal(original, when):
    """jax.random.truncated_normal whose uniform draw is one ulp off wherever ``when(key)`` holds.

    The same draw as jax's (uniform over (erf(lower/sqrt2), erf(upper/sqrt2)), then
    sqrt2 * erfinv, clipped to the open interval), except for the nudge.
    """

    def truncated_normal(key, lower, upper, shape=None, dtype=float, **kw):
        if not when(key):
            return original(key, lower, upper, shape, dtype, **kw)
        import jax
        import jax.numpy as jnp
        import numpy as np
        from jax import lax

        dtype = jnp.dtype(dtype) if dtype is not float else jnp.result_type(float)
        sqrt2 = np.array(np.sqrt(2), dtype)
        lo, hi = lax.convert_element_type(lower, dtype), lax.convert_element_type(upper, dtype)
        u = jax.random.uniform(key, shape, dtype, minval=lax.erf(lo / sqrt2), maxval=lax.erf(hi / sqrt2))
        out = sqrt2 * lax.erf_inv(_alternate_ulp(u))
        return jnp.clip(out, lax.nextafter(lo, np.array(np.inf, dtype)), lax.nextafter(hi, np.array(-np.inf, dtype)))

    return truncated_normal


def _patch_sampler(when) -> None:
    import jax
    import jax._src.random as jrandom

    original = getattr(jrandom, "_conformance_real_truncated_normal", jrandom.truncated_normal)
    jrandom._conformance_real_truncated_normal = original
    patched = _nudged_truncated_normal(original, when)
    jrandom.truncated_normal = patched  # what jax.nn.initializers calls
    jax.random.truncated_normal = patched


# --- the corpus -------------------------------------------------------------------------------------


@perturbation("under jit only, lecun_normal's uniform draw is one ulp off (a sampler compiled differently)")
def sampler_ulp_under_jit():
    return dict(sampler=_traced)


@perturbation("everywhere, lecun_normal's uniform draw is one ulp off (a new release drifting from the record)")
def sampler_ulp_everywhere():
    return dict(sampler=lambda key: True)


@perturbation("under jit only, the product is summed in another order (two halves, then the bias)")
def product_reordered_under_jit():
    def reorder(x, kernel, bias, y):
        r = y.dtype
        h = x.shape[-1] // 2
        xs, k = x.astype(r), kernel.astype(r)
        return bias.astype(r) + (xs[..., h:] @ k[h:] + xs[..., :h] @ k[:h])

    return dict(numbers_when=lambda x: _traced(x) and x.shape[-1] >= 2, numbers=reorder, modules_when=_traced)


def _fused_bias(x, kernel, bias, y, halves: bool = False):
    """``x @ K + b`` with the last product fused into the bias add, as an FMA does: exact, then one rounding less."""
    r = y.dtype
    xs, k, b = x.astype(r), kernel.astype(r), bias.astype(r)
    n = x.shape[-1] - 1
    if n == 0:
        import jax.numpy as jnp

        rest = jnp.zeros_like(y)
    elif halves and n > 1:  # another summation order too: the second half first
        rest = xs[..., n // 2:n] @ k[n // 2:n] + xs[..., :n // 2] @ k[:n // 2]
    else:
        rest = xs[..., :n] @ k[:n]
    return _fma()(rest + b, xs[..., -1:], k[-1])


@functools.lru_cache(maxsize=None)
def _fma():
    """``fma(s, a, c) = s + a * c`` with the product exact, and an FMA's derivative: ``ds + c·da + a·dc``.

    Dekker's exact product a * c = p + e (Veltkamp splitting) stands in for the
    FMA's unrounded product, added as (s + p) + e: two roundings of sums, none
    of the product; exact results stay exact (zeros map to zeros). The
    splitting itself is not differentiated: its chain rule is exact only where
    nothing contracts its products, and XLA on GPU contracts them (the kernel's
    gradient then left its one-rounding bound, an imitation no FMA would make).
    """
    import jax
    import numpy as np

    @jax.custom_jvp
    def fma(s, a, c):
        split = np.array(2.0 ** -(-(np.finfo(s.dtype).nmant + 1) // 2) + 1, s.dtype)
        p = a * c
        a_hi = split * a - (split * a - a)
        c_hi = split * c - (split * c - c)
        a_lo, c_lo = a - a_hi, c - c_hi
        e = ((a_hi * c_hi - p) + a_hi * c_lo + a_lo * c_hi) + a_lo * c_lo
        return (s + p) + e

    @fma.defjvp
    def fma_jvp(primals, tangents):
        (s, a, c), (ds, da, dc) = primals, tangents
        return fma(s, a, c), ds + da * c + a * dc

    return fma


@perturbation("compiled batched inputs take another kernel than rows and eager calls (summed in halves, the bias fused)")
def batched_last_bit():
    return dict(numbers_when=lambda x: x.ndim > 1 and _traced(x),
                numbers=lambda x, kernel, bias, y: _fused_bias(x, kernel, bias, y, True))


@perturbation("devices after the first round differently: the sampler's draw one ulp off, the bias add fused")
def second_device_rounds_differently():
    return dict(sampler=_on_other_device, numbers_when=_on_other_device, numbers=_fused_bias,
                modules_when=_on_other_device)


@perturbation("under jit only, the last product is fused with the bias add (an exact product, one rounding less)")
def bias_fma_under_jit():
    return dict(numbers_when=_traced, numbers=_fused_bias)


def nested_acts(module, args) -> bool:
    """Where the nested perturbation reorders: a params-only NNX module called with a traced argument."""
    import jax
    from flax import nnx

    return not jax.tree_util.tree_leaves(nnx.state(module, nnx.Not(nnx.Param))) and any(
        _traced(a) for a in jax.tree_util.tree_leaves(args))


def _nested_reordered_patch() -> None:
    """The bridge's method lookup, wrapped: a traced call of a params-only NNX module sums its products otherwise.

    It reaches the bridged module wherever it runs (inside a Linen parent,
    under nn.scan, nn.vmap, nn.remat, nn.jit), which a hook on the top-level
    apply never sees. Modules holding other state (batch statistics, counters,
    RNG streams), or creating it during the call (``sow``, a Variable assigned),
    keep their own order: their updates must reach the module.
    """
    import jax
    from flax import nnx
    from flax.nnx.bridge import wrappers

    real = getattr(wrappers, "_conformance_real_method_benign", wrappers._get_module_method)
    wrappers._conformance_real_method_benign = real

    def method(module, name):
        fn = real(module, name)

        def run(m, *args, **kw):
            if not nested_acts(m, args):
                return fn(m, *args, **kw)
            graphdef, state = nnx.split(m)
            before = len(jax.tree_util.tree_leaves(state))
            created = []

            def pure(state_, *a):
                copy = nnx.merge(graphdef, state_)
                out = fn(copy, *a, **kw)
                created.append(len(jax.tree_util.tree_leaves(nnx.state(copy))) > before)
                return out

            closed = jax.make_jaxpr(pure)(state, *args)
            if created[0]:  # the call creates state (sow, a Variable assigned): it must land on the module itself
                return fn(m, *args, **kw)
            out = _eval_reordered(closed.jaxpr, closed.consts, jax.tree_util.tree_leaves((state, args)))
            shape = jax.eval_shape(pure, state, *args)
            return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shape), out)

        return run

    wrappers._get_module_method = method


@perturbation("inside Linen pipelines (parents, nn.scan, nn.vmap, nn.remat, nn.jit), under a trace, the bridged "
              "module's products are summed in another order")
def nested_products_reordered():
    return dict(nested=True)


# The options the running-error analysis compiles with on CPU, for every program.
XLA_UNOPTIMISED = " ".join(f"--{k}={str(v).lower()}" for k, v in _config.ANALYSIS_COMPILER_OPTIONS.items())


@perturbation("XLA compiles every program at -O0 with LLVM's expensive passes off: no vectorisation, other "
              "instruction selection, no contraction into fused multiply-adds")
def compiled_without_optimisation():
    return dict(xla_flags=XLA_UNOPTIMISED)


def _set_xla_flags(flags: str) -> None:
    import os

    from jax._src import xla_bridge

    if getattr(xla_bridge, "_backends", None):  # XLA reads its flags once, when the first backend starts
        raise RuntimeError(f"XLA flags {flags!r} come too late: a jax backend is already up")
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()


# --- installing one -----------------------------------------------------------------------------------


def install(name: str) -> None:
    """Apply the perturbation ``name`` to jax's sampler and/or flax's bridge."""
    if name not in PERTURBATIONS:
        raise ValueError(f"--perturb must be one of {sorted(PERTURBATIONS)}; got {name!r}")
    p = PERTURBATIONS[name]
    if p.xla_flags:
        _set_xla_flags(p.xla_flags)
    if p.nested:
        _nested_reordered_patch()
    if p.sampler:
        _patch_sampler(p.sampler)
    apply = _numerics(p.numbers_or_none) if p.numbers else None
    apply_kw = _modules_reordered(p.modules_when) if p.modules_when else None
    if apply or apply_kw:
        from flax.nnx import bridge

        from conformance.selfcheck import faults

        real = getattr(bridge, "_conformance_real_to_linen", bridge.to_linen)
        bridge._conformance_real_to_linen = real
        bridge.to_linen = faults.broken_to_linen(real, faults.Fault(name, "benign", p.description, apply=apply,
                                                                   apply_kw=apply_kw))
    if p.numbers:  # the other direction: ToNNX's call of the contract's nn.Dense
        from conformance.selfcheck import tonnx_hooks

        tonnx_hooks.wrap_call(tonnx_hooks.numbers_hook(p.numbers_or_none))


# --- pytest plugin ---------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--perturb", default=None,
                     help=f"apply a benign perturbation (the suite must still pass): one of {', '.join(sorted(PERTURBATIONS))}")


def pytest_configure(config):
    name = config.getoption("--perturb")
    if name and name not in PERTURBATIONS:
        raise pytest.UsageError(f"--perturb must be one of {', '.join(sorted(PERTURBATIONS))}; got {name!r}")
    if name and _setup.role(config) != "controller":
        install(name)  # in each process that runs tests (the xdist controller runs none, nor imports jax)


def pytest_report_header(config):
    name = config.getoption("--perturb")
    if name:
        return [f"conformance: BENIGN PERTURBATION: {name}: {PERTURBATIONS[name].description}"]
