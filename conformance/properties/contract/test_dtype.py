"""Dtypes: params are float32; the output follows JAX's promotion of input and params."""

from conformance.helpers.harness import case_x, given_data, init_jit, numerics, observe, result_dtype
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_dtype, reporting, tree_paths


@given_data()
def test_output_dtype(device, data):
    case = draw_case(data, device, batched=None)
    with numerics(case), reporting("output dtype", case, "assert y.dtype == jnp.result_type(x.dtype, jnp.float32), y.dtype"):
        x, _, y = observe(case)
        assert_dtype("y", y.dtype, result_dtype(x.dtype))


@given_data()
def test_param_dtypes(device, data):
    """float32 whatever x's dtype: init runs on the drawn x itself, not the dummy."""
    case = draw_case(data, device, batched=None)
    with numerics(case), reporting("param dtypes", case, "assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables)), jax.tree.map(lambda a: a.dtype, variables)"):
        variables = init_jit(case, case_x(case))
        for path, leaf in tree_paths(variables).items():
            assert_dtype(path, leaf.dtype, "float32")
