"""A plain attribute a team hangs on a ``bridge.ToNNX`` model (a label, a setting) never reaches its Linen layer.

Oracle: the same model's call before the attribute was set. A native NNX
module keeps a non-Variable attribute to itself; the wrapper hands its
attributes to Linen as variables, and a value that is no Variable has no
collection. So the next call either refuses it, a ``ValueError`` naming the
attribute or its value (flax 0.10.4 on), or runs as before: the same output,
bit for bit (the same params, the same program), and the layer applied with
the same collections. Filing the value under a collection of its own (an
``nnx`` collection, as before flax commit 1c0fca00) hands the layer a variable
it never declared.
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION
NAME = "team_note"  # the attribute's name: no Linen collection or variable is called so


@given_data(FRACTION, shrink=False)
def test_tonnx_plain_attribute_is_refused_or_kept_from_the_layer(device, data):
    case = draw_pipeline_case(data, device)
    value = data.draw(pn.plain_attribute_values(), label="attribute value")
    check = f"""
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("block", int(features), int(seed), x)
    y, seen = m(x), m(method="collections")
    m.{NAME} = {value!r}
    try:
        y_after = m(x)
    except ValueError as exc:
        assert "{NAME}" in str(exc) or str({value!r}) in str(exc), exc
    else:
        assert (y_after == y).all() and m(method="collections") == seen, m(method="collections")
    """
    with numerics(case), reporting("a plain attribute on the wrapper is refused by name or never reaches the layer",
                                   case, check):
        x = case_x(case)
        m = pn.wrapped("block", case.features_int, case.seed_int, x)
        y, seen = m(x), m(method="collections")
        setattr(m, NAME, value)
        try:
            y_after = m(x)
        except ValueError as exc:
            assert NAME in str(exc) or str(value) in str(exc), (
                f"the call after model.{NAME} = {value!r} raised ValueError({exc}), which names neither the attribute "
                "nor its value")
            return
        assert_equal(f"y after model.{NAME} = {value!r}", y_after, y, "y before it (the same params, the same program)")
        after = m(method="collections")
        assert after == seen, (
            f"after model.{NAME} = {value!r} the Linen layer is applied with the collections {list(after)}, but should "
            f"be with {list(seen)} as before: the attribute reached the layer as a variable it never declared")
