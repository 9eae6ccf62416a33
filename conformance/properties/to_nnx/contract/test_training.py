"""Training step through ToNNX: ``nnx.Optimizer`` with optax SGD over the model's params, as an NNX pipeline runs it.

Each step moves the params by exactly lr * grad of the analytic gradient
within the float32 error model (``conformance/numerics/sgd.py``, shared with
the ``to_linen`` direction's optax step), never raises the loss beyond the
step's rounding, and the model called after it computes with the moved params.
"""

import jax.numpy as jnp
import numpy as np
import optax

from conformance.core import config
from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, kernel_bias, numerics
from conformance.helpers.hypothesis_helpers import draw_case, x_specs
from conformance.helpers.pytest_helpers import assert_close, assert_product_close, reporting
from conformance.numerics.sgd import assert_step_descends, hand_step
from reference import _compat, nnx_params

nnx = _compat.nnx

# SGD with its step size in the optimizer's state: one program serves every drawn step size.
SGD = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)


@nnx.jit
def sgd_step(model, optimizer, x, target):
    """One step: loss = mean((model(x) - target)**2), grads by nnx.grad, optimizer.update in place."""
    grads = nnx.grad(lambda m: jnp.mean((m(x) - target) ** 2))(model)
    _compat.optimizer_update(optimizer, model, grads)


# Three compiled optimizer steps and an eager optimizer set-up per example: a sixth of the profile's examples.
@given_data(0.15, rotation="test_optax_sgd_step")
def test_tonnx_optimizer_sgd_step(device, data):
    case = draw_case(data, device, dtype_names=("float32",), kinds=("uniform", "integers", "one_hot"),
                     direction=harness_nnx.DIRECTION)
    t_spec = data.draw(x_specs(case.features_int, "float32", kinds=("uniform",)), label="target")
    case.extra["target"] = t_spec.code()
    check = f"""
    import optax
    from conformance.numerics.sgd import hand_step
    target = {t_spec.code()}
    x64, t64 = np.asarray(x, np.float64), target.astype(np.float64)
    lr = 0.5 * int(features) / (2 * (float(x64 @ x64) + 1))  # under 1/L: no step may raise the loss
    optimizer = nnx.Optimizer(model, optax.sgd(lr), wrt=nnx.Param)
    for i in range({config.TRAIN_STEPS}):
        k, b = (np.asarray(nnx_params(model)[n], np.float64) for n in ('kernel', 'bias'))
        (want_k, bound_k), (want_b, bound_b) = hand_step(k, b, x64, t64, lr)
        optimizer.update(model, nnx.grad(lambda m: jnp.mean((m(x) - target) ** 2))(model))
        assert_close(f"step {{i + 1}}: kernel", nnx_params(model)['kernel'], want_k, bound_k, "hand SGD update")
        assert_close(f"step {{i + 1}}: bias", nnx_params(model)['bias'], want_b, bound_b, "hand SGD update")
    """
    with numerics(case), reporting("ToNNX nnx.Optimizer SGD step", case, check):
        x = case_x(case)
        target = t_spec.build()
        x64, t64 = np.asarray(x, np.float64), target.astype(np.float64)
        # A step size under 1/L for this quadratic, so no step may raise the loss.
        lr = 0.5 * case.features_int / (2 * (float(x64 @ x64) + 1))
        model = nnx.merge(harness_nnx.graphdef(case.width, case.features_int), harness_nnx.init_state(case))
        optimizer = nnx.Optimizer(model, SGD, wrt=nnx.Param)
        apply = harness_nnx.jit_apply(case.width, case.features_int)
        for i in range(config.TRAIN_STEPS):
            k, b = (np.asarray(a, np.float64) for a in kernel_bias(nnx_params(model)))
            (want_k, bound_k), (want_b, bound_b) = hand_step(k, b, x64, t64, lr)
            _compat.set_hyperparam(optimizer, "learning_rate", lr)
            sgd_step(model, optimizer, x, target)
            params = nnx_params(model)
            got_k, got_b = (np.asarray(a, np.float64) for a in kernel_bias(params))
            assert_close(f"step {i + 1}: kernel", got_k, want_k, bound_k, "hand SGD update")
            assert_close(f"step {i + 1}: bias", got_b, want_b, bound_b, "hand SGD update")
            assert_step_descends(i + 1, (k, b), (got_k, got_b), (want_k, want_b), (bound_k, bound_b), x64, t64)
            # The model computes with what the optimizer wrote into it.
            assert_product_close(f"step {i + 1}: y", apply(nnx.state(model), x), x64 @ got_k + got_b, x, params,
                                 exact=True, what="x @ kernel + bias of the stepped params")
