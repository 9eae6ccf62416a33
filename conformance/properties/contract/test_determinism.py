"""Determinism: the same arguments give bitwise-identical params and outputs, call after call."""

from conformance.helpers.harness import case_x, given_data, numerics, observe
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting
from reference import init_variables, nnx_inside_linen


# Five contract calls per example, three of them eager (about 0.1 s each): a
# quarter of the profile's examples, still several seeds per compile key.
@given_data(0.25)
def test_deterministic(device, data):
    case = draw_case(data, device, batched=None)
    check = """
    assert_equal("y", nnx_inside_linen(seed, x, features), y, "the first call's output")
    assert_trees_equal("variables", init_variables(seed, x, features), variables, "the first init's variables")
    """
    with numerics(case), reporting("determinism", case, check):
        x = case_x(case)
        first = nnx_inside_linen(case.seed, x, case.features)
        assert_equal("y", nnx_inside_linen(case.seed, x, case.features), first, "the first call's output")
        assert_trees_equal(
            "variables", init_variables(case.seed, x, case.features), init_variables(case.seed, x, case.features),
            "the first init's variables",
        )
        _, v1, y1 = observe(case, x)
        _, v2, y2 = observe(case, x)
        assert_trees_equal("jit variables", v2, v1, "the first compiled init's variables")
        assert_equal("jit y", y2, y1, "the first compiled call's output")
