"""Output length and shape: (features,) for 1-D x, x.shape[:-1] + (features,) batched."""

from conformance.helpers.harness import case_x, given_data, numerics, observe
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_shape, reporting
from reference import nnx_inside_linen


@given_data()
def test_output_length(device, data):
    case = draw_case(data, device, batched=False)
    with numerics(case), reporting("output length", case, "assert y.shape == (int(features),)"):
        y = nnx_inside_linen(case.seed, case_x(case), case.features)
        assert_shape("y", y.shape, (case.features_int,))


@given_data()
def test_output_shape_batched(device, data):
    case = draw_case(data, device, batched=True)
    with numerics(case), reporting("batched output shape", case, "assert y.shape == x.shape[:-1] + (int(features),)"):
        x, _, y = observe(case)
        assert_shape("y", y.shape, x.shape[:-1] + (case.features_int,))
