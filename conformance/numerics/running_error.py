"""Running-error analysis of any jax computation: a first-order bound on its rounding error, per output element.

The computation is traced to a jaxpr and evaluated once more, each float
value carried with a bound ``e >= 0`` on its distance from the exact value of
the same computation on the same inputs (Higham, *Accuracy and Stability of
Numerical Algorithms*, section 3.3). Each equation

* propagates its inputs' bounds through its derivative with absolute values:
  ``sum_i |d out / d in_i| e_i``, computed as a JVP per input (bilinear
  contractions, ``dot_general`` and convolutions, take the other operand's
  absolute value, so no term cancels inside the sum);
* adds its own rounding: ``u |out|`` for one correctly rounded operation,
  ``K u |out|`` for a transcendental function (``config.SPECIAL_FUNCTION_ULPS``),
  ``gamma_n (|a| . |b|)`` for a dot product or convolution of length ``n`` (``gamma_n`` of the
  accumulating dtype, float32 for a narrower one, plus ``u |out|`` for its rounding into that) and
  ``gamma_n sum |x|`` for a sum of ``n`` terms, in any order and with any fused
  multiply-add (section 3.1), plus the dtype's smallest normal number per rounding
  for underflow; nothing for exact operations (moves, comparisons, max).

The bound therefore scales with the terms that cancelled, not with the result:
a gradient that is zero by symmetry gets the size of the rounding of the sums
that produced it. It is first order (terms in u^2 dropped); the comparisons
that use it double it for two evaluations and add the slack derived in
docs/error-model.md. Integer, boolean and key values carry no error. Loops
(``scan``, ``while``), branches and nested calls are analysed inside; a
primitive the tables below do not name is treated as a transcendental function
(elementwise, K ulps) and listed by :func:`unknown_primitives`.

Imports jax: load it only after the suite's jax set-up.
"""

from __future__ import annotations

import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from conformance.core import config
from conformance.numerics import errormodel

# Moves, selections and comparisons: exact, and linear with non-negative
# coefficients in their float operands, so one JVP with every bound as tangent propagates.
EXACT_LINEAR = {
    "reshape", "broadcast_in_dim", "transpose", "slice", "dynamic_slice", "dynamic_update_slice", "gather",
    "concatenate", "pad", "squeeze", "expand_dims", "rev", "select_n", "copy", "copy_p", "reduce_max", "reduce_min",
    "max", "min", "clamp", "sort", "stop_gradient", "optimization_barrier", "convert_element_type", "real", "imag",
    "reduce_precision", "cumsum", "cummax", "cummin", "reduce_sum", "add", "add_any", "scatter-add", "scatter_add",
    "scatter", "split", "reduce_window_sum", "reduce_window_max", "device_put", "sharding_constraint", "mesh_cast", "pvary", "pbroadcast",
}
# Exact results whose derivative may be negative (so each input's bound is propagated by its own JVP).
EXACT_OTHER = {"neg", "abs", "sign", "floor", "ceil", "round", "nextafter", "is_finite", "argmax", "argmin",
               "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "xor", "iota", "random_bits", "random_seed",
               "random_wrap", "random_unwrap", "random_fold_in", "random_split", "threefry2x32", "shift_left",
               "shift_right_logical", "shift_right_arithmetic", "population_count", "bitcast_convert_type"}
ROUNDED_ONCE = {"add", "add_any", "sub", "mul", "div", "sqrt", "square", "rem", "reduce_precision"}
TRANSCENDENTAL = {"exp", "exp2", "log", "log1p", "expm1", "tanh", "logistic", "erf", "erfc", "erf_inv", "sin", "cos",
                  "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "pow", "rsqrt",
                  "cbrt", "lgamma", "digamma", "igamma", "igammac", "bessel_i0e", "bessel_i1e", "logaddexp"}
CONTRACTIONS = {"dot_general", "conv_general_dilated"}
SUMS = {"reduce_sum": "axes", "cumsum": "axis", "cumlogsumexp": "axis", "reduce_window_sum": "window_dimensions"}
PASS_THROUGH = {"stop_gradient", "optimization_barrier"}
INLINED = {"pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call", "custom_vjp_call",
           "custom_vjp_call_jaxpr", "custom_lin", "remat2"}

_UNKNOWN: set[str] = set()


