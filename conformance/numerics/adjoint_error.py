"""The first-order rounding error of a computation by adjoints: ``sum_k |d y / d eps_k| e_k`` per output element.

``running_error.py`` carries each bound forward with absolute values, so every
later operation adds it in magnitude: an error that enters before a contraction
of ``n`` terms of mixed signs grows by about ``sqrt(n)`` relative to the value
(``|W|.|x|`` against ``|W.x|``), and a deep layer's bound can exceed its output
(docs/error-model.md, "Where a 1% change is inside the bound").

To first order, the computed output is ``y + sum_k (d y / d eps_k) eps_k``. The
sum runs over the local rounding errors ``eps_k`` of the operations, each with
``|eps_k| <= e_k``, the same local bounds as ``running_error._local``. Over the
signs of the ``eps_k``, its worst case is ``sum_k |d y / d eps_k| e_k``. Every
term downstream of an error keeps its sign; only the local errors' own signs
are taken at worst. This module evaluates that sum exactly, with one
reverse-mode pass per output element (chunked). A ``scan`` of at most
``config.ADJOINT_UNROLLED_SCAN_LENGTH`` steps is walked step by step; a longer
one, a ``while`` or a ``cond`` counts as one operation whose local error is its
running-error bound from exact inputs.

The bound is first order, like the running one, and the two bound the same
quantity, so their elementwise minimum is a bound too. A computation with a
value narrower than float32 (bfloat16 compute) is walked twice at once: as it
runs, for each site's local bound at its own dtype's ``u``, and as a float32
shadow (every narrow value, literal and dtype parameter widened, a
``reduce_precision`` the identity), whose derivatives give the coefficients.
First-order coefficients are derivatives at the exact values, which the
shadow approximates to float32, not to the narrow dtype. A loop holding such a
computation is not analysed (None).

Imports jax: load it only after the suite's jax set-up.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from conformance.core import config
from conformance.numerics import errormodel
from conformance.numerics import running_error as rerr

LOOPS = ("scan", "while", "cond")
CHUNK = 32  # output elements per vectorised reverse pass: memory is CHUNK times the computation's intermediates


def _walk(jaxpr, consts, vals, eps, sites, shadow=None):
    """Evaluates ``jaxpr``, adding ``eps[k]`` to the k-th rounded float value; appends each one's local bound.

    Returns ``(outputs, the outputs the error variables enter)``, the same values
    unless ``shadow`` is given: float32 copies of narrow ``vals``. Then each
    equation also runs widened (``_bind_widened``), the local bounds come from
    the values as computed, and the error variables enter the float32 shadow,
    whose derivatives give the coefficients. A loop cannot be shadowed.
    """
    shadowed = shadow is not None
    env, env_hi = {}, {}

    def read(v, e, widen):
        if isinstance(v, jcore.Literal):
            val = v.val if hasattr(v.val, "dtype") else np.asarray(v.val, v.aval.dtype)
            return _widened(val) if widen else val
        return e[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v], env_hi[v] = c, (_widened(c) if shadowed else c)
    for v, x, s in zip(jaxpr.invars, vals, shadow if shadowed else vals):
        env[v], env_hi[v] = x, s
    for eqn in jaxpr.eqns:
        ins = [read(v, env, False) for v in eqn.invars]
        ins_hi = [read(v, env_hi, True) for v in eqn.invars] if shadowed else ins
        name = eqn.primitive.name
        if shadowed and name in LOOPS:  # a short scan is unrolled unshadowed only
            raise _NotShadowed(name)
        if name in rerr.INLINED:
            inner, inner_consts = rerr._inner(eqn)
            n = len(ins) - len(inner.invars)
            outs, outs_hi = _walk(inner, inner_consts, ins[n:], eps, sites, ins_hi[n:] if shadowed else None)
        elif name == "scan" and eqn.params["length"] <= config.ADJOINT_UNROLLED_SCAN_LENGTH:
            outs = outs_hi = _unrolled_scan(eqn, ins, eps, sites)
        elif name in rerr.PASS_THROUGH:  # the identity on values: an error passes on, though a gradient would not
            outs, outs_hi = list(ins), list(ins_hi)
        else:
            outs = rerr._bind(eqn, ins)
            outs_hi = _bind_widened(eqn, ins_hi) if shadowed else outs
            frozen = [lax.stop_gradient(v) if rerr._is_float(v) else v for v in ins]
            independent = [None] * len(outs)
            if name in LOOPS:  # one operation: its own rounding is its running-error bound from exact inputs
                _, local = rerr._eval_eqn(eqn, frozen, [None] * len(ins))
            elif name == "nextafter":  # one step from x: the step itself is exact
                local = [None] * len(outs)
            else:
                frozen_outs = [lax.stop_gradient(o) if rerr._is_float(o) else o for o in outs]
                parts = rerr._local_parts(eqn, frozen, frozen_outs, independent=True)
                local = [None if p is None else p[0] for p in parts]
                independent = [None if p is None else p[1] for p in parts]
            outs_hi = [_perturbed(o, e, r, eps, sites) for o, e, r in zip(outs_hi, local, independent)]
            if not shadowed:
                outs = outs_hi  # unshadowed, the computed values carry the error variables themselves
        for v, o, h in zip(eqn.outvars, outs, outs_hi):
            env[v], env_hi[v] = o, h
    return ([read(v, env, False) for v in jaxpr.outvars],
            [read(v, env_hi, shadowed) for v in jaxpr.outvars])


def _unrolled_scan(eqn, ins, eps, sites):
    """A short ``scan`` (layers stacked under ``nnx.vmap``, say) one step after another: each step's operations are
    sites of their own, as in a Python loop, instead of one site with the loop's worst-case running bound."""
    p = eqn.params
    body, body_consts = rerr._closed(p["jaxpr"])
    nc, ncarry = rerr._scan_sizes(p)
    consts, carry, xs = ins[:nc], list(ins[nc:nc + ncarry]), ins[nc + ncarry:]
    steps = range(p["length"] - 1, -1, -1) if p["reverse"] else range(p["length"])
    ys: dict = {}
    for i in steps:
        outs, _ = _walk(body, body_consts, [*consts, *carry, *(x[i] for x in xs)], eps, sites)
        carry, ys[i] = list(outs[:ncarry]), outs[ncarry:]
    n_ys = len(body.outvars) - ncarry
    stacked = [jnp.stack([ys[i][k] for i in range(p["length"])]) if p["length"] else
               jnp.zeros(v.aval.shape, v.aval.dtype) for k, v in enumerate(eqn.outvars[ncarry:ncarry + n_ys])]
    return carry + stacked


