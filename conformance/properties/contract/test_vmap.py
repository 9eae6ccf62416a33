"""vmap equivalence: vmap of apply over rows, per-row calls and apply on the batch agree."""

import functools

import jax
import numpy as np

from conformance.helpers.harness import affine_bound, given_data, init_jit, jit_apply, kernel_bias, module, numerics, oracle, place
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_close, assert_within_model, reporting


@functools.lru_cache(maxsize=None)
def vmapped_apply(width: int, features: int):
    return jax.jit(jax.vmap(module(width, features).apply, in_axes=(None, 0)))


@given_data(0.5)
def test_vmap_matches_rows_and_batched(device, data):
    case = draw_case(data, device, batched=True)
    check = """
    m = linen_module(x.shape[-1], int(features))
    rows = x.reshape((-1, x.shape[-1]))
    per_row = jnp.stack([m.apply(variables, r) for r in rows])
    assert_product_close("vmap(apply)(rows)", jax.vmap(m.apply, in_axes=(None, 0))(variables, rows), per_row, rows, variables, what="per-row apply")
    assert_product_close("apply(batch)", m.apply(variables, x).reshape(per_row.shape), per_row, rows, variables, what="per-row apply")
    """
    with numerics(case), reporting("vmap equivalence", case, check):
        # Rows are cut on the host: eager slicing and stacking would compile per shape.
        x_np = case.x.build()
        rows_np = x_np.reshape((-1, case.width))
        x, rows = place(x_np, case.device), place(rows_np, case.device)
        variables = init_jit(case)
        apply = jit_apply(case.width, case.features_int)
        per_row = np.stack([np.asarray(apply(variables, place(r, case.device))) for r in rows_np])
        vmapped = vmapped_apply(case.width, case.features_int)(variables, rows)
        batched = np.asarray(apply(variables, x)).reshape(per_row.shape)
        expected, mag = oracle(rows, *kernel_bias(variables))
        bound = affine_bound(x, mag)
        assert_close("per-row apply", per_row, expected, bound, "float64 oracle")
        # Same params, other batching: each side within its own affine error.
        assert_within_model("vmap(apply)(rows)", vmapped, per_row, 2 * bound, "per-row apply")
        assert_within_model("apply(batch)", batched, per_row, 2 * bound, "per-row apply")
