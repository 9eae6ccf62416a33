"""Independent oracle: y equals x @ kernel + bias in float64 NumPy, from init's own params."""

from conformance.helpers.harness import affine_bound, given_data, kernel_bias, numerics, observe, oracle
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_close, reporting

CHECK = """
k, b = (np.asarray(variables['params']['linear'][n], np.float64) for n in ('kernel', 'bias'))
assert_product_close("y", y, np.asarray(x, np.float64) @ k + b, x, variables, exact=True, what="x @ kernel + bias in float64")
"""


@given_data()
def test_matches_float64_oracle(device, data):
    case = draw_case(data, device, batched=None)
    with numerics(case), reporting("float64 oracle", case, CHECK):
        x, variables, y = observe(case)
        expected, mag = oracle(x, *kernel_bias(variables))
        # gamma_{width+1} in the accumulation dtype, scaled by |x| @ |kernel| + |bias|.
        assert_close("y", y, expected, affine_bound(x, mag), "x @ kernel + bias in float64")
