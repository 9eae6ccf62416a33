"""Values a Linen module sows (``self.sow('intermediates', ...)``) reachable as NNX state after the call.

Oracle: Linen's own rules, run natively. ``init`` keeps no intermediates and
a call without ``mutable`` sows nothing; under ``mutable=['intermediates']``
the model's state holds, as ``nnx.Intermediate``, what Linen's own
``apply(..., mutable=['intermediates'])`` returns, bit for bit, and a second
call appends to it as Linen does when the sown values are fed back.
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION


def _assert_nothing_sown(m, when):
    __tracebackhide__ = True
    held = pn.collection(m, "intermediates")
    assert not held, (f"the model holds intermediates {sorted(held)} {when}, but should hold none: Linen's init and "
                      "its apply without mutable=['intermediates'] keep nothing sown")


@given_data(FRACTION, shrink=False)
def test_tonnx_sown_intermediates_in_state(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("sowing", int(features), int(seed), x)
    linen = pn.linen_module("sowing", int(features))
    v = pn.linen_variables(m)
    y = m(x, mutable=["intermediates"])
    y_native, upd = linen.apply(v, x, mutable=["intermediates"])
    assert_trees_equal("intermediates", pn.collection(m, "intermediates"), upd["intermediates"], "Linen's own")
    """
    with numerics(case), reporting("sown intermediates are NNX state after a mutable call, as Linen returns them", case, check):
        x = case_x(case)
        m = pn.wrapped("sowing", case.features_int, case.seed_int, x)
        linen = pn.linen_module("sowing", case.features_int)
        v = pn.linen_variables(m)
        _assert_nothing_sown(m, "after lazy_init")
        assert_equal("m(x)", m(x), linen.apply(v, x), "Linen's own apply")
        _assert_nothing_sown(m, "after a call without mutable=")
        y = m(x, mutable=["intermediates"])
        y_native, updates = linen.apply(v, x, mutable=["intermediates"])
        assert_equal("m(x, mutable=['intermediates'])", y, y_native, "Linen's own apply's output")
        assert_trees_equal("intermediates after one call", pn.collection(m, "intermediates"), updates["intermediates"],
                           "Linen's own apply(variables, x, mutable=['intermediates'])")
        x2 = 2 * x
        m(x2, mutable=["intermediates"])
        _, updates = linen.apply({**v, **updates}, x2, mutable=["intermediates"])
        assert_trees_equal("intermediates after a second call", pn.collection(m, "intermediates"),
                           updates["intermediates"], "Linen's own apply fed the first call's values: it appends")
