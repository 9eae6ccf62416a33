"""``bridge.Module``: Linen code run as an NNX module lays out, reads and returns its variables as Linen does.

Oracle: the same definition on ``nn.Module`` (``helpers/bridge_modules.twins``):
an explicitly named submodule beside an auto-named one, one built in
``setup``, a kernel annotated with ``with_partitioning`` or not, a counter in a
collection of its own. ``init`` must give the variables tree Linen's ``init``
gives (paths, shapes, dtypes, plain arrays where Linen has arrays and the same
boxes where Linen boxes: no NNX Variable, metadata box or RNG state; the
counters' values, which record that each submodule saw ``is_initializing()``;
the same seed the same params, another seed another kernel), and
``apply`` on Linen's own variables the same output and the same returned
variables, leaving the variables it was given as they were. The numbers are compared exactly: both run the same eager operations
on the same arrays, the bridge only routing the variables. Annotations stay
metadata (``_compat.lazy_sharding``): outside a mesh Linen only records them.
Both run alike in NNX's tree mode (``nnx.set_graph_mode(False)``) as in graph mode.
"""

import textwrap

import pytest

from conformance.core import config
from conformance.helpers import bridge_modules as bm
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_differ, assert_trees_equal, reporting
from reference import _compat

FRACTION = config.TONNX_EXAMPLE_FRACTION


def _case(data, device):
    """The example's case, where the installed flax has a Linen-style ``bridge.Module`` (else a skip)."""
    if not bm.available():
        pytest.skip("this flax has no Linen-style bridge.Module (it arrived with flax commit f2892823, 0.10.4)")
    return draw_pipeline_case(data, device)


def _snippet(box, body: str) -> str:
    """A repro snippet: the twins of ``box``, then ``body`` (both dedented here, so they line up)."""
    head = f"from conformance.helpers import bridge_modules as bm\nfrom reference import _compat\n" \
           f"linen_cls, bridge_cls = bm.twins({box!r})\n"
    return head + textwrap.dedent(body).strip() + "\n"


def _layouts_equal(name: str, got: dict, want: dict, what: str) -> None:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"{name} holds the paths {sorted(got)}, but should hold {sorted(want)} ({what}); missing {missing}, "
        f"unexpected {extra}")
    for path, spec in want.items():
        assert got[path] == spec, (
            f"{name} at {path} is {got[path]} (leaf, shape, dtype, partition names), but should be {spec} ({what})")


@pytest.mark.parametrize("box", bm.BOXES, ids=lambda b: b or "plain")
@given_data(FRACTION, shrink=False)
def test_bridge_module_init_lays_out_variables_as_linen(device, box, data):
    case = _case(data, device)
    check = _snippet(box, f"""
    want = bm.layout(linen_cls(int(features)).init(jax.random.PRNGKey(int(seed)), x))
    with _compat.lazy_sharding():
        got = bm.layout(bridge_cls(int(features)).init(int(seed), x))
    assert got == want, {{k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}}
    """)
    with numerics(case), reporting("bridge.Module.init lays out its variables as Linen's init", case, check):
        import jax

        x = case_x(case)
        linen_cls, bridge_cls = bm.twins(box)
        linen_made = linen_cls(case.features_int).init(jax.random.PRNGKey(case.seed_int), x)
        want = bm.layout(linen_made)
        with _compat.lazy_sharding():
            made = bridge_cls(case.features_int).init(case.seed_int, x)
            got = bm.layout(made)
        _layouts_equal("bridge.Module.init(seed, x)", got, want, "Linen's init of the same definition")
        with _compat.lazy_sharding():  # the seed drives the draws: the same seed again, then a neighbour
            again = bridge_cls(case.features_int).init(case.seed_int, x)
            other = bridge_cls(case.features_int).init(pn.other_seed(case.seed_int), x)
        assert_trees_equal("params of init(seed, x) again", _compat.unbox(dict(again["params"])),
                           _compat.unbox(dict(made["params"])), "the first init's (the same seed)")
        assert_trees_differ("params of init(another seed, x)", _compat.unbox(dict(other["params"]["body"]["first"])),
                            _compat.unbox(dict(made["params"]["body"]["first"])), "the first init's: another seed must draw another kernel")
        assert_trees_equal(f"bridge.Module.init(seed, x)['{bm.COUNTS}']", _compat.unbox(dict(made[bm.COUNTS])),
                           _compat.unbox(dict(linen_made[bm.COUNTS])),
                           "Linen's (every submodule saw is_initializing() during init; the counter starts at 0)")


