"""What a team hangs on a ``bridge.ToNNX`` model: a plain attribute never reaches its Linen layer; Variables are state.

Oracle: the same model's call before the attribute was set. A native NNX
module keeps a non-Variable attribute to itself; the wrapper hands its
attributes to Linen as variables, and a value that is no Variable has no
collection. So the next call either refuses it, a ``ValueError`` naming the
attribute or its value (flax 0.10.4 on), or runs as before: the same output,
bit for bit (the same params, the same program), and the layer applied with
the same collections. Filing the value under a collection of its own (an
``nnx`` collection, as before flax commit 1c0fca00) hands the layer a variable
it never declared.

Variables a team sets on the model (adapter weights, a dict of ``nnx.Param``
shaped as the wrapper holds a Linen submodule's) are NNX state, as the
wrapper's own are: ``nnx.state`` holds them, ``nnx.split``/``nnx.merge`` carries
them, and the next call runs as before (the layer ignores params it never
reads). A wrapper that took such a dict for a static attribute refuses the
assignment (``Found data ... assigned to static attribute``: flax commit
431291ed marks what it is given as data).
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting
from reference import _compat

FRACTION = config.TONNX_EXAMPLE_FRACTION
NAME = "team_note"  # the attribute's name: no Linen collection or variable is called so
ADAPTER = "team_adapter"  # likewise, for the Variables


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


@given_data(FRACTION, shrink=False)
def test_tonnx_variables_set_on_the_model_are_its_state(device, data):
    case = draw_pipeline_case(data, device)
    check = f"""
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    from reference import _compat
    m = pn.wrapped("block", int(features), int(seed), x)
    y = m(x)
    m.{ADAPTER} = {{"a": nnx.Param(jnp.ones((int(features),), x.dtype)), "b": nnx.Param(jnp.zeros((2,), x.dtype))}}
    paths = ["/".join(map(str, p)) for p, _ in _compat.flat_state(nnx.state(m))]
    assert "{ADAPTER}/a" in paths and "{ADAPTER}/b" in paths, paths
    assert (m(x) == y).all()
    graphdef, state = nnx.split(m)
    merged = nnx.merge(graphdef, state)
    assert (merged(x) == y).all() and (_compat.get_value(merged.{ADAPTER}["a"]) == 1).all()
    """
    with numerics(case), reporting("Variables set on the wrapper are its state, and the layer runs as before", case,
                                   check):
        import jax.numpy as jnp
        from flax import nnx

        x = case_x(case)
        m = pn.wrapped("block", case.features_int, case.seed_int, x)
        y = m(x)
        given = {"a": jnp.ones((case.features_int,), x.dtype), "b": jnp.zeros((2,), x.dtype)}
        setattr(m, ADAPTER, {k: nnx.Param(v) for k, v in given.items()})
        held = {"/".join(map(str, p)): v for p, v in _compat.flat_state(nnx.state(m))}
        want = {f"{ADAPTER}/{k}" for k in given}
        assert want <= set(held), (
            f"nnx.state(model) holds {sorted(held)}, but should hold {sorted(want)} too: Variables set on the model "
            "are its state, as the wrapper's own are")
        assert_equal(f"y after model.{ADAPTER} = {{...}}", m(x), y, "y before it (the layer never reads those params)")
        graphdef, state = nnx.split(m)
        merged = nnx.merge(graphdef, state)
        assert_equal("y of nnx.merge(*nnx.split(model))", merged(x), y, "the model's own y")
        for k, v in given.items():  # carried, values and all, not only the paths
            assert_equal(f"nnx.merge(*nnx.split(model)).{ADAPTER}['{k}']", _compat.get_value(getattr(merged, ADAPTER)[k]),
                         v, "the value set on the model")
