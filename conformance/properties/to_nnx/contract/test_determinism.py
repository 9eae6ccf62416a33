"""Determinism through ToNNX: the same arguments give bitwise-identical params and outputs, call after call."""

from conformance.helpers import harness_nnx
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting
from reference import linen_inside_nnx, nnx_params


# Three eager lazy inits per example: a quarter of the profile's examples.
@given_data(0.25)
def test_tonnx_deterministic(device, data):
    case = draw_case(data, device, batched=None, direction=harness_nnx.DIRECTION)
    check = """
    assert_equal("y", linen_inside_nnx(seed, x, features), y, "the first call's output")
    assert_trees_equal("params", nnx_params(nnx_model(seed, x, features)), variables, "the first lazy init's params")
    """
    with numerics(case), reporting("ToNNX determinism", case, check):
        x = case_x(case)
        first = linen_inside_nnx(case.seed, x, case.features)
        assert_equal("y", linen_inside_nnx(case.seed, x, case.features), first, "the first call's output")
        assert_trees_equal("params", nnx_params(harness_nnx.eager_model(case, x)),
                           nnx_params(harness_nnx.eager_model(case, x)), "the first lazy init's params")
        _, p1, y1 = harness_nnx.observe(case, x)
        _, p2, y2 = harness_nnx.observe(case, x)
        assert_trees_equal("jit params", p2, p1, "the first compiled lazy init's params")
        assert_equal("jit y", y2, y1, "the first compiled call's output")