@pytest.mark.parametrize("box", bm.BOXES, ids=lambda b: b or "plain")
@given_data(FRACTION, shrink=False)
def test_bridge_module_apply_matches_linen_on_its_variables(device, box, data):
    case = _case(data, device)
    check = _snippet(box, f"""
    linen, bridged = linen_cls(int(features)), bridge_cls(int(features))
    variables = linen.init(jax.random.PRNGKey(int(seed)), x)
    y_linen, updated_linen = linen.apply(variables, x, True, mutable=True)
    given, want = bm.layout(variables), bm.layout(updated_linen)
    with _compat.lazy_sharding():
        y, updated = bridged.apply(variables, x, True, mutable=True)
    assert bm.layout(variables) == given, "apply changed the variables it was given"
    assert (y == y_linen).all() and bm.layout(updated) == want
    assert int(updated["{bm.COUNTS}"]["calls"]) == int(updated_linen["{bm.COUNTS}"]["calls"])
    """)
    with numerics(case), reporting("bridge.Module.apply on Linen's variables == Linen's apply", case, check):
        import jax

        x = case_x(case)
        linen_cls, bridge_cls = bm.twins(box)
        linen, bridged = linen_cls(case.features_int), bridge_cls(case.features_int)
        variables = linen.init(jax.random.PRNGKey(case.seed_int), x)
        given = bm.layout(variables)
        y_linen, updated_linen = linen.apply(variables, x, True, mutable=True)
        want, want_values = bm.layout(updated_linen), _compat.unbox(dict(updated_linen))  # before the bridge runs
        y_plain_linen = linen.apply(variables, x)
        with _compat.lazy_sharding():
            y_plain = bridged.apply(variables, x)
            _layouts_equal("the variables given to bridge.Module.apply, after it", bm.layout(variables), given,
                           "as given: apply must not change its caller's variables")
            y, updated = bridged.apply(variables, x, True, mutable=True)
        assert_equal("bridge.Module.apply(variables, x)", y_plain, y_plain_linen, "Linen's apply")
        assert_equal("y of apply(..., mutable=True)", y, y_linen, "Linen's (the same eager operations, the same arrays)")
        _layouts_equal("the variables apply(..., mutable=True) returns", bm.layout(updated), want,
                       "those Linen's apply returns")
        assert_trees_equal("returned variables", _compat.unbox(dict(updated)), want_values,
                           "Linen's returned variables (the counter bumped once, the params as given)")


@given_data(FRACTION, shrink=False)
def test_bridge_module_runs_alike_in_tree_mode(device, data):
    """Under ``nnx.set_graph_mode(False)`` (NNX's tree mode) ``init`` and ``apply`` give what they give in graph mode.

    A bridge module is no pytree, so the bridge walks it as a graph whatever the ambient mode (flax commit 8f8ec30a,
    0.12.5; the switch is public from 0.12.6); compared exactly, as both run the same eager operations on the same arrays.
    """
    from flax import nnx

    case = _case(data, device)
    if not hasattr(nnx, "set_graph_mode"):
        pytest.skip("this flax exports no tree-mode switch (nnx.set_graph_mode, public from flax 0.12.6)")
    check = _snippet(None, """
    from flax import nnx
    bridged = bridge_cls(int(features))
    variables = linen_cls(int(features)).init(jax.random.PRNGKey(int(seed)), x)
    made, (y, updated) = bridged.init(int(seed), x), bridged.apply(variables, x, True, mutable=True)
    with nnx.set_graph_mode(False):
        made_tree, (y_tree, updated_tree) = bridged.init(int(seed), x), bridged.apply(variables, x, True, mutable=True)
    assert bm.layout(made_tree) == bm.layout(made) and (y_tree == y).all()
    assert bm.layout(updated_tree) == bm.layout(updated)
    """)
    with numerics(case), reporting("bridge.Module runs in NNX's tree mode as in graph mode", case, check):
        import jax

        x = case_x(case)
        linen_cls, bridge_cls = bm.twins(None)
        bridged = bridge_cls(case.features_int)
        variables = linen_cls(case.features_int).init(jax.random.PRNGKey(case.seed_int), x)
        made = bridged.init(case.seed_int, x)
        y, updated = bridged.apply(variables, x, True, mutable=True)
        with nnx.set_graph_mode(False):
            made_tree = bridged.init(case.seed_int, x)
            y_tree, updated_tree = bridged.apply(variables, x, True, mutable=True)
        _layouts_equal("init(seed, x) in tree mode", bm.layout(made_tree), bm.layout(made), "in graph mode")
        assert_trees_equal("variables of init(seed, x) in tree mode", _compat.unbox(dict(made_tree)),
                           _compat.unbox(dict(made)), "in graph mode")
        assert_equal("y of apply(..., mutable=True) in tree mode", y_tree, y, "in graph mode")
        assert_trees_equal("variables apply(..., mutable=True) returns in tree mode", _compat.unbox(dict(updated_tree)),
                           _compat.unbox(dict(updated)), "in graph mode")
