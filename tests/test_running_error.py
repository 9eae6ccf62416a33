"""The running-error analysis (conformance/numerics/running_error.py): its bounds hold, and scale with what cancels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from conformance.modules import module_harness as zh
from conformance.modules import zoo_layers
from conformance.numerics import adjoint_error, errormodel, running_error
from reference import _compat

U32 = 2.0 ** -24


def bound(fn, *args):
    return running_error.value_and_bound(fn, *args)


def test_a_dot_product_gets_gamma_n_of_its_absolute_terms():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 40)).astype(np.float32), rng.normal(size=(40, 2)).astype(np.float32)
    y, e = bound(lambda a, b: a @ b, a, b)
    want = errormodel.gamma(40, "float32") * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.allclose(np.asarray(e), want, rtol=1e-4, atol=1e-30), (np.asarray(e), want)


def test_the_bound_scales_with_the_terms_that_cancelled():
    """(a + b) - a with a = 1e4, b = 1e-3: the result is ~1e-3, its error ~u * 1e4: the bound says so."""
    a, b = np.float32(1e4), np.float32(1e-3)
    y, e = bound(lambda a, b: (a + b) - a, a, b)
    assert float(e) >= abs(float(y) - 1e-3) and float(e) >= U32 * 1e4 and float(e) < 1e4 * 4 * U32


def test_a_gradient_zero_by_symmetry_gets_a_positive_bound_that_holds():
    """d/dx sum(softmax(x)) is 0 for every x: the computed gradient is rounding noise, inside the bound."""
    x = np.random.default_rng(1).normal(size=(16,)).astype(np.float32) * 4
    g, e = bound(jax.grad(lambda x: jnp.sum(jax.nn.softmax(x))), x)
    assert np.all(np.asarray(e) > 0)
    assert np.all(np.abs(np.asarray(g, np.float64)) <= np.asarray(e)), (np.asarray(g), np.asarray(e))


def test_a_scan_carries_its_bound():
    x = np.random.default_rng(2).uniform(-1, 1, size=(50,)).astype(np.float32)

    def running(x):
        return lax.scan(lambda c, xi: (c + xi, c + xi), np.float32(0), x)[1]

    y, e = bound(running, x)
    exact = np.cumsum(x.astype(np.float64))
    assert np.all(np.abs(np.asarray(y, np.float64) - exact) <= np.asarray(e))
    assert np.asarray(e)[-1] > np.asarray(e)[0]  # the bound grows along the loop


class _PackedScanInputs:
    """jax >= 0.11 packs a scan's (consts, carry, xs) into one flat tree, ``ft_in``, instead of naming the counts."""

    def __init__(self, *groups):
        self.groups = groups

    def unpack(self):
        return self.groups


def test_a_scans_counts_are_read_in_both_parameter_layouts():
    assert running_error._scan_sizes({"num_consts": 2, "num_carry": 1, "length": 4}) == (2, 1)
    assert running_error._scan_sizes({"ft_in": _PackedScanInputs([0, 0, 0], [0, 0], [0]), "length": 4}) == (3, 2)
    with pytest.raises(NotImplementedError, match="scan parameters"):
        running_error._scan_sizes({"length": 4})


def _widened(tree):
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a, np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating) else np.asarray(a), tree)


@pytest.mark.parametrize("name", ["real_attention", "real_cnn", "real_gated_mlp", "real_token_classifier"])
def test_real_layers_in_float32_are_within_the_bound_of_their_float64_values(name):
    """Evaluation mode and its gradient, float32 against the same layer in float64 (params and inputs widened).

    Evaluation mode: training mode's dropout masks come from uniform draws of
    the dtype, so a float64 run would drop other cells.
    """
    spec = {s.name: s for s in zoo_layers.real_layer_specs()}[name]
    call = spec.calls[0]
    v = zh.init(spec, 0, call)
    rest = {c: t for c, t in v.items() if c != "params"}

    def loss(params, rest, call):
        out = zh.evaluate(spec, {**rest, "params": params}, call)
        return sum(jnp.sum(jnp.square(a)) for a in zh.float_leaves(out))

    y, e = running_error.jit_value_and_bound(zh.evaluate_fn(spec))(v, call)
    g, ge = running_error.jit_value_and_bound(jax.grad(loss))(v["params"], rest, call)  # compiled: eager took ~4x the CPU
    with jax.enable_x64(True):
        y64 = jax.jit(zh.evaluate_fn(spec))(_widened(v), _widened(call))
        g64 = jax.jit(jax.grad(loss))(_widened(v)["params"], _widened(rest), _widened(call))
    _, signed, probable = adjoint_error.jit_value_and_bounds(zh.evaluate_fn(spec))(v, call)  # the sharper ones
    assert signed is not None, f"{name}: no adjoint bound for a float32 layer"
    for got, want, b in [(y, y64, e), (g, g64, ge), (y, y64, signed), (y, y64, probable)]:
        for a, w, bb in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(b)):
            err = np.abs(np.asarray(a, np.float64) - np.asarray(w, np.float64))
            assert np.all(err <= np.asarray(bb, np.float64)), f"{name}: error {err.max():.3e} beyond its bound"


