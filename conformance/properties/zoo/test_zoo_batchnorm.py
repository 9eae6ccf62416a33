"""Batch statistics through the bridge: ``apply(..., mutable=["batch_stats"])`` fed back step after step.

Zoo module: ``BatchNormBlock`` (``nnx.BatchNorm`` then Linear then Dropout),
conformance/modules/zoo.py. BatchNorm comes first, so its statistics depend on x alone
and a float64 NumPy oracle predicts them through any number of steps.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import strategies as st

from conformance.core import config
from conformance.numerics import errormodel
from conformance.modules import module_harness as zh
from conformance.helpers.harness import given_data
from conformance.helpers.pytest_helpers import assert_close, assert_equal, tree_paths
from reference import _compat
from conformance.modules import zoo

M = config.ZOO_BN_MOMENTUM
EPS = config.ZOO_BN_EPSILON
MEAN, VAR = "batch_stats/bn/mean", "batch_stats/bn/var"
F32 = np.float32


def _spec():
    return zoo.batchnorm_spec()


def _draw_x(data):
    """The spec's batch, scaled and shifted: an offset makes the fast variance E[x^2] - E[x]^2 cancel."""
    scale = data.draw(st.sampled_from([0.01, 1.0, 4.0]), label="x scale")
    offset = data.draw(st.sampled_from([0.0, -1.0, 3.0]), label="x offset")
    return (_spec().inputs[0] * F32(scale) + F32(offset)).astype(F32)


# --- the float64 oracle and its float32 error bound -------------------------------------------------------


def batch_moments(x):
    """Exact batch mean and biased variance per feature (float64)."""
    x64 = np.asarray(x, np.float64)
    mean = x64.mean(axis=0)
    return mean, ((x64 - mean) ** 2).mean(axis=0)


def momentum_update(old, stat, old_err, stat_err):
    """new = m old + (1 - m) stat, and its bound (errormodel.momentum_error)."""
    return M * old + (1 - M) * stat, errormodel.momentum_error(M, old, stat, old_err, stat_err)


def _stats(tree):
    p = tree_paths(tree)
    return np.asarray(p[MEAN], np.float64), np.asarray(p[VAR], np.float64)


def _check_stats(got_tree, want_mean, want_var, e_mean, e_var, what):
    __tracebackhide__ = True
    mean, var = _stats(got_tree)
    assert_close("batch_stats/bn/mean", mean, want_mean, e_mean, what)
    assert_close("batch_stats/bn/var", var, want_var, e_var, what)


# --- properties ------------------------------------------------------------------------------------------------


@given_data(0.25)
def test_zoo_batch_stats_update_matches_oracle(data):
    """One training-mode apply: the returned batch_stats are the momentum update of the stored ones."""
    spec = _spec()
    x = _draw_x(data)
    seed = data.draw(st.integers(0, 2**31 - 1), label="params seed")
    v = zh.init(spec, seed, x)
    old_mean, old_var = _stats(v)
    assert_equal("initial batch_stats/bn/mean", old_mean, np.zeros_like(old_mean), "BatchNorm starts from mean 0")
    assert_equal("initial batch_stats/bn/var", old_var, np.ones_like(old_var), "BatchNorm starts from var 1")
    _, upd = zh.jit_train(spec)(v, x, zh.stream_keys(spec, seed))
    assert sorted(upd) == ["batch_stats"], f"updated collections {sorted(upd)}, but should be ['batch_stats']"
    mu, var = batch_moments(x)
    e_mu, e_var = errormodel.batch_moments_error(x)
    want_mean, b_mean = momentum_update(old_mean, mu, 0.0, e_mu)
    want_var, b_var = momentum_update(old_var, var, 0.0, e_var)
    _check_stats(upd, want_mean, want_var, b_mean, b_var, f"momentum {M} update of the batch mean and variance")


@given_data(0.25)
def test_zoo_batch_stats_roundtrip_through_optax(data):
    """A Linen training loop: apply(mutable=["batch_stats"]) inside value_and_grad, optax SGD, stats fed back."""
    spec = _spec()
    x = _draw_x(data)
    seed = data.draw(st.integers(0, 2**31 - 1), label="params seed")
    v = zh.init(spec, seed, x)
    params, stats = v["params"], v["batch_stats"]
    rest = {c: t for c, t in v.items() if c not in ("params", "batch_stats")}  # flax < 0.10.6: the 'nnx' graphdef
    tx = optax.sgd(config.ZOO_LEARNING_RATE)
    opt = tx.init(params)
    step = _train_step(spec, tx)
    want_mean, want_var = _stats(v)
    b_mean = b_var = np.zeros_like(want_mean)
    mu, var = batch_moments(x)
    e_mu, e_var = errormodel.batch_moments_error(x)
    for k in range(config.ZOO_TRAIN_STEPS):
        new_params, opt, stats, grads = step(params, opt, stats, x, rest)
        want_mean, b_mean = momentum_update(want_mean, mu, b_mean, e_mu)
        want_var, b_var = momentum_update(want_var, var, b_var, e_var)
        _check_stats({"batch_stats": stats}, want_mean, want_var, b_mean, b_var,
                     f"after {k + 1} optax steps, each feeding the new batch_stats back")
        for path, p_new in tree_paths({"params": new_params}).items():
            p_old = np.asarray(tree_paths({"params": params})[path], np.float64)
            g = np.asarray(tree_paths({"params": grads})[path], np.float64)
            expected = p_old - config.ZOO_LEARNING_RATE * g
            bound = errormodel.sgd_step_error(p_old, config.ZOO_LEARNING_RATE, g)
            assert_close(path, p_new, expected, bound, f"optax SGD step {k + 1}: params - lr * grads")
        params = new_params
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(grads)), "every gradient is zero"


