"""Determinism through ToNNX: the same arguments give bitwise-identical params and outputs, call after call."""

from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting
from reference import nnx_params


# Two eager lazy inits and calls per example (each eager op compiles per shape and device): a tenth of the examples.
@given_data(0.1, rotation="test_deterministic")
def test_tonnx_deterministic(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    check = """
    assert_equal("y", linen_inside_nnx(seed, x, features), y, "the first call's output")
    assert_trees_equal("params", nnx_params(nnx_model(seed, x, features)), variables, "the first lazy init's params")
    """
    with numerics(case), reporting("ToNNX determinism", case, check):
        x = case_x(case)
        first, second = harness_nnx.eager_model(case, x), harness_nnx.eager_model(case, x)
        assert_trees_equal("params", nnx_params(second), nnx_params(first), "the first lazy init's params")
        assert_equal("y", second(x), first(x), "the first model's output")
        _, p1, y1 = harness_nnx.observe(case, x)
        _, p2, y2 = harness_nnx.observe(case, x)
        assert_trees_equal("jit params", p2, p1, "the first compiled lazy init's params")
        assert_equal("jit y", y2, y1, "the first compiled call's output")