def test_python_scalar_literals_of_older_jax_are_read_with_their_dtype():
    """jax before 0.5 keeps a jaxpr literal as a Python float: the interpreter gives it its aval's dtype."""
    from jax.extend import core as jcore

    # jnp.where passes its scalar into an inner jaxpr that converts it: where older jax crashed the interpreter
    closed = jax.make_jaxpr(lambda x: jnp.where(x > 0, x, 0.5) * x)(jnp.float32(-3.0))
    eqns = []
    for eqn in closed.jaxpr.eqns:  # every literal as older jax stores it
        invars = [jcore.Literal(float(v.val), v.aval) if isinstance(v, jcore.Literal) else v for v in eqn.invars]
        eqns.append(eqn.replace(invars=invars))
    old_style = closed.jaxpr.replace(eqns=eqns)
    assert any(isinstance(v, jcore.Literal) and isinstance(v.val, float) for e in eqns for v in e.invars), \
        "the jaxpr holds no literal to rewrite"
    outs, errs = running_error._eval_jaxpr(old_style, closed.consts, [jnp.float32(-3.0)], [None])
    assert float(outs[0]) == -1.5, f"outs[0]={outs[0]}, but should be -1.5"
    assert errs[0] is not None and 0 <= float(errs[0]) <= 4 * errormodel.unit_roundoff("float32") * 1.5


def test_mantissa_bits_cover_bfloat16_without_numpy_finfo():
    assert [errormodel.mantissa_bits(d) for d in ("float64", "float32", "float16", "bfloat16")] == [52, 23, 10, 7]


@pytest.mark.parametrize("fn, x", [
    (lambda x: jnp.sqrt(jnp.maximum(x, 0.0)), np.array([-1.0, 0.0, 4.0], np.float32)),  # sqrt at an exact 0
    (lambda x: jnp.sqrt(x * x), np.array([0.0, 3.0], np.float32)),  # sqrt at a rounded 0: sqrt(e), not e * inf
    (lambda x: jnp.log(jnp.maximum(x, 0.0) + 1.0), np.array([-2.0, 0.5], np.float32)),
    (lambda x: jnp.sum(jnp.sqrt(jnp.maximum(x, 0.0)) * 2.0), np.array([-1.0, 0.0, 9.0], np.float32)),
])
def test_no_bound_is_nan_or_negative_where_a_derivative_is_infinite(fn, x):
    """0 * inf in a JVP (an exact input meeting an infinite derivative) is no error, not NaN; sqrt's is sqrt(e)."""
    y, e = bound(fn, x)
    _, e_jit = running_error.jit_value_and_bound(fn)(x)
    for b in (np.asarray(e, np.float64), np.asarray(e_jit, np.float64)):
        assert not np.any(np.isnan(b)) and np.all(b >= 0), b
        assert np.all(np.isfinite(b)), b  # these all have finite errors
    with _compat.enable_x64(True):
        exact = np.asarray(fn(x.astype(np.float64)), np.float64)
    assert np.all(np.abs(np.asarray(y, np.float64) - exact) <= np.asarray(e, np.float64)), (y, exact, e)


def test_a_nan_or_negative_bound_fails_as_a_defect_of_the_suite():
    from conformance.helpers.pytest_helpers import assert_within_model

    for bad in (np.nan, -1.0):
        with pytest.raises(AssertionError, match="a defect of the suite's error model"):
            assert_within_model("y", np.ones(3, np.float32), np.ones(3, np.float32), np.array([0.0, bad, 0.0]))



# --- the signed first-order bound (numerics/adjoint_error.py) ----------------------------------------------


def _normalised_then_mixed(x, w):
    """A shared error source: each row's mean square scales the whole row, then a contraction of mixed signs."""
    z = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True))
    return jnp.tanh(z @ w) @ w.T


