"""Training step: optax SGD over the Linen params pytree, as a legacy pipeline runs it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from conformance.core import config
from conformance.numerics import errormodel
from conformance.helpers.harness import case_x, given_data, init_jit, kernel_bias, module, numerics
from conformance.helpers.hypothesis_helpers import draw_case, x_specs
from conformance.helpers.pytest_helpers import assert_close, reporting


@functools.lru_cache(maxsize=None)
def train_step(width: int, features: int):
    """One jitted SGD step: loss = mean((apply(v, x) - target)**2)."""
    m = module(width, features)

    def loss(v, x, t):
        return jnp.mean((m.apply(v, x) - t) ** 2)

    def step(v, opt_state, x, t, lr):
        value, g = jax.value_and_grad(loss)(v, x, t)
        updates, opt_state = optax.sgd(lr).update(g, opt_state, v)
        return optax.apply_updates(v, updates), opt_state, value

    return jax.jit(step)


def hand_step(kernel, bias, x, t, lr):
    """The SGD step in float64 NumPy from the analytic gradient, and the float32 error model's bound.

    float32 chain (u, floor eta): y = x @ K + b (affine error e_y); r = y - t (one
    rounding); dy = 2 r * (1/F) (the constant and the product: gamma_2); the kernel
    gradient x * dy (one product); the update -lr * g (lr rounded, one product:
    gamma_2); K + update (one rounding). Each error is carried through exactly.
    """
    u, eta = errormodel.unit_roundoff("float32"), errormodel.floor("float32")
    y = x @ kernel + bias
    dy = 2 * (y - t) / y.size
    e_y = errormodel.affine_error(x.size, "float32", np.abs(x) @ np.abs(kernel) + np.abs(bias))
    e_r = e_y + u * (np.abs(y) + np.abs(t) + e_y) + eta
    e_dy = 2 / y.size * e_r + errormodel.gamma(2, "float32") * (np.abs(dy) + 2 / y.size * e_r) + eta
    mag_dy = np.abs(dy) + e_dy
    g_k, e_gk = np.outer(np.abs(x), mag_dy), np.outer(np.abs(x), e_dy) + u * np.outer(np.abs(x), mag_dy) + eta
    step_k, step_b = lr * np.outer(x, dy), lr * dy
    e_step_k = lr * e_gk + errormodel.gamma(2, "float32") * lr * (g_k + e_gk)
    e_step_b = lr * e_dy + errormodel.gamma(2, "float32") * lr * mag_dy
    bound_k = e_step_k + errormodel.rounding_error("float32", np.abs(kernel) + np.abs(step_k) + e_step_k)
    bound_b = e_step_b + errormodel.rounding_error("float32", np.abs(bias) + np.abs(step_b) + e_step_b)
    return (kernel - step_k, bound_k), (bias - step_b, bound_b)


def loss64(kernel, bias, x, t):
    """mean((x @ K + b - t)**2) in float64, its gradient, and its own float64 rounding bound."""
    r = x @ kernel + bias - t
    mag = np.mean((np.abs(x) @ np.abs(kernel) + np.abs(bias) + np.abs(t)) ** 2)
    grad = (np.outer(x, 2 * r / r.size), 2 * r / r.size)
    return float(np.mean(r * r)), grad, errormodel.gamma(x.size + r.size + 3, "float64") * mag


def loss_may_rise_by(want, bounds, x, t):
    """How far the loss at the computed params may exceed the loss before the step.

    The exact step (lr under 1/L) cannot raise the loss (descent lemma); the computed
    params lie within ``bounds`` of it, which may raise it by at most
    |grad L(want)| . bound + (L / 2) |bound|^2, with L = 2 (|x|^2 + 1) / F.
    """
    _, grad, _ = loss64(*want, x, t)
    smooth = 2 * (float(x @ x) + 1) / len(t)
    return sum(float(np.sum(np.abs(g) * b)) + smooth / 2 * float(np.sum(b * b)) for g, b in zip(grad, bounds))


@given_data(0.25)
def test_optax_sgd_step(device, data):
    case = draw_case(data, device, dtype_names=("float32",), kinds=("uniform", "integers", "one_hot"))
    t_spec = data.draw(x_specs(case.features_int, "float32", kinds=("uniform",)), label="target")
    case.extra["target"] = t_spec.code()
    check = f"""
    import optax
    from conformance.helpers.pytest_helpers import assert_close
    from conformance.properties.contract.test_training import hand_step
    target = {t_spec.code()}
    m = linen_module(x.shape[-1], int(features))
    x64, t64 = np.asarray(x, np.float64), target.astype(np.float64)
    lr = 0.5 * int(features) / (2 * (float(x64 @ x64) + 1))  # under 1/L: no step may raise the loss
    loss = lambda v: jnp.mean((m.apply(v, x) - target) ** 2)
    v, opt_state = variables, optax.sgd(lr).init(variables)
    for i in range({config.TRAIN_STEPS}):
        k, b = (np.asarray(v['params']['linear'][n], np.float64) for n in ('kernel', 'bias'))
        (want_k, bound_k), (want_b, bound_b) = hand_step(k, b, x64, t64, lr)
        updates, opt_state = optax.sgd(lr).update(jax.grad(loss)(v), opt_state, v)
        v = optax.apply_updates(v, updates)
        assert_close(f"step {{i + 1}}: params/linear/kernel", v['params']['linear']['kernel'], want_k, bound_k, "hand SGD update")
        assert_close(f"step {{i + 1}}: params/linear/bias", v['params']['linear']['bias'], want_b, bound_b, "hand SGD update")
    """
    with numerics(case), reporting("optax training step", case, check):
        x = case_x(case)
        target = t_spec.build()
        x64, t64 = np.asarray(x, np.float64), t_spec.build().astype(np.float64)
        # A step size under 1/L for this quadratic, so no step may raise the loss.
        lr = 0.5 * case.features_int / (2 * (float(x64 @ x64) + 1))
        variables = init_jit(case)
        step = train_step(case.width, case.features_int)
        opt_state = optax.sgd(lr).init(variables)
        for i in range(config.TRAIN_STEPS):
            k, b = (np.asarray(a, np.float64) for a in kernel_bias(variables))
            (want_k, bound_k), (want_b, bound_b) = hand_step(k, b, x64, t64, lr)
            variables, opt_state, _ = step(variables, opt_state, x, target, lr)
            got_k, got_b = (np.asarray(a, np.float64) for a in kernel_bias(variables))
            assert_close(f"step {i + 1}: params/linear/kernel", got_k, want_k, bound_k, "hand SGD update")
            assert_close(f"step {i + 1}: params/linear/bias", got_b, want_b, bound_b, "hand SGD update")
            before, _, err_before = loss64(k, b, x64, t64)
            after, _, err_after = loss64(got_k, got_b, x64, t64)
            slack = loss_may_rise_by((want_k, want_b), (bound_k, bound_b), x64, t64) + err_before + err_after
            assert after <= before + slack, (
                f"step {i + 1}: loss {after!r}, but should be at most {before!r} + {slack:.3e} "
                f"(SGD at a safe step size cannot raise it beyond the step's rounding)"
            )
