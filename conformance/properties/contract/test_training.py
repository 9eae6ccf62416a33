"""Training step: optax SGD over the Linen params pytree, as a legacy pipeline runs it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from conformance.core import config
from conformance.numerics.sgd import assert_step_descends, hand_step  # repro snippets import hand_step from here
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
            assert_step_descends(i + 1, (k, b), (got_k, got_b), (want_k, want_b), (bound_k, bound_b), x64, t64)