_STEPS: dict = {}


def _train_step(spec, tx):
    key = (spec, config.ZOO_LEARNING_RATE)
    if key not in _STEPS:
        m = zh.linen(spec)

        def loss(params, stats, x, rest):
            y, upd = m.apply({**rest, "params": params, "batch_stats": stats}, x, mutable=["batch_stats"],
                             use_running_average=False, deterministic=True)
            return jnp.mean(y ** 2), upd["batch_stats"]

        @jax.jit
        def step(params, opt, stats, x, rest):
            (_, new_stats), grads = jax.value_and_grad(loss, has_aux=True)(params, stats, x, rest)
            updates, opt = tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), opt, new_stats, grads

        _STEPS[key] = step
    return _STEPS[key]


def normalize_oracle(x, mean, var, scale, bias, kernel, lin_bias):
    """linear(batchnorm(x)) with the given statistics, float64, and its float32 bound (errormodel)."""
    z = (x - mean) * (scale / np.sqrt(var + EPS)) + bias
    return z @ kernel + lin_bias, errormodel.normalize_affine_error(x, mean, var, EPS, scale, bias, kernel, lin_bias)


@given_data(0.25)
def test_zoo_use_running_average_uses_stored_stats(data):
    """Evaluation mode normalises with the stored statistics (drawn here), and leaves them unchanged."""
    spec = _spec()
    x = _draw_x(data)
    v = zh.init(spec, 0, x)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="stored stats seed"))
    mean = rng.uniform(-2, 2, config.ZOO_WIDTH).astype(F32)
    var = rng.uniform(0.25, 4, config.ZOO_WIDTH).astype(F32)
    stored = {**v, "batch_stats": {"bn": {"mean": _compat.rebox(v["batch_stats"]["bn"]["mean"], mean),
                                                             "var": _compat.rebox(v["batch_stats"]["bn"]["var"], var)}}}
    y, upd = zh.linen(spec).apply(stored, x, mutable=["batch_stats"], **spec.eval_kwargs)
    p = {k: a.astype(np.float64) for k, a in zh.array_leaves(v).items()}
    want, bound = normalize_oracle(np.asarray(x, np.float64), mean.astype(np.float64), var.astype(np.float64),
                                   p["params/bn/scale"], p["params/bn/bias"], p["params/linear/kernel"],
                                   p["params/linear/bias"])
    assert_close("y", y, want, bound, "linear(batchnorm(x)) normalised with the stored mean and var")
    got_mean, got_var = _stats(upd)
    assert_equal("batch_stats/bn/mean", got_mean, mean.astype(np.float64), "use_running_average must not update")
    assert_equal("batch_stats/bn/var", got_var, var.astype(np.float64), "use_running_average must not update")


def test_zoo_mutable_apply_with_dropout_rng():
    """The usual training call, as a Linen TrainState holds the variables: params and batch_stats only.

    ``apply({"params": p, "batch_stats": s}, x, rngs={"dropout": k}, mutable=["batch_stats"])``
    must return the output, masked, and the new statistics.
    """
    spec = _spec()
    x = spec.inputs[0]
    v = zh.init(spec, 0, x)
    state = {"params": v["params"], "batch_stats": v["batch_stats"]}  # what a TrainState carries
    key = zh.stream_keys(spec, 1)
    y, upd = zh.linen(spec).apply(state, x, rngs=key, mutable=["batch_stats"], **spec.train_kwargs)
    y_plain, upd_plain = zh.linen(spec).apply(state, x, mutable=["batch_stats"], use_running_average=False,
                                              deterministic=True)
    y, y_plain = np.asarray(y), np.asarray(y_plain)
    assert np.any(y == 0) and np.any(y != 0), f"training-mode output has {int((y == 0).sum())} of {y.size} cells dropped"
    keep = 1.0 - config.ZOO_DROPOUT_RATE
    expected = np.where(y != 0, y_plain.astype(np.float64) / keep, 0.0)
    # The division (or product by 1 / keep); y_plain comes from the same eager ops up to the dropout.
    assert_close("y", y, expected, errormodel.scaling_error(expected),
                 "dropout of the same block's deterministic output")
    m1, v1 = _stats(upd)
    m2, v2 = _stats(upd_plain)
    assert_equal("batch_stats/bn/mean", m1, m2, "the statistics must not depend on the dropout key")
    assert_equal("batch_stats/bn/var", v1, v2, "the statistics must not depend on the dropout key")
    assert math.isfinite(float(np.sum(y)))
