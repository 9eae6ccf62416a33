"""Params flow: apply with edited params answers for those params, not init's."""

import numpy as np
from hypothesis import strategies as st

from conformance.helpers.harness import (
    BIAS, KERNEL, affine_bound, apply_jit, case_x, given_data, init_jit, kernel_bias, numerics, oracle, place, replace_leaf,
)
from conformance.helpers.hypothesis_helpers import Case, draw_case, seed_ints
from conformance.helpers.pytest_helpers import assert_close, reporting

EDITS = ("zero_kernel", "scale_kernel", "shift_bias", "other_seed")


@given_data()
def test_apply_uses_given_params(device, data):
    case = draw_case(data, device, batched=None)
    edit = data.draw(st.sampled_from(EDITS), label="edit")
    factor = data.draw(st.sampled_from((-2.0, 0.5, 3.0)), label="factor")
    case.extra.update(edit=edit, factor=factor)
    edits = {
        "zero_kernel": "lin['kernel'] = jnp.zeros_like(lin['kernel'])",
        "scale_kernel": f"lin['kernel'] = lin['kernel'] * {factor}",
        "shift_bias": f"lin['bias'] = lin['bias'] + {factor}",
    }
    check = """
    lin = dict(variables['params']['linear'])
    {edit_line}
    edited = {{**variables, 'params': {{**variables['params'], 'linear': lin}}}}
    k, b = (np.asarray(edited['params']['linear'][n], np.float64) for n in ('kernel', 'bias'))
    y_edited = linen_module(x.shape[-1], int(features)).apply(edited, x)
    assert_product_close("y", y_edited, np.asarray(x, np.float64) @ k + b, x, edited, exact=True, what="x @ kernel + bias of the {edit} params")
    """
    with numerics(case), reporting("params flow into apply", case, "") as note:
        x = case_x(case)
        variables = init_jit(case)
        # Edited on the host and placed back (same dtype and device): eager jnp edits would compile per shape.
        kernel, bias = (np.asarray(a) for a in kernel_bias(variables))
        if edit == "zero_kernel":
            edited = replace_leaf(variables, KERNEL, place(np.zeros_like(kernel), device))
        elif edit == "scale_kernel":
            edited = replace_leaf(variables, KERNEL, place(kernel * np.asarray(factor, kernel.dtype), device))
        elif edit == "shift_bias":
            edited = replace_leaf(variables, BIAS, place(bias + np.asarray(factor, bias.dtype), device))
        else:
            other = data.draw(seed_ints().filter(lambda s: s != case.seed_int), label="other seed")
            case.extra["other_seed"] = other
            edited = init_jit(Case(**{**case.__dict__, "seed": other}))
        edit_line = edits.get(edit) or f"lin = dict(init_variables({case.extra.get('other_seed')}, x, features)['params']['linear'])"
        note.check = check.format(edit_line=edit_line, edit=edit)
        y = apply_jit(case, edited, x)
        expected, mag = oracle(x, *kernel_bias(edited))
        assert_close("y", y, expected, affine_bound(x, mag), f"x @ kernel + bias of the {edit} params")
