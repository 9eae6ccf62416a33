"""vmap equivalence through ToNNX: ``nnx.vmap`` of the model over rows, per-row calls and the batched call agree."""

import numpy as np

from conformance.helpers import harness_nnx
from conformance.helpers.harness import affine_bound, given_data, kernel_bias, numerics, oracle, place
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_close, assert_within_model, reporting
from reference import _compat

nnx = _compat.nnx

# The model broadcast (in_axes=None), the rows mapped; compiled once per shape.
nnx_vmap_rows = nnx.jit(nnx.vmap(lambda model, rows: model(rows), in_axes=(None, 0)))


@given_data(0.5, rotation="test_vmap_matches_rows_and_batched")
def test_tonnx_nnx_vmap_matches_rows_and_batched(device, data):
    case = draw_case(data, device, batched=True, direction=harness_nnx.DIRECTION)
    check = """
    from conformance.properties.to_nnx.contract.test_vmap import nnx_vmap_rows
    rows = x.reshape((-1, x.shape[-1]))
    per_row = jnp.stack([model(r) for r in rows])
    assert_product_close("nnx.vmap(model)(rows)", nnx_vmap_rows(model, rows), per_row, rows, variables, what="per-row calls")
    assert_product_close("model(batch)", model(x).reshape(per_row.shape), per_row, rows, variables, what="per-row calls")
    """
    with numerics(case), reporting("ToNNX vmap equivalence", case, check):
        # Rows are cut on the host: eager slicing and stacking would compile per shape.
        x_np = case.x.build()
        rows_np = x_np.reshape((-1, case.width))
        x, rows = place(x_np, case.device), place(rows_np, case.device)
        state = harness_nnx.init_state(case)
        apply = harness_nnx.jit_apply(case.width, case.features_int)
        per_row = np.stack([np.asarray(apply(state, place(r, case.device))) for r in rows_np])
        model = nnx.merge(harness_nnx.graphdef(case.width, case.features_int), state)
        vmapped = nnx_vmap_rows(model, rows)
        batched = np.asarray(apply(state, x)).reshape(per_row.shape)
        expected, mag = oracle(rows, *kernel_bias(harness_nnx.params_of(state)))
        bound = affine_bound(x, mag)
        assert_close("per-row call", per_row, expected, bound, "float64 oracle")
        # Same params, other batching: each side within its own affine error.
        assert_within_model("nnx.vmap(model)(rows)", vmapped, per_row, 2 * bound, "per-row calls")
        assert_within_model("model(batch)", batched, per_row, 2 * bound, "per-row calls")