def unknown_primitives() -> set[str]:
    """Primitives met so far that no table names (bounded as elementwise transcendental functions)."""
    return set(_UNKNOWN)


def _is_float(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _err_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _zero_err(x):
    return jnp.zeros(jnp.shape(x), _err_dtype()) if _is_float(x) else None


def _u(dtype) -> float:
    return errormodel.unit_roundoff(np.dtype(dtype))


def _tiny(dtype) -> float:
    return errormodel.floor(np.dtype(dtype))


def _gamma(n: int, dtype) -> float:
    nu = n * _u(dtype)
    return nu / (1 - nu) if nu < 1 else math.inf


# --- one equation -------------------------------------------------------------------------------


def bind_params(eqn):
    """``(subfuns, params)`` to re-bind ``eqn``, as jax's own evaluator does (older jax: custom calls carry functions)."""
    got = eqn.primitive.get_bind_params(eqn.params)
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], dict):
        return got
    return (), got


def _bind(eqn, vals):
    subfuns, params = bind_params(eqn)
    out = eqn.primitive.bind(*subfuns, *vals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _propagated(eqn, vals, errs, outs):
    """sum_i |d out / d in_i| e_i for every float output (zeros where no input carries error)."""
    name = eqn.primitive.name
    idx = [i for i, e in enumerate(errs) if e is not None and _is_float(vals[i])]
    if not idx:  # every operand exact: nothing to propagate (and no zero tangent for XLA to miscompile)
        return [None] * len(outs)
    total = [jnp.zeros(jnp.shape(o), _err_dtype()) if _is_float(o) else None for o in outs]

    def tangent(i, e):
        return e.astype(vals[i].dtype)

    def run(tangent_at):
        def f(*xs):
            full = list(vals)
            for i, x in zip(idx, xs):
                full[i] = x
            return tuple(_bind(eqn, full))

        tans = [tangent_at(i) for i in idx]
        _, t_out = jax.jvp(f, tuple(vals[i] for i in idx), tuple(tans))
        return t_out

    def zero_like(i):
        return jnp.zeros_like(vals[i])

    if name in EXACT_LINEAR or name in ("add", "add_any"):
        t_out = run(lambda i: tangent(i, errs[i]))
        for k, t in enumerate(t_out):
            if total[k] is not None and _is_float(t):
                total[k] = total[k] + _magnitude(t, None)
        return total
    for i in idx:
        if name in CONTRACTIONS:  # |a| . e_b + e_a . |b|: the other operand's magnitude, so nothing cancels
            absvals = [jnp.abs(v) if _is_float(v) and j != i else v for j, v in enumerate(vals)]

            def f(x, i=i, absvals=absvals):
                full = list(absvals)
                full[i] = x
                return tuple(_bind(eqn, full))

            _, t_out = jax.jvp(f, (vals[i],), (tangent(i, errs[i]),))
        else:
            t_out = run(lambda j, i=i: tangent(j, errs[j]) if j == i else zero_like(j))
        for k, t in enumerate(t_out):
            if total[k] is not None and _is_float(t):
                total[k] = total[k] + _magnitude(t, errs[i])
    if name == "sqrt" and total[0] is not None:  # |sqrt(a + e) - sqrt(a)| <= sqrt(e): finite where sqrt'(0) is not
        total[0] = jnp.minimum(total[0], jnp.sqrt(errs[0].astype(_err_dtype())))
    return total


def _magnitude(t, e):
    """``|t|`` of a JVP, where an infinite derivative met an exact input (``0 * inf``, sqrt at 0) counts 0.

    Where the input is exact the value's error is zero whatever the
    derivative; any other NaN (an infinite derivative times a non-zero
    error) is an unbounded first-order error: infinity, never NaN.
    """
    m = jnp.abs(t).astype(_err_dtype())
    if e is not None and jnp.shape(e) == jnp.shape(t):
        m = jnp.where(jnp.isnan(m) & (e == 0), 0, m)
    return jnp.where(jnp.isnan(m), jnp.inf, m)


def _local(eqn, vals, outs):
    """The equation's own rounding, per float output."""
    return [None if p is None else p[0] for p in _local_parts(eqn, vals, outs, independent=False)]


def _local_parts(eqn, vals, outs, independent: bool):
    """Per float output ``(e, parts)``: ``_local``'s bound ``e``; with ``independent``, ``parts = (r, rest)``: the
    equation's rounding as a sum of independent mean-zero errors, or None.

    ``r`` bounds the square root of the sum of their squared ranges, so the
    error is ``sum_j c_j d_j`` with ``|d_j| <= u`` and ``sqrt(sum c_j^2) <= r``:
    ``sqrt(n) u |x|.|W|`` for a contraction of ``n`` terms (its ``n`` products
    and ``n - 1`` additions, each coefficient at most the sum of the absolute
    terms, in any order), ``u |z|`` for a correctly rounded operation.
    ``rest`` is what stays worst-case: the underflow terms. None keeps the
    whole bound ``e`` worst-case: a transcendental or unknown function (its
    approximation's error may be systematic), and a sum (``reduce_sum``,
    ``cumsum``, pooling), where a constant region summed in sequence, as an
    unoptimised compile does, rounds with one sign (512 terms of 0.1 in
    sequence: 0.62 of the independent bound; docs/error-model.md, section 11).
    """
    name = eqn.primitive.name
    res = []
    for o in outs:
        if not _is_float(o):
            res.append(None)
            continue
        dt = o.dtype
        mag = jnp.abs(o).astype(_err_dtype())
        u, tiny = _u(dt), _tiny(dt)
        e, parts = None, None
        if name in CONTRACTIONS:
            absvals = [jnp.abs(v) if _is_float(v) else v for v in vals]
            (m,) = _bind(eqn, absvals)
            n = _contraction_length(eqn, vals)
            # XLA accumulates a contraction narrower than float32 in float32 on every backend (CPU widens it, GPU
            # and TPU accumulate bfloat16 products in float32), then rounds once into the output's dtype.
            acc = jnp.result_type(dt, jnp.float32)
            last, last_tiny = (u * mag, tiny) if acc != dt else (0.0, 0.0)
            e = _gamma(n, acc) * m.astype(_err_dtype()) + n * _tiny(acc) + last + last_tiny
            parts = (float(np.sqrt(n)) * _u(acc) * m.astype(_err_dtype()) + last,
                     n * _tiny(acc) + last_tiny) if independent else None
        elif name in SUMS and name != "cumlogsumexp":
            x = vals[0]
            (m,) = _bind(eqn, [jnp.abs(x)])
            n = _sum_length(eqn, x)
            e = _gamma(n, dt) * m.astype(_err_dtype()) + n * tiny
        elif name == "convert_element_type":
            src = vals[0].dtype
            bits = errormodel.mantissa_bits
            narrowing = _is_float(vals[0]) and bits(dt) < bits(src)
            from_int = not _is_float(vals[0]) and np.dtype(src).itemsize * 8 > bits(dt)
            if narrowing or from_int:
                e, parts = u * mag + tiny, (u * mag, tiny)
        elif name == "reduce_precision":
            step = 2.0 ** -(eqn.params["mantissa_bits"] + 1)
            e, parts = step * mag + tiny, (step * mag, tiny)
        elif name == "integer_pow":
            k = max(abs(int(eqn.params["y"])) - 1, 1)
            e, parts = _gamma(k, dt) * mag + tiny, (float(np.sqrt(k)) * u * mag, tiny)
        elif name in ROUNDED_ONCE:
            e, parts = u * mag + tiny, (u * mag, tiny)
        elif name in EXACT_LINEAR or name in EXACT_OTHER:
            pass  # exact: no rounding of its own
        else:
            if name not in TRANSCENDENTAL:
                _UNKNOWN.add(name)
            e = config.SPECIAL_FUNCTION_ULPS * u * mag + tiny
        res.append(None if e is None else (e, parts if independent else None))
    return res


def _contraction_length(eqn, vals) -> int:
    if eqn.primitive.name == "dot_general":
        (lc, _), _ = eqn.params["dimension_numbers"]
        return max(1, int(np.prod([vals[0].shape[d] for d in lc], dtype=np.int64)))
    rhs = vals[1]
    dn = eqn.params["dimension_numbers"]
    out_dim = dn.rhs_spec[0] if hasattr(dn, "rhs_spec") else 0
    return max(1, int(np.prod(rhs.shape, dtype=np.int64)) // max(1, rhs.shape[out_dim]))


def _sum_length(eqn, x) -> int:
    if eqn.primitive.name == "reduce_sum":
        return max(1, int(np.prod([x.shape[a] for a in eqn.params["axes"]], dtype=np.int64)))
    if eqn.primitive.name == "reduce_window_sum":
        return max(1, int(np.prod(eqn.params["window_dimensions"], dtype=np.int64)))
    return max(1, x.shape[eqn.params["axis"]])


# --- the interpreter ------------------------------------------------------------------------------


def _eval_jaxpr(jaxpr, consts, vals, errs):
    env = {}

    def read(v):
        if isinstance(v, jcore.Literal):  # older jax keeps a Python scalar there: give it its aval's dtype
            return (v.val if hasattr(v.val, "dtype") else np.asarray(v.val, v.aval.dtype)), None
        return env[v]

    # An exact value carries None, not a zero array: XLA:CPU (jaxlib 0.10) miscompiles a convolution after a
    # pooling when one operand is a constant zero (jit(conv(reduce_window(a) / 4, zeros)) returns garbage, at any
    # optimisation level), so a zero bound is never materialised where a contraction would take it as a tangent.
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = (c, None)
    for v, x, e in zip(jaxpr.invars, vals, errs):
        env[v] = (x, e)
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        in_vals = [a for a, _ in ins]
        in_errs = [e for _, e in ins]
        outs, out_errs = _eval_eqn(eqn, in_vals, in_errs)
        for v, o, e in zip(eqn.outvars, outs, out_errs):
            env[v] = (o, e)
    results = [read(v) for v in jaxpr.outvars]
    return [a for a, _ in results], [e for _, e in results]


def _closed(j):
    """(jaxpr, consts) of a ClosedJaxpr or an open Jaxpr."""
    return (j.jaxpr, j.consts) if hasattr(j, "consts") else (j, ())


def _inner(eqn):
    p = eqn.params
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        if key in p:
            return _closed(p[key])
    raise NotImplementedError(f"no inner jaxpr in {eqn.primitive.name}")


def _eval_eqn(eqn, vals, errs):
    name = eqn.primitive.name
    if name in INLINED:
        jaxpr, consts = _inner(eqn)
        n = len(vals) - len(jaxpr.invars)  # custom_vjp/jvp calls may pass extra leading consts
        return _eval_jaxpr(jaxpr, consts, vals[n:], errs[n:])
    if name == "scan":
        return _scan(eqn, vals, errs)
    if name == "while":
        return _while(eqn, vals, errs)
    if name == "cond":
        return _cond(eqn, vals, errs)
    outs = _bind(eqn, vals)
    if name == "nextafter":  # one step from x: x's bound, and the step itself is exact
        return outs, [errs[0]]
    if name in PASS_THROUGH:  # the identity on values: the bound passes unchanged (its JVP would be zero)
        return outs, [e if _is_float(o) else None for o, e in zip(outs, errs)]
    try:
        prop = _propagated(eqn, vals, errs, outs)
    except NotImplementedError:  # no derivative rule: elementwise with unit slope, the inputs' bounds summed
        _UNKNOWN.add(name)
        prop = [_elementwise_sum(o, errs) for o in outs]
    loc = _local(eqn, vals, outs)
    return outs, [_plus(p, l) if _is_float(o) else None for o, p, l in zip(outs, prop, loc)]


def _plus(p, l):
    """Two bounds summed, None standing for an exact zero."""
    return l if p is None else p if l is None else p + l


def _elementwise_sum(out, errs):
    if not _is_float(out):
        return None
    total = None
    for e in errs:
        if e is not None and jnp.shape(e) in ((), jnp.shape(out)):
            total = _plus(total, jnp.broadcast_to(e, jnp.shape(out)).astype(_err_dtype()))
    return total


def _fill(vals, errs):
    return [e if e is not None or not _is_float(v) else _zero_err(v) for v, e in zip(vals, errs)]


def _scan_sizes(params) -> tuple[int, int]:
    """(consts, carries) of a ``scan``: named counts before jax 0.11, a packed ``ft_in`` (consts, carry, xs) after."""
    if "num_consts" in params:
        return params["num_consts"], params["num_carry"]
    if "ft_in" in params:
        consts, carry, _ = params["ft_in"].unpack()
        return len(consts), len(carry)
    raise NotImplementedError(f"the running-error analysis does not know this jax's scan parameters "
                              f"({sorted(params)}); it reads num_consts/num_carry or ft_in")


def _scan(eqn, vals, errs):
    p = eqn.params
    jaxpr, consts = _closed(p["jaxpr"])
    nc, ncarry = _scan_sizes(p)
    errs = _fill(vals, errs)
    c_vals, c_errs = vals[:nc], errs[:nc]
    carry0 = (vals[nc:nc + ncarry], errs[nc:nc + ncarry])
    xs = (vals[nc + ncarry:], errs[nc + ncarry:])

    def body(carry, x):
        outs, oerrs = _eval_jaxpr(jaxpr, consts, c_vals + carry[0] + x[0], c_errs + carry[1] + x[1])
        oerrs = _fill(outs, oerrs)
        return (outs[:ncarry], oerrs[:ncarry]), (outs[ncarry:], oerrs[ncarry:])

    (cv, ce), (ys, yes) = lax.scan(body, carry0, xs, length=p["length"], reverse=p["reverse"])
    return list(cv) + list(ys), list(ce) + list(yes)


def _while(eqn, vals, errs):
    p = eqn.params
    cj, cc = _closed(p["cond_jaxpr"])
    bj, bc = _closed(p["body_jaxpr"])
    ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
    errs = _fill(vals, errs)
    c_consts = vals[:ncc]
    b_vals, b_errs = vals[ncc:ncc + nbc], errs[ncc:ncc + nbc]
    init = (vals[ncc + nbc:], errs[ncc + nbc:])

    def cond(state):
        return jax.core.eval_jaxpr(cj, list(cc), *c_consts, *state[0])[0]

    def body(state):
        outs, oerrs = _eval_jaxpr(bj, bc, b_vals + list(state[0]), b_errs + list(state[1]))
        return (outs, _fill(outs, oerrs))

    v, e = lax.while_loop(cond, body, (list(init[0]), list(init[1])))
    return list(v), list(e)


def _cond(eqn, vals, errs):
    branches = eqn.params["branches"]
    errs = _fill(vals, errs)
    index, ops, op_errs = vals[0], vals[1:], errs[1:]

    def make(br):
        jaxpr, consts = _closed(br)

        def f(args):
            outs, oerrs = _eval_jaxpr(jaxpr, consts, list(args[0]), list(args[1]))
            return outs, _fill(outs, oerrs)

        return f

    outs, oerrs = lax.switch(index, [make(b) for b in branches], (ops, op_errs))
    return list(outs), list(oerrs)


def _live(jaxpr):
    """``jaxpr`` without the equations no output depends on (flax >= 0.11 re-runs initializers in apply,
    then overwrites them: dead code XLA removes, the analysis need not trace). Unchanged where jax has no DCE."""
    try:
        from jax._src.interpreters import partial_eval as pe

        live, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
        return live
    except Exception:  # noqa: BLE001 - an internal API: without it the analysis is the same, only slower
        return jaxpr


# --- the entry point --------------------------------------------------------------------------------


def value_and_bound(fn, *args):
    """``(fn(*args), bound)``: ``bound`` has ``fn``'s output structure, a first-order bound on each float
    output element's rounding error (None for integer, boolean and key outputs).

    The arguments count as exact. Jit it to compile the analysis once per shape.
    """
    closed = jax.make_jaxpr(fn)(*args)
    flat_args = jax.tree_util.tree_leaves(args)
    outs, errs = _eval_jaxpr(_live(closed.jaxpr), closed.consts, flat_args, [None] * len(flat_args))
    out_tree = jax.tree_util.tree_structure(jax.eval_shape(fn, *args))
    return jax.tree_util.tree_unflatten(out_tree, outs), jax.tree_util.tree_unflatten(
        out_tree, [e if e is not None else jnp.zeros(jnp.shape(o), _err_dtype()) for o, e in zip(outs, errs)])


@functools.lru_cache(maxsize=None)
def jit_value_and_bound(fn):
    """``value_and_bound(fn, ...)`` under jit, cached per function (jax caches it per shape).

    On CPU it compiles with ``config.ANALYSIS_COMPILER_OPTIONS`` (unoptimised:
    half the compile time) where this jax takes per-program compiler options.
    """
    analysed = functools.partial(value_and_bound, fn)
    if jax.default_backend() == "cpu" and "compiler_options" in inspect.signature(jax.jit).parameters:
        return jax.jit(analysed, compiler_options=dict(config.ANALYSIS_COMPILER_OPTIONS))
    return jax.jit(analysed)
