"""Output length and shape through ToNNX: (features,) for 1-D x, x.shape[:-1] + (features,) batched."""

from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_shape, reporting
from reference import linen_inside_nnx


# An eager lazy init and call per example: a sixth of the profile's examples.
@given_data(0.15, rotation="test_output_length")
def test_tonnx_output_length(device, data):
    case = draw_case(data, device, batched=False, direction=harness_nnx.DIRECTION)
    with numerics(case), reporting("ToNNX output length", case, "assert y.shape == (int(features),), y.shape"):
        y = linen_inside_nnx(case.seed, case_x(case), case.features)
        assert_shape("y", y.shape, (case.features_int,))


@given_data(rotation="test_output_shape_batched")
def test_tonnx_output_shape_batched(device, data):
    case = draw_case(data, device, batched=True, direction=harness_nnx.DIRECTION)
    check = "assert model(x).shape == x.shape[:-1] + (int(features),), model(x).shape"
    with numerics(case), reporting("ToNNX batched output shape", case, check):
        x, _, y = harness_nnx.observe(case)
        assert_shape("y", y.shape, x.shape[:-1] + (case.features_int,))