def _scanned(x, w):
    def step(c, row):
        c = jnp.tanh(c @ w + row)
        return c, c
    return jax.lax.scan(step, jnp.zeros(x.shape[-1], x.dtype), x)[1]


def _statistics_without_gradient(x, w):
    """A running mean as a batch norm keeps it: through stop_gradient, which passes errors on but no derivative."""
    return 0.1 * jax.lax.stop_gradient(jnp.mean(x @ w, axis=0))


def _errors_and_bounds(fn, *args):
    """``|fn(*args) - float64 value|`` and the running, signed and probabilistic bounds, as float64 arrays."""
    y, running = running_error.jit_value_and_bound(fn)(*args)
    _, signed, probable = adjoint_error.jit_value_and_bounds(fn)(*args)
    with jax.enable_x64(True):
        y64 = jax.jit(fn)(*(np.asarray(a, np.float64) for a in args))
    err = np.abs(np.asarray(y, np.float64) - np.asarray(y64))
    return (err, *(np.asarray(b, np.float64) for b in (running, signed, probable)))


@pytest.mark.parametrize("fn", [_normalised_then_mixed, _scanned, _statistics_without_gradient])
def test_the_signed_bound_holds_against_float64_and_is_never_wider(fn):
    kx, kw = jax.random.split(jax.random.PRNGKey(3))
    x, w = jax.random.normal(kx, (4, 64)) + 3.0, jax.random.normal(kw, (64, 64)) / 8
    err, running, signed, probable = _errors_and_bounds(fn, x, w)
    assert np.all(err <= signed), f"error {err.max():.3e} beyond the signed bound {signed[err > signed].min():.3e}"
    assert np.all(err <= probable), f"error {err.max():.3e} beyond the probabilistic bound"
    assert np.all(probable <= signed), "the probabilistic bound is wider than the signed one"
    # never wider, up to the bounds' own float32 rounding (a short scan is walked step by step, signs kept)
    assert np.all(signed <= running * (1 + 1e-3)), "the signed bound is wider than the running one"
    assert np.all(signed > 0), "an output with rounding upstream got a zero signed bound"
    if fn is _statistics_without_gradient:  # one error source per element, nothing recombines: the same bound
        np.testing.assert_allclose(signed, running, rtol=1e-3, err_msg="the signed bound lost errors at stop_gradient")
    if fn is _normalised_then_mixed:  # the row's scale enters once and cancels downstream: sharper
        assert np.median(signed / running) < 0.9, f"median signed/running = {np.median(signed / running):.3f}"


def test_a_bfloat16_contraction_accumulates_in_float32_then_rounds_once():
    """8 products of ones: gamma_8(float32) * 8 for the accumulation, u(bfloat16) * |y| for the one rounding."""
    x = jnp.ones((4, 8), jnp.bfloat16)
    y, signed, probable = adjoint_error.jit_value_and_bounds(lambda a: a @ a.T)(x)
    assert y.dtype == jnp.bfloat16 and np.all(np.asarray(y, np.float32) == 8)
    u32, u16 = 2.0**-24, 2.0**-8
    want = 8 * u32 / (1 - 8 * u32) * 8 + u16 * 8
    np.testing.assert_allclose(np.asarray(signed), want, rtol=1e-6)
    assert np.all(np.asarray(probable) <= np.asarray(signed))
    _, running = running_error.jit_value_and_bound(lambda a: a @ a.T)(x)
    np.testing.assert_allclose(np.asarray(running), want, rtol=1e-6)


def test_the_float32_shadow_bounds_a_bfloat16_chain_against_float64():
    """bfloat16 compute (dense, silu, normalise, dense): the error against the same chain in float64 is within the
    signed bound, element by element, and the bound is far below the value where the old walk declined."""
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(3), 3)
    x = jax.random.normal(kx, (3, 8))
    w1, w2 = jax.random.normal(k1, (8, 32)) / 3, jax.random.normal(k2, (32, 4)) / 6

    def chain(x, w1, w2, dtype):
        h = jax.nn.silu(x.astype(dtype) @ w1.astype(dtype))
        h = h * jax.lax.rsqrt(jnp.mean(jnp.square(h.astype(jnp.float32)), -1, keepdims=True) + 1e-6).astype(dtype)
        return h @ w2.astype(dtype)

    y, signed, _ = adjoint_error.jit_value_and_bounds(lambda *a: chain(*a, jnp.bfloat16))(x, w1, w2)
    with _compat.enable_x64(True):
        exact = np.asarray(chain(*(jnp.asarray(np.asarray(a), jnp.float64) for a in (x, w1, w2)), jnp.float64))
    err = np.abs(np.asarray(y, np.float64) - exact)
    assert np.all(err <= np.asarray(signed, np.float64)), (err / np.asarray(signed)).max()
    assert np.median(np.asarray(signed) / np.abs(exact)) < 0.5


