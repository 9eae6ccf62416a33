"""Devices: the output stays on x's device, and devices agree within the error model.

test_devices_agree varies the device alone: compiled against compiled, eager
against eager. Another device may compile or round differently, so params
agree within the sampler model and outputs within the affine model.
"""

import pytest

from conformance.helpers.devices import all_devices, device_by_id, device_id
from conformance.helpers.harness import case_x, given_data, numerics, observe, outputs_difference, place
from conformance.helpers.hypothesis_helpers import Case, draw_case
from conformance.helpers.pytest_helpers import assert_inits_within_model, assert_on_device, assert_within_model, reporting
from reference import init_variables, nnx_inside_linen


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


# Both devices, eager and compiled, per example: a quarter of the profile's
# examples, still several seeds per compile key of either device.
@given_data(0.25)
def test_devices_agree(device, data):
    other = _next_device(device)
    if other == device:
        pytest.skip("one device only: nothing to compare against")
    case = draw_case(data, device, batched=None)
    case.extra["other_device"] = other
    there = Case(**{**case.__dict__, "device": other})
    plat, idx = other.split(":")
    check = f"""
    from conformance.helpers.harness import outputs_difference
    from conformance.helpers.pytest_helpers import assert_within_model
    x2 = jax.device_put(np.asarray(x), jax.devices("{plat}")[{idx}])  # {other}
    with jax.default_device(x2.devices().pop()):
        y2 = jax.jit(nnx_inside_linen, static_argnums=(0, 2))(seed, x2, features)
    assert_within_model("jit y on {other}", y2, y, outputs_difference(x, variables), "eager y on {device}")
    """
    with reporting(f"{device} agrees with {other}", case, check):
        with numerics(there):
            x2 = place(case.x.build(), other)
            _, variables2, y2 = observe(there, x2)
            eager_vars2 = init_variables(case.seed, x2, case.features)
            eager_y2 = nnx_inside_linen(case.seed, x2, case.features)
        with numerics(case):
            x = case_x(case)
            _, variables, y = observe(case, x)
            eager_vars = init_variables(case.seed, x, case.features)
            eager_y = nnx_inside_linen(case.seed, x, case.features)
            assert_inits_within_model(f"jit variables on {other}", variables2, variables, f"the same on {device}")
            assert_within_model(f"jit y on {other}", y2, y, outputs_difference(x, variables), f"jit y on {device}")
            assert_inits_within_model(f"eager variables on {other}", eager_vars2, eager_vars, f"the same on {device}")
            assert_within_model(f"eager y on {other}", eager_y2, eager_y, outputs_difference(x, eager_vars),
                                f"eager y on {device}")
