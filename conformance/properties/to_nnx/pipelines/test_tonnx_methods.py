"""Linen methods other than ``__call__`` called through the wrapper.

Oracle: Linen's own ``apply(variables, x, method=...)``, run natively. The
installed flax offers three forms: the wrapper forwards the Linen class's
methods as attributes (``model.negated(x)``), and ``__call__`` takes
``method=`` as a name or as the function. Each computes the method Linen
computes, bit for bit; ``negated`` is ``-__call__``, exact, so a call routed
to ``__call__`` differs in sign.
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION


@given_data(FRACTION, shrink=False)
def test_tonnx_methods_through_the_wrapper(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("block", int(features), int(seed), x)
    native = pn.linen_module("block", int(features)).apply(pn.linen_variables(m), x, method="negated")
    assert_equal("m.negated(x)", m.negated(x), native, "Linen's own apply(..., method='negated')")
    assert_equal("m(x, method='negated')", m(x, method="negated"), native, "Linen's own apply(..., method='negated')")
    """
    with numerics(case), reporting("a Linen method through the wrapper computes that method", case, check):
        x = case_x(case)
        m = pn.wrapped("block", case.features_int, case.seed_int, x)
        linen = pn.linen_module("block", case.features_int)
        v = pn.linen_variables(m)
        native = linen.apply(v, x, method="negated")
        assert_equal("-m(x)", -m(x), native, "Linen's own apply(..., method='negated'): the layer's negated output")
        forms = {"m.negated(x)": lambda: m.negated(x), "m(x, method='negated')": lambda: m(x, method="negated"),
                 "m(x, method=Block.negated)": lambda: m(x, method=type(linen).negated)}
        for name, call in forms.items():
            assert_equal(name, call(), native, "Linen's own apply(variables, x, method='negated')")
