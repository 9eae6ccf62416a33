"""Calling a ``bridge.ToNNX`` model before ``lazy_init``: a clear error, and nothing initialised behind the user's back.

Oracle: Linen's own ``apply`` on no variables, which raises naming the
variable it cannot find. A ToNNX model never initialised holds no variables:
its call must raise too, the message naming the missing variable or
``lazy_init``, and leave the model without variables (a silent
initialisation would hand out params the pipeline never chose to create).
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_trees_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION
NAMES = ("kernel", "lazy_init")  # what a clear message names: the variable Linen looks for, or the missing step


@given_data(FRACTION, shrink=False)
def test_tonnx_call_before_lazy_init_is_a_clear_error(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from flax import nnx
    from flax.nnx import bridge
    from conformance.helpers import pipelines_nnx as pn
    m = bridge.ToNNX(pn.linen_module("block", int(features)), rngs=nnx.Rngs(int(seed)))
    try:
        m(x)
    except Exception as exc:
        assert any(n in str(exc) for n in ("kernel", "lazy_init")), f"the error names neither kernel nor lazy_init: {exc}"
    else:
        raise AssertionError(f"a ToNNX never lazy_init'ed computed an output; it now holds {sorted(pn.linen_variables(m))}")
    """
    with numerics(case), reporting("calling a ToNNX before lazy_init raises, naming what is missing", case, check):
        from flax import nnx
        from flax.nnx import bridge

        x = case_x(case)
        m = bridge.ToNNX(pn.linen_module("block", case.features_int), rngs=nnx.Rngs(case.seed_int))
        try:
            y = m(x)
        except Exception as exc:  # noqa: BLE001 - Linen raises ScopeCollectionNotFound; the message is what counts
            message = f"{type(exc).__name__}: {exc}"
            assert any(n in message for n in NAMES), (
                f"calling a ToNNX before lazy_init raised {message!r}, which names none of {NAMES}: "
                "it should say which variable is missing or that lazy_init has not run")
            held = pn.linen_variables(m)
            assert not held, f"the failed call left the model holding {sorted(held)}, but it should hold no variables"
            return
        raise AssertionError(f"calling a ToNNX that was never lazy_init'ed returned an output of shape {y.shape} and "
                             f"left the variables {sorted(pn.linen_variables(m))}, but should raise as Linen's apply on "
                             "no variables does (it initialised silently)")


@given_data(FRACTION, shrink=False)
def test_tonnx_lazy_init_through_a_method(device, data):
    """``bridge.lazy_init(fn, x)`` runs a method of the model; anything else is a ValueError naming ``fn``.

    Oracle: ``lazy_init`` of the model itself: through its bound ``__call__``
    it must create the same params from the same seed (the same eager
    program), bit for bit. (Other Linen methods: test_tonnx_methods.py.)
    """
    case = draw_pipeline_case(data, device)
    check = """
    from flax import nnx
    from flax.nnx import bridge
    from conformance.helpers import pipelines_nnx as pn
    m = bridge.ToNNX(pn.linen_module("block", int(features)), rngs=nnx.Rngs(int(seed)))
    bridge.lazy_init(m.__call__, x)
    assert_trees_equal("params", pn.linen_variables(m), pn.linen_variables(pn.wrapped("block", int(features), int(seed), x)), "lazy_init(m)'s")
    try:
        bridge.lazy_init(lambda x_: x_, x)
    except ValueError as exc:
        assert "fn" in str(exc), exc
    """
    with numerics(case), reporting("lazy_init through a method of the model; a plain function is a ValueError", case, check):
        from flax import nnx
        from flax.nnx import bridge

        x = case_x(case)
        m = bridge.ToNNX(pn.linen_module("block", case.features_int), rngs=nnx.Rngs(case.seed_int))
        bridge.lazy_init(m.__call__, x)
        assert_trees_equal("variables of lazy_init(m.__call__, x)", pn.linen_variables(m),
                           pn.linen_variables(pn.wrapped("block", case.features_int, case.seed_int, x)),
                           "those of lazy_init(m, x) from the same seed")
        try:
            bridge.lazy_init(lambda x_: x_, x)
        except ValueError as exc:
            assert "fn" in str(exc), f"lazy_init(a plain function) raised ValueError({exc}), which does not name fn"
            return
        except Exception as exc:  # noqa: BLE001 - any other type is the defect being reported
            raise AssertionError(f"lazy_init(a plain function, x) raised {type(exc).__name__}: {exc}, but should raise "
                                 "ValueError naming fn (it needs a method of an NNX module)") from None
        raise AssertionError("lazy_init(a plain function, x) returned, but should raise ValueError naming fn")
