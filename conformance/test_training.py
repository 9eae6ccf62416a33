"""Training step: optax SGD over the Linen params pytree, as a legacy pipeline runs it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from conformance import config
from conformance.harness import case_x, given_data, init_jit, kernel_bias, module, numerics
from conformance.hypothesis_helpers import draw_case, x_specs
from conformance.pytest_helpers import assert_close, dot_bound, reporting, tolerance


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

    return jax.jit(step), jax.jit(loss)


def hand_step(kernel, bias, x, t, lr):
    """The SGD step in float64 NumPy from the analytic gradient, and its float32 error bound."""
    y = x @ kernel + bias
    dy = 2 * (y - t) / y.size
    tol = tolerance("float32")
    # float32 error of dy: the product's bound, then the subtraction and scaling.
    err_dy = 2 / y.size * dot_bound("float32", x.size, np.abs(x) @ np.abs(kernel) + np.abs(bias) + np.abs(t)) + tol * np.abs(dy)
    step_k, step_b = lr * np.outer(x, dy), lr * dy
    bound_k = 2 * (lr * np.outer(np.abs(x), err_dy) + tol * (np.abs(kernel) + np.abs(step_k)))
    bound_b = 2 * (lr * err_dy + tol * (np.abs(bias) + np.abs(step_b)))
    return (kernel - step_k, bound_k), (bias - step_b, bound_b)


@given_data(0.25)
def test_optax_sgd_step(device, data):
    case = draw_case(data, device, dtype_names=("float32",), kinds=("uniform", "integers", "one_hot"))
    t_spec = data.draw(x_specs(case.features_int, "float32", kinds=("uniform",)), label="target")
    case.extra["target"] = t_spec.code()
    check = f"""
    import optax
    from conformance.test_training import hand_step
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
        step, loss = train_step(case.width, case.features_int)
        opt_state = optax.sgd(lr).init(variables)
        losses = [float(loss(variables, x, target))]
        for i in range(config.TRAIN_STEPS):
            k, b = (np.asarray(a, np.float64) for a in kernel_bias(variables))
            (want_k, bound_k), (want_b, bound_b) = hand_step(k, b, x64, t64, lr)
            variables, opt_state, _ = step(variables, opt_state, x, target, lr)
            got_k, got_b = kernel_bias(variables)
            assert_close(f"step {i + 1}: params/linear/kernel", got_k, want_k, bound_k, "hand SGD update")
            assert_close(f"step {i + 1}: params/linear/bias", got_b, want_b, bound_b, "hand SGD update")
            losses.append(float(loss(variables, x, target)))
        assert all(b <= a * (1 + 1e-5) for a, b in zip(losses, losses[1:])), f"losses {losses} rose during SGD at a safe step size"
        assert losses[-1] < losses[0] or losses[0] < 1e-6, f"losses {losses} did not fall over {config.TRAIN_STEPS} SGD steps"
