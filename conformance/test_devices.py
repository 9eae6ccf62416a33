"""Devices: the output stays on x's device, and devices agree within tolerance."""

import numpy as np
import pytest

from conformance.harness import (
    all_devices, case_x, device_by_id, device_id, given_data, kernel_bias, numerics, observe, oracle, place, result_dtype,
)
from conformance.hypothesis_helpers import Case, draw_case
from conformance.pytest_helpers import assert_close, assert_on_device, dot_bound, reporting, tree_paths, ulp_bound
from reference import nnx_inside_linen


@given_data(0.5)
def test_output_stays_on_device(device, data):
    case = draw_case(data, device, batched=None)
    with numerics(case), reporting("output stays on x's device", case, "assert y.devices() == x.devices(), f'y is on {y.devices()}, x on {x.devices()}'"):
        x = case_x(case)
        where = device_by_id(device)
        assert_on_device("x", x, where)
        assert_on_device("y (eager)", nnx_inside_linen(case.seed, x, case.features), where)
        assert_on_device("y (jit)", observe(case, x)[2], where)


def _next_device(device: str) -> str:
    ids = [device_id(d) for d in all_devices()]
    return ids[(ids.index(device) + 1) % len(ids)]


@given_data(0.5)
def test_devices_agree(device, data):
    other = _next_device(device)
    if other == device:
        pytest.skip("one device only: nothing to compare against")
    case = draw_case(data, device, batched=None)
    case.extra["other_device"] = other
    plat, idx = other.split(":")
    check = f"""
    x2 = jax.device_put(x, jax.devices("{plat}")[{idx}])  # {other}
    y2 = jax.jit(nnx_inside_linen, static_argnums=(0, 2))(seed, x2, features)
    assert_product_close("jit y on {other}", y2, y, x, variables, what="eager y on {device}")
    """
    with numerics(case), reporting(f"{device} agrees with {other}", case, check):
        x = case_x(case)
        _, variables, y = observe(case, x)
        x2 = place(np.asarray(x), other)
        _, variables2, y2 = observe(Case(**{**case.__dict__, "device": other}), x2)
        a, b = tree_paths(variables2), tree_paths(variables)
        assert a.keys() == b.keys(), f"variables on {other} have leaves {sorted(a)}, but on {device} {sorted(b)}"
        for path in b:
            ref = np.asarray(b[path], np.float64)
            assert_close(f"variables/{path} on {other}", a[path], ref, ulp_bound(b[path].dtype, np.abs(ref)), f"the same leaf on {device}")
        _, mag = oracle(x, *kernel_bias(variables))
        assert_close(f"y on {other}", y2, y, dot_bound(result_dtype(x.dtype), case.width, mag), f"y on {device}")
        # Eager contract on both devices, too.
        ye = nnx_inside_linen(case.seed, x2, case.features)
        assert_close(f"eager y on {other}", ye, y, dot_bound(result_dtype(x.dtype), case.width, mag), f"y on {device}")
