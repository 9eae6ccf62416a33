"""The pipelines' helpers: the stacked-layer bound is sound and tight, meshes divide, bad arguments are named."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.core import jax_setup

jax_setup.before_jax()

from conformance.helpers import checkpoints, mesh, pipelines as pl  # noqa: E402


def _float32_chain(x, kernels, biases, order):
    """The stacked layers in float32, each product summed in ``order`` ("forward", "reverse" or "halves")."""
    h = np.asarray(x, np.float32)
    for k, b in zip(kernels, biases):
        k32 = np.asarray(k, np.float32)
        if order == "forward":
            acc = np.zeros((h.shape[0], k32.shape[1]), np.float32)
            for i in range(k32.shape[0]):
                acc = acc + h[:, i:i + 1] * k32[i]
        elif order == "reverse":
            acc = np.zeros((h.shape[0], k32.shape[1]), np.float32)
            for i in reversed(range(k32.shape[0])):
                acc = acc + h[:, i:i + 1] * k32[i]
        else:
            n = k32.shape[0] // 2
            acc = (h[:, n:] @ k32[n:]).astype(np.float32) + (h[:, :n] @ k32[:n]).astype(np.float32)
        h = (acc + np.asarray(b, np.float32)).astype(np.float32)
    return h


@pytest.mark.parametrize("order", ["forward", "reverse", "halves"])
@pytest.mark.parametrize("width", [3, 64])
def test_chain_bound_holds_for_any_summation_order_and_is_tight(order, width):
    rng = np.random.default_rng(width)
    layers = 3
    x = rng.standard_normal((4, width)).astype(np.float32)
    kernels = [(rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32) for _ in range(layers)]
    biases = [rng.standard_normal(width).astype(np.float32) * 0.1 for _ in range(layers)]
    exact, bound = pl.chain_oracle(x, kernels, biases, "float32")
    err = np.abs(_float32_chain(x, kernels, biases, order) - exact)
    assert (err <= bound).all(), f"error {err.max():.3e} beyond the bound at {np.unravel_index(np.argmax(err - bound), err.shape)}"
    assert bound.max() < 1e-3 * np.abs(exact).max() + 1e-6, f"bound {bound.max():.3e} is loose against |y| {np.abs(exact).max():.3e}"


def test_chain_bound_catches_a_wrong_layer():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    kernels = [rng.standard_normal((8, 8)).astype(np.float32) for _ in range(2)]
    biases = [np.zeros(8, np.float32)] * 2
    exact, bound = pl.chain_oracle(x, kernels, biases, "float32")
    skipped = _float32_chain(x, kernels[:1], biases[:1], "forward") @ np.eye(8, dtype=np.float32)
    assert (np.abs(skipped - exact) > bound).any()


def test_mesh_model_axis_divides_the_feature_count():
    devices = mesh.platform_devices("cpu")
    for features in (1, 2, 3, 4, 5, 6):
        grid = mesh.mesh_for("cpu", features)
        assert grid.shape["data"] * grid.shape["model"] == len(devices)
        assert features % grid.shape["model"] == 0


def test_expected_specs():
    assert mesh.expected_spec("params/linear/kernel") == pl.PARTITION
    assert mesh.expected_spec("params/layers/child/linear/kernel", stacked=True) == (pl.STACK_AXIS, *pl.PARTITION)
    assert mesh.expected_spec("params/linear/bias", stacked=True) == ()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="library must be one of"):
        checkpoints.restore_with("pickle", {}, {}, "/nonexistent")
    with pytest.raises(ValueError, match="form must be one of"):
        pl.parent("sideways", 2, 3)
    with pytest.raises(ValueError, match="transform must be one of"):
        pl.wrapped("checkpoint", 2, 3)
