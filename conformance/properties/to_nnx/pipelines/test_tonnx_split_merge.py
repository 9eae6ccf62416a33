"""``nnx.split``/``nnx.merge`` and ``nnx.state``/``nnx.update`` over a Linen layer wrapped by ``bridge.ToNNX``.

Oracle: the model itself. A round trip is the same program on the same
backend, so outputs and state must come back bit for bit; a graphdef merged
with another model's state, or a model updated with it, computes that
model's outputs, bit for bit too. Scaling every param by 2 is exact, so the
updated model's output is exactly twice the old one.
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_differ, assert_trees_equal, reporting
from reference import _compat

FRACTION = config.TONNX_EXAMPLE_FRACTION
TWO = """
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("block", int(features), int(seed), x)
    other = pn.wrapped("block", int(features), pn.other_seed(int(seed)), x)
"""


def _two_models(case):
    x = case_x(case)
    m = pn.wrapped("block", case.features_int, case.seed_int, x)
    other = pn.wrapped("block", case.features_int, pn.other_seed(case.seed_int), x)
    return x, m, other


@given_data(FRACTION, shrink=False)
def test_tonnx_split_merge_round_trip(device, data):
    case = draw_pipeline_case(data, device)
    check = TWO.rstrip() + """
    y = m(x)
    graphdef, state = nnx.split(m)
    assert_equal("merge(split(m))(x)", nnx.merge(graphdef, state)(x), y, "m(x)")
    _, other_state = nnx.split(other)
    assert_equal("merge(graphdef, other's state)(x)", nnx.merge(graphdef, other_state)(x), other(x), "other(x)")
    """
    with numerics(case), reporting("nnx.split/nnx.merge round trip; the graphdef takes another model's state", case, check):
        from flax import nnx

        x, m, other = _two_models(case)
        y = m(x)
        graphdef, state = nnx.split(m)
        merged = nnx.merge(graphdef, state)
        assert_trees_equal("merge(split(m)) variables", pn.linen_variables(merged), pn.linen_variables(m), "m's variables")
        assert_equal("merge(split(m))(x)", merged(x), y, "m(x): the same program on the same variables")
        y_other = other(x)
        _, other_state = nnx.split(other)
        reused = nnx.merge(graphdef, other_state)
        assert_trees_equal("merge(m's graphdef, other's state) variables", pn.linen_variables(reused),
                           pn.linen_variables(other), "other's variables (another seed)")
        assert_equal("merge(m's graphdef, other's state)(x)", reused(x), y_other,
                     "other(x): the graphdef is reusable, the state alone decides the numbers")
        assert_trees_differ("m and other", pn.linen_variables(m), pn.linen_variables(other),
                            "two seeds: else the check above could not tell the states apart")


@given_data(FRACTION, shrink=False)
def test_tonnx_state_update_round_trip(device, data):
    case = draw_pipeline_case(data, device)
    check = TWO.rstrip() + """
    y = m(x)
    nnx.update(other, nnx.state(m))
    assert_equal("other(x) after nnx.update(other, nnx.state(m))", other(x), y, "m(x)")
    state = nnx.state(m, nnx.Param)
    nnx.update(m, jax.tree.map(lambda a: 2 * a, state))
    assert_equal("m(x) after its params were doubled", m(x), 2 * y, "2 * m(x) (doubling is exact)")
    """
    with numerics(case), reporting("nnx.state/nnx.update: another model takes the state; doubled params double y", case, check):
        import jax
        from flax import nnx

        x, m, other = _two_models(case)
        y = m(x)
        nnx.update(other, nnx.state(m))
        assert_trees_equal("other's variables after nnx.update(other, nnx.state(m))", pn.linen_variables(other),
                           pn.linen_variables(m), "m's variables")
        assert_equal("other(x) after nnx.update(other, nnx.state(m))", other(x), y, "m(x): the same variables")
        doubled = jax.tree_util.tree_map(lambda a: 2 * a, nnx.state(m, nnx.Param))
        nnx.update(m, doubled)
        assert_trees_equal("m's params after nnx.update(m, 2 * params)", pn.state_values(m, nnx.Param),
                           _compat.pure_dict(doubled), "the doubled params")
        assert_equal("m(x) after nnx.update(m, 2 * params)", m(x), 2 * y,
                     "2 * m(x): doubling kernel and bias doubles every product and sum exactly")
