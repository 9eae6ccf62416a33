"""Devices through ToNNX: params and outputs stay on x's device, eager, under ``nnx.jit`` and ``jax.jit`` over the state."""


from conformance.helpers import harness_nnx
from conformance.helpers.devices import device_by_id
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_on_device, reporting
from conformance.properties.to_nnx.contract.test_jit import nnx_jit_call
from reference import nnx_params

CHECK = """
from conformance.properties.to_nnx.contract.test_jit import nnx_jit_call
for name, a in {'y': y, 'nnx.jit y': nnx_jit_call(model, x), **variables}.items():
    assert a.devices() == x.devices(), f'{name} is on {a.devices()}, x on {x.devices()}'
"""


# An eager lazy init and call per example: a sixth of the profile's examples.
@given_data(0.15, rotation="test_output_stays_on_device")
def test_tonnx_output_stays_on_device(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    with numerics(case), reporting("ToNNX output stays on x's device", case, CHECK):
        x = case_x(case)
        where = device_by_id(device)
        assert_on_device("x", x, where)
        model = harness_nnx.eager_model(case, x)
        for name, leaf in nnx_params(model).items():
            assert_on_device(f"params/{name}", leaf, where)
        assert_on_device("y (eager)", model(x), where)
        assert_on_device("y (nnx.jit)", nnx_jit_call(model, x), where)
        assert_on_device("y (jax.jit over nnx.split state)", harness_nnx.observe(case, x)[2], where)