def _perturbed(o, local, independent, eps, sites):
    """Adds the site's error variable; records ``(e, r, rest)``: its bound, and its independent part or None."""
    if local is None or not rerr._is_float(o):
        return o
    k = len(sites)
    r, rest = independent if independent is not None else (None, None)
    sites.append((lax.stop_gradient(local), None if r is None else lax.stop_gradient(r), rest))
    return o if eps is None else o + eps[k].astype(o.dtype)


def _narrow(dtype) -> bool:
    return errormodel.mantissa_bits(dtype) < errormodel.mantissa_bits(jnp.float32)


class _NotShadowed(Exception):
    """An equation the float32 shadow cannot carry (a loop, a primitive that refuses the widened dtypes)."""


_DTYPE_PARAMS = ("new_dtype", "preferred_element_type", "dtype")


def _widened(x):
    return x.astype(jnp.float32) if rerr._is_float(x) and _narrow(x.dtype) else x


def _narrow_param(v) -> bool:
    try:
        return v is not None and jnp.issubdtype(v, jnp.floating) and _narrow(v)
    except TypeError:
        return False


def _bind_widened(eqn, ins):
    """``eqn`` on float32 values where it ran on narrower ones: its dtype parameters widened too."""
    if eqn.primitive.name == "reduce_precision":  # a rounding: the shadow keeps the value, the site its error
        return list(ins)
    subfuns, params = rerr.bind_params(eqn)
    params = {k: (jnp.dtype(jnp.float32) if k in _DTYPE_PARAMS and _narrow_param(v) else v) for k, v in params.items()}
    try:
        out = eqn.primitive.bind(*subfuns, *ins, **params)
    except Exception as exc:  # noqa: BLE001 - whatever refuses the widened dtypes leaves the bound to the running one
        raise _NotShadowed(eqn.primitive.name) from exc
    return list(out) if eqn.primitive.multiple_results else [out]


