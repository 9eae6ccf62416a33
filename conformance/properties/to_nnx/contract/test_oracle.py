"""Independent oracle through ToNNX: the eager model's output equals x @ kernel + bias in float64, from its own params."""

from conformance.helpers import harness_nnx
from conformance.helpers.harness import affine_bound, case_x, given_data, kernel_bias, numerics, oracle
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_close, reporting
from reference import nnx_params

CHECK = """
k, b = (np.asarray(variables[n], np.float64) for n in ('kernel', 'bias'))
assert_product_close("y", y, np.asarray(x, np.float64) @ k + b, x, variables, exact=True, what="x @ kernel + bias in float64")
"""


# The contract as a user runs it, eagerly (the compiled paths have their own properties): a quarter of the examples.
@given_data(0.25, rotation="test_matches_float64_oracle")
def test_tonnx_matches_float64_oracle(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    with numerics(case), reporting("ToNNX float64 oracle", case, CHECK):
        x = case_x(case)
        model = harness_nnx.eager_model(case, x)
        expected, mag = oracle(x, *kernel_bias(nnx_params(model)))
        # gamma_{width+1} in the accumulation dtype, scaled by |x| @ |kernel| + |bias|.
        assert_close("y", model(x), expected, affine_bound(x, mag), "x @ kernel + bias in float64")
