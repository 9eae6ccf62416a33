"""Dtypes through ToNNX: the params are float32 ``nnx.Param``s; the output follows JAX's promotion of input and params."""

from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, numerics, result_dtype
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_dtype, reporting
from reference import PARAM_NAMES_NNX


@given_data(rotation="test_output_dtype")
def test_tonnx_output_dtype(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    with numerics(case), reporting("ToNNX output dtype", case, "assert y.dtype == jnp.result_type(x.dtype, jnp.float32), y.dtype"):
        x, _, y = harness_nnx.observe(case)
        assert_dtype("y", y.dtype, result_dtype(x.dtype))


@given_data(rotation="test_param_dtypes")
def test_tonnx_param_dtypes(device, data):
    """The model's nnx.Param leaves are exactly the Linen params, float32 whatever x's dtype (lazy init on x itself)."""
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    check = """
    assert sorted(variables) == ['bias', 'kernel'], sorted(variables)
    assert all(v.dtype == jnp.float32 for v in variables.values()), {k: v.dtype for k, v in variables.items()}
    """
    with numerics(case), reporting("ToNNX param dtypes", case, check):
        params = harness_nnx.params_of(harness_nnx.init_state(case, case_x(case)))
        assert sorted(params) == sorted(PARAM_NAMES_NNX), (
            f"the model's nnx.Param leaves are {sorted(params)}, but should be {sorted(PARAM_NAMES_NNX)} "
            "(nn.Dense's params, each an nnx.Param of the model)"
        )
        for path, leaf in params.items():
            assert_dtype(path, leaf.dtype, "float32")