def value_and_bounds(fn, *args):
    """``(fn(*args), signed, probabilistic)``, both bounds in ``fn``'s output structure (zeros for non-float
    outputs), or ``(fn(*args), None, None)`` where a loop holds a value narrower than float32 (its float32 shadow,
    above, cannot be walked). The arguments are exact.

    ``signed`` is ``sum_k |a_k| e_k``, the worst case over the local errors'
    signs. ``probabilistic`` treats each rounding as an independent, mean-zero
    error: ``sum_k |a_k| w_k + lambda * sqrt(sum_k a_k^2 r_k^2)``, with ``w_k``
    the worst-case parts (transcendental functions, loops, underflow) and
    ``r_k`` the independent ones (``running_error._local_parts``);
    Hoeffding's inequality puts an evaluation outside it with probability at
    most ``2 exp(-lambda^2 / 2)`` (config.PROBABILISTIC_LAMBDA). It is taken no
    wider than ``signed``.
    """
    closed = jax.make_jaxpr(fn)(*args)
    jaxpr = rerr._live(closed.jaxpr)
    flat_args = jax.tree_util.tree_leaves(args)
    out_tree = jax.tree_util.tree_structure(jax.eval_shape(fn, *args))
    kinds: list = []  # per site, static: the worst-case rest of an independent site, or None (all worst-case)

    shadowed = [False]

    def run(eps):
        """``(outputs, the outputs the error variables enter, sites)``: the same list twice unless shadowed."""
        sites: list = []
        outs, outs_hi = _walk(jaxpr, closed.consts, flat_args, eps, sites,
                              [_widened(a) for a in flat_args] if shadowed[0] else None)
        kinds[:] = [rest if r is not None else None for _, r, rest in sites]
        return outs, outs_hi, [(e, r) for e, r, _ in sites]

    shapes = [e for e, _ in jax.eval_shape(lambda: run(None))[2]]
    outs0, _, _ = run(None)
    floats = [i for i, o in enumerate(outs0) if rerr._is_float(o)]
    if any(_narrow(s.dtype) for s in shapes) or any(_narrow(outs0[i].dtype) for i in floats):
        shadowed[0] = True
        try:
            shapes = [e for e, _ in jax.eval_shape(lambda: run(None))[2]]
        except _NotShadowed:
            return jax.tree_util.tree_unflatten(out_tree, outs0), None, None
    err = rerr._err_dtype()
    lam = config.PROBABILISTIC_LAMBDA

    def float_outputs(eps):
        _, outs, sites = run(eps)
        return [outs[i].astype(err) for i in floats], sites

    eps0 = [jnp.zeros(s.shape, err) for s in shapes]
    ys, vjp_fn, locals_ = jax.vjp(float_outputs, eps0, has_aux=True)
    sizes = [int(np.prod(y.shape, dtype=np.int64)) for y in ys]
    m = sum(sizes)
    signed = probable = jnp.zeros((m,), err)  # no rounding site anywhere: every output is exact
    if m and shapes:
        chunks = -(-m // CHUNK)

        def clean(term, e):  # no error where the bound is 0; an infinite derivative meeting an error: unbounded
            return jnp.where(e == 0, 0, jnp.where(jnp.isnan(term), jnp.inf, term))

        def one(j):  # the bounds of flat output element j (j >= m: padding, bound 0)
            hot = jax.nn.one_hot(j, m, dtype=err)
            cts, start = [], 0
            for y, size in zip(ys, sizes):
                cts.append(hot[start:start + size].reshape(y.shape))
                start += size
            (grads,) = vjp_fn(cts)
            total = worst = squares = jnp.zeros((), err)
            for g, (e, r), rest in zip(grads, locals_, kinds):
                e = e.astype(err)
                term = jnp.sum(clean(jnp.abs(g) * e, e))
                total = total + term
                if r is None:
                    worst = worst + term
                else:
                    worst = worst + jnp.sum(clean(jnp.abs(g) * rest, e))
                    squares = squares + jnp.sum(clean(jnp.square(g * r.astype(err)), e))
            return total, jnp.minimum(total, worst + lam * jnp.sqrt(squares))

        per_chunk = lax.map(lambda c: jax.vmap(one)(c * CHUNK + jnp.arange(CHUNK)), jnp.arange(chunks))
        signed, probable = (b.reshape(-1)[:m] for b in per_chunk)

    def shaped(flat):
        start, by_index = 0, {}
        for i, y, size in zip(floats, ys, sizes):
            by_index[i] = flat[start:start + size].reshape(y.shape)
            start += size
        full = [by_index.get(i, jnp.zeros(jnp.shape(o), err)) for i, o in enumerate(outs0)]
        return jax.tree_util.tree_unflatten(out_tree, full)

    return jax.tree_util.tree_unflatten(out_tree, outs0), shaped(signed), shaped(probable)


@functools.lru_cache(maxsize=None)
def jit_value_and_bounds(fn):
    """``value_and_bounds(fn, ...)`` compiled, cached per function (jax caches it per shape)."""
    return jax.jit(functools.partial(value_and_bounds, fn))