def test_a_loop_over_bfloat16_values_keeps_the_running_bound_alone():
    x = jnp.ones((4,), jnp.bfloat16)
    y, signed, probable = adjoint_error.jit_value_and_bounds(
        lambda a: jax.lax.fori_loop(0, 3, lambda i, c: c * a + a, a))(x)
    assert signed is None and probable is None and y.dtype == jnp.bfloat16


# --- the probabilistic first-order bound (adjoint_error.value_and_bounds) -----------------------------------


def test_the_probabilistic_bound_of_a_long_contraction_is_sqrt_n_over_lambda_sharper():
    """n = 4096 products of mixed signs: sqrt(n) u |x|.|w| per side times lambda, against gamma_n |x|.|w|."""
    from conformance.core import config

    kx, kw = jax.random.split(jax.random.PRNGKey(5))
    x, w = jax.random.normal(kx, (2, 4096)), jax.random.normal(kw, (4096, 3))
    y, signed, probable = adjoint_error.jit_value_and_bounds(lambda a, b: a @ b)(x, w)
    want = config.PROBABILISTIC_LAMBDA * np.sqrt(4096) * U32 * (np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(w)))
    np.testing.assert_allclose(np.asarray(probable), want, rtol=1e-3, err_msg="not lambda sqrt(n) u |x|.|w|")
    ratio = np.asarray(signed, np.float64) / np.asarray(probable, np.float64)
    assert np.all(ratio > 0.9 * np.sqrt(4096) / config.PROBABILISTIC_LAMBDA), ratio
    with jax.enable_x64(True):
        y64 = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    assert np.all(np.abs(np.asarray(y, np.float64) - y64) <= np.asarray(probable)), "beyond the probabilistic bound"


@pytest.mark.parametrize("fn", [jnp.tanh, jnp.exp, lambda a: jnp.sum(a, axis=-1), lambda a: jnp.cumsum(a, axis=-1)],
                         ids=["tanh", "exp", "sum", "cumsum"])
def test_functions_and_sums_keep_their_worst_case_in_the_probabilistic_bound(fn):
    """A function's approximation may err with one sign, and a constant region summed in sequence rounds with one
    sign: their local errors are not modelled as independent, so the two bounds agree."""
    x = jax.random.normal(jax.random.PRNGKey(6), (3, 512))
    _, signed, probable = adjoint_error.jit_value_and_bounds(fn)(x)
    np.testing.assert_allclose(np.asarray(probable), np.asarray(signed), rtol=1e-6)


def _stacked_layers(x, ws):
    """Layers stacked on a leading axis and scanned, as nnx.vmap-made blocks under nnx.scan: dense, normalise, gelu."""
    def layer(h, w):
        z = h @ w
        z = (z - jnp.mean(z, axis=0)) * jax.lax.rsqrt(jnp.var(z, axis=0) + 1e-5)
        return jax.nn.gelu(z), None
    return jax.lax.scan(layer, x, ws)[0]


def test_a_short_scan_is_walked_step_by_step_and_its_bounds_hold_against_float64():
    kx, kw = jax.random.split(jax.random.PRNGKey(7))
    x, ws = jax.random.normal(kx, (8, 32)), jax.random.normal(kw, (5, 32, 32)) / 6
    err, running, signed, probable = _errors_and_bounds(_stacked_layers, x, ws)
    assert np.all(err <= probable) and np.all(probable <= signed), "a bound fails against float64, or is out of order"
    # one site with the loop's running bound would give the running bound itself: stepping keeps the signs
    assert np.median(signed / running) < 0.5, f"median signed/running = {np.median(signed / running):.3f}"


def test_an_empty_scan_gives_its_outputs_their_own_shapes_and_no_error():
    def carried_and_stacked(x, ws):
        return jax.lax.scan(lambda h, w: (h @ w, h * 2.0), x, ws)

    x, ws = jnp.ones((2, 4)), jnp.ones((0, 4, 4))
    y, signed, probable = adjoint_error.jit_value_and_bounds(carried_and_stacked)(x, ws)
    assert [np.shape(a) for a in jax.tree_util.tree_leaves((y, signed, probable))] == [(2, 4), (0, 2, 4)] * 3
    assert not np.any(np.asarray(signed[0])) and not np.any(np.asarray(probable[0]))  # the carry passes through exact
