"""A Linen layer with a collection of its own (one flax does not name) inside an NNX model.

Oracle: Linen's own rules, run natively. ``lazy_init`` keeps the collection
with the value Linen's ``init`` gives it; a call without ``mutable`` leaves it
as it is; under ``mutable=[name]`` it moves as Linen's own
``apply(..., mutable=[name])`` moves it, and the next call reads the moved
value. flax converts a collection it has no Variable type for by making one
(``variable_type_from_name(..., allow_register=True)``).
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting
from reference import prng_key

FRACTION = config.TONNX_EXAMPLE_FRACTION
OWN = pn.OWN_COLLECTION


@given_data(FRACTION, shrink=False)
def test_tonnx_own_collection_round_trip(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("counting", int(features), int(seed), x)
    linen = pn.linen_module("counting", int(features))
    v = pn.linen_variables(m)
    _, upd = linen.apply(v, x, mutable=[pn.OWN_COLLECTION])
    m(x, mutable=[pn.OWN_COLLECTION])
    assert_trees_equal(pn.OWN_COLLECTION, pn.collection(m, pn.OWN_COLLECTION), upd[pn.OWN_COLLECTION], "Linen's own")
    """
    with numerics(case), reporting(f"a Linen collection of the layer's own ({OWN!r}) kept and moved as Linen moves it",
                                   case, check):
        x = case_x(case)
        m = pn.wrapped("counting", case.features_int, case.seed_int, x)
        linen = pn.linen_module("counting", case.features_int)
        v = pn.linen_variables(m)
        native = linen.init(prng_key(case.seed_int), x)  # the count does not depend on the key
        assert_trees_equal(f"{OWN} after lazy_init", pn.collection(m, OWN), native[OWN], "Linen's own init")
        assert_equal("m(x)", m(x), linen.apply(v, x), "Linen's own apply")
        assert_trees_equal(f"{OWN} after a call without mutable=", pn.collection(m, OWN), v[OWN], "the value before it")
        for step in (1, 2):
            y = m(x, mutable=[OWN])
            y_native, updates = linen.apply(v, x, mutable=[OWN])
            assert_equal(f"m(x, mutable=[{OWN!r}]) #{step}", y, y_native, "Linen's own apply's output")
            assert_trees_equal(f"{OWN} after mutable call #{step}", pn.collection(m, OWN), updates[OWN],
                               f"Linen's own apply(variables, x, mutable=[{OWN!r}])")
            v = {**v, **updates}


@given_data(FRACTION, shrink=False)
def test_tonnx_registered_collection_takes_the_registered_type(device, data):
    """A Linen collection whose NNX type the team registered (``nnx.register_variable_name``) becomes that type.

    Oracle: the registry and Linen's own rules. After ``lazy_init`` the
    collection's variable is an instance of the registered type (a team
    filters its own kind of state by type, as optimisers filter ``nnx.Param``)
    and holds Linen's ``init`` value; under ``mutable=[name]`` it moves as
    Linen's own apply moves it, so the way back names the collection by the
    registry too.
    """
    case = draw_pipeline_case(data, device)
    check = """
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    typ = pn.registered_type()
    m = pn.wrapped("registered", int(features), int(seed), x)
    held = {type(v).__name__ for _, v in nnx.iter_graph(m) if isinstance(v, nnx.Variable) and not isinstance(v, (nnx.Param, nnx.RngState))}
    assert held == {typ.__name__}, f"the collection is held as {held}, not as the registered {typ.__name__}"
    """
    name = pn.REGISTERED_COLLECTION
    with numerics(case), reporting(f"a collection with a registered NNX type ({name!r}) held as that type", case, check):
        from flax import nnx

        typ = pn.registered_type()
        x = case_x(case)
        m = pn.wrapped("registered", case.features_int, case.seed_int, x)
        held = {type(v) for _, v in nnx.iter_graph(m)
                if isinstance(v, nnx.Variable) and not isinstance(v, (nnx.Param, nnx.RngState))}
        assert held == {typ}, (f"lazy_init holds the collection {name!r} as {sorted(t.__name__ for t in held)}, but "
                               f"should hold it as {typ.__name__}, the type registered for it")
        linen = pn.linen_module("registered", case.features_int)
        v = pn.linen_variables(m)
        native = linen.init(prng_key(case.seed_int), x)
        assert_trees_equal(f"{name} after lazy_init", pn.collection(m, name), native[name], f"Linen's own init of {name!r}")
        y = m(x, mutable=[name])
        y_native, updates = linen.apply(v, x, mutable=[name])
        assert_equal(f"m(x, mutable=[{name!r}])", y, y_native, "Linen's own apply's output")
        assert_trees_equal(f"{name} after a mutable call", pn.collection(m, name), updates[name],
                           f"Linen's own apply(variables, x, mutable=[{name!r}])")
