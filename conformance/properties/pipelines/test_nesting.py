"""The bridged module inside a Linen parent: a ``setup`` attribute, ``@nn.compact`` with ``name=``, auto-named, siblings.

Oracle: the same bridged module at the top level, applied to the subtree the
parent holds for it; numbers within the error model (two computations of one
product: ``assert_product_close``).
"""

import inspect

import pytest

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers.harness import case_x, given_data, numerics, outputs_same_params, seed_array
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_product_close, assert_trees_differ, assert_within_model, reporting

FRACTION = config.PIPELINE_EXAMPLE_FRACTION
FORMS = pl.NESTING_FORMS + ("siblings",)
PREAMBLE = """
    from conformance.helpers import pipelines as pl
    parent = pl.parent({form!r}, x.shape[-1], int(features))
    pv = parent.init(prng_key(seed), x)
"""


@pytest.mark.parametrize("form", FORMS)
@given_data(FRACTION, shrink=False)
def test_nested_params_live_under_the_parents_names(device, form, data):
    case = draw_pipeline_case(data, device)
    check = PREAMBLE.format(form=form).rstrip() + """
    names = pl.expected_child_names({form!r})
    assert sorted(pv['params']) == sorted(names), f"params hold {{sorted(pv['params'])}}, but should hold {{sorted(names)}}"
    top = pl.array_layout(variables)
    for n in names:
        sub = pl.array_layout(pl.child(pv, n))
        assert sub == top, f"params/{{n}} holds {{sub}}, but should hold the top-level tree {{top}}"
    """.format(form=form)
    with numerics(case), reporting(f"nested ({form}): params under the parent's names", case, check):
        x = case_x(case)
        pv = pl.jit_init(pl.parent(form, case.width, case.features_int))(seed_array(case.seed_int), x)
        names = pl.expected_child_names(form)
        got = sorted(pv["params"])
        assert got == sorted(names), f"params hold {got}, but should hold {sorted(names)} (the parent's names for the child)"
        top = pl.array_layout(pl.jit_init(pl.top_level(case.width, case.features_int))(seed_array(case.seed_int), x))
        for name in names:
            sub = pl.array_layout(pl.child(pv, name))
            assert sub == top, f"params/{name} holds {sub}, but should hold the top-level tree {top}"
        if form == "siblings":
            assert_trees_differ("params/first vs params/second", pv["params"]["first"], pv["params"]["second"],
                                "siblings draw their own params from their own scope's key")


@pytest.mark.parametrize("form", FORMS)
@given_data(FRACTION, shrink=False)
def test_nested_apply_matches_top_level(device, form, data):
    case = draw_pipeline_case(data, device)
    check = PREAMBLE.format(form=form).rstrip() + """
    y_nested = jax.jit(parent.apply)(pv, x)
    for i, n in enumerate(pl.expected_child_names({form!r})):
        sub = pl.child(pv, n)
        y_top = jax.jit(pl.top_level(x.shape[-1], int(features)).apply)(sub, x)
        got = y_nested[i] if {form!r} == 'siblings' else y_nested
        assert_product_close(f"nested y of params/{{n}}", got, y_top, x, sub)
    """.format(form=form)
    with numerics(case), reporting(f"nested ({form}) apply == top-level apply", case, check):
        x = case_x(case)
        m = pl.parent(form, case.width, case.features_int)
        pv = pl.jit_init(m)(seed_array(case.seed_int), x)
        y = pl.jit_apply(m)(pv, x)
        top = pl.top_level(case.width, case.features_int)
        for i, name in enumerate(pl.expected_child_names(form)):
            sub = pl.child(pv, name)
            got = y[i] if form == "siblings" else y
            assert_product_close(f"nested y of params/{name}", got, pl.jit_apply(top)(sub, x), x, sub,
                                 what="the top-level module applied to the same subtree")


@pytest.mark.parametrize("form", pl.NESTING_FORMS)
@given_data(FRACTION, shrink=False)
def test_init_with_output_matches_apply(device, form, data):
    case = draw_pipeline_case(data, device)
    check = PREAMBLE.format(form=form).rstrip() + """
    y0, v0 = parent.init_with_output(prng_key(seed), x)
    n = pl.expected_child_names({form!r})[0]
    assert_product_close("init_with_output y", y0, jax.jit(parent.apply)(v0, x), x, pl.child(v0, n))
    """.format(form=form)
    with numerics(case), reporting(f"nested ({form}) init_with_output == apply", case, check):
        x = case_x(case)
        m = pl.parent(form, case.width, case.features_int)
        y0, v0 = pl.jit_init_with_output(m)(seed_array(case.seed_int), x)
        sub = pl.child(v0, pl.expected_child_names(form)[0])
        assert_product_close("init_with_output y", y0, pl.jit_apply(m)(v0, x), x, sub,
                             what="apply on the variables init_with_output returned")


@given_data(FRACTION, shrink=False)
def test_method_through_parent(device, data):
    case = draw_pipeline_case(data, device)
    check = PREAMBLE.format(form="setup").rstrip() + """
    y = jax.jit(parent.apply)(pv, x)
    y_neg = jax.jit(lambda v, x: parent.apply(v, x, method='negated'))(pv, x)
    assert_product_close("apply(method='negated')", y_neg, -y, x, pl.child(pv, 'child'))
    """
    with numerics(case), reporting("apply(method=...) through a parent reaches the NNX method", case, check):
        x = case_x(case)
        m = pl.parent("setup", case.width, case.features_int)
        pv = pl.jit_init(m)(seed_array(case.seed_int), x)
        y = pl.jit_apply(m)(pv, x)
        y_neg = pl.jit_apply(m, "negated")(pv, x)
        assert_product_close("apply(method='negated')", y_neg, -y, x, pl.child(pv, pl.CHILD),
                             what="minus apply's output (the NNX method negated)")


def _has_nnx_method() -> bool:
    from flax.nnx import bridge

    return "nnx_method" in inspect.signature(bridge.ToLinen.__call__).parameters


@given_data(FRACTION, shrink=False)
def test_nnx_method_at_top_level(device, data):
    if not _has_nnx_method():
        pytest.skip("this flax release's ToLinen.__call__ has no nnx_method= (added in a later release)")
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines as pl
    top = pl.top_level(x.shape[-1], int(features))
    v = top.init(prng_key(seed), x)
    assert_product_close("apply(nnx_method='negated')", top.apply(v, x, nnx_method='negated'), -top.apply(v, x), x, v)
    """
    with numerics(case), reporting("apply(nnx_method=...) reaches the NNX method", case, check):
        x = case_x(case)
        top = pl.top_level(case.width, case.features_int)
        v = pl.jit_init(top)(seed_array(case.seed_int), x)
        y = pl.jit_apply(top)(v, x)
        y_neg = pl.jit_apply_nnx_method(top, "negated")(v, x)
        assert_within_model("apply(nnx_method='negated')", y_neg, -y, outputs_same_params(x, v),
                            "minus apply's output (the NNX method negated)")
