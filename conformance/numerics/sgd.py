"""One SGD step on ``x @ K + b`` under a squared loss: the exact step in float64, and the float32 error model's bound.

Shared by both directions' training properties (optax over a Linen params
pytree, ``nnx.Optimizer`` over an NNX model's params).
"""

from __future__ import annotations

import numpy as np

from conformance.numerics import errormodel


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


def assert_step_descends(step: int, before, after, want, bounds, x, t) -> None:
    """The loss at the computed params ``after`` (kernel, bias) is at most the loss at ``before`` plus the step's rounding.

    SGD at a step size under 1/L cannot raise the loss (``loss_may_rise_by``); ``want`` and
    ``bounds`` are ``hand_step``'s exact params and their bounds.
    """
    __tracebackhide__ = True
    loss_before, _, err_before = loss64(*before, x, t)
    loss_after, _, err_after = loss64(*after, x, t)
    slack = loss_may_rise_by(want, bounds, x, t) + err_before + err_after
    assert loss_after <= loss_before + slack, (
        f"step {step}: loss {loss_after!r}, but should be at most {loss_before!r} + {slack:.3e} "
        f"(SGD at a safe step size cannot raise it beyond the step's rounding)"
    )
