"""Mutable state beyond ``batch_stats``: a team's own ``nnx.Variable`` subclass, sown intermediates, created state.

Oracle: Linen's own rules. A collection is updated only under
``mutable=[name]`` and comes back in the updates; fed back, it carries on.
Intermediates appear only when asked for. A state update outside ``mutable``
raises, as it does for Linen's own ``nn.BatchNorm``. A collection the call
creates (``self.loss = Loss(...)`` in ``__call__``, Linen's
``self.variable(...)`` there) is kept by ``init``, comes back under
``mutable=``, and outside it is refused, as Linen's ``ScopeCollectionNotFound``
refuses it.
"""

import jax
import numpy as np

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers.harness import case_x, given_data, numerics, unbox
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting
from conformance.numerics import errormodel
from reference import prng_key

FRACTION = config.PIPELINE_EXAMPLE_FRACTION
STEPS = 3
COUNTING = """
    from conformance.helpers import pipelines as pl
    m = pl.counting(x.shape[-1], int(features))
    cv = m.init(prng_key(seed), x)
    name = pl.custom_collection(cv)
"""


def _count(variables, name) -> int:
    leaves = jax.tree_util.tree_leaves(unbox(variables.get(name, {})))
    assert len(leaves) == 1, f"collection {name!r} holds {len(leaves)} leaves, but should hold the call count"
    return int(np.asarray(leaves[0]))


@pl.per_module
def _jit_apply_mutable(module, name: str):
    return jax.jit(lambda v, x_: module.apply(v, x_, mutable=[name]))


@given_data(FRACTION, shrink=False)
def test_custom_collection_updates_under_mutable(device, data):
    case = draw_pipeline_case(data, device)
    check = COUNTING.rstrip() + f"""
    v = cv
    for step in range({STEPS}):
        y, upd = m.apply(v, x, mutable=[name])
        v = {{**v, **upd}}
    count = int(jax.tree.leaves(v[name])[0])
    assert count == {STEPS}, f"{{name}} counts {{count}} calls after {STEPS} fed-back applies, but should count {STEPS}"
    """
    with numerics(case), reporting("a custom Variable's collection updates under mutable=[name] and feeds back", case, check):
        x = case_x(case)
        m = pl.counting(case.width, case.features_int)
        cv = m.init(prng_key(case.seed_int), x)
        name = pl.custom_collection(cv)
        start = _count(cv, name)
        apply = _jit_apply_mutable(m, name)
        v, ys = cv, []
        for step in range(1, STEPS + 1):
            y, updates = apply(v, x)
            assert name in updates, f"apply(mutable=[{name!r}]) returned updates {sorted(updates)}, but should return {name!r}"
            v = {**v, **updates}
            got = _count(v, name)
            assert got == start + step, f"{name} counts {got} after {step} fed-back applies, but should count {start + step}"
            ys.append(np.asarray(y))
        for step, y in enumerate(ys[1:], 2):
            assert_equal(f"y of step {step}", y, ys[0], "step 1's y (the count does not touch the output)")


@given_data(FRACTION, shrink=False)
def test_intermediates_only_when_asked(device, data):
    case = draw_pipeline_case(data, device)
    check = COUNTING.rstrip() + """
    y = m.apply(cv, x)
    assert not isinstance(y, tuple), "apply without mutable returned a tuple"
    y2, upd = m.apply(cv, x, mutable=['intermediates'])
    hidden = jax.tree.leaves(upd['intermediates'])
    assert hidden, "apply(mutable=['intermediates']) returned no sown value"
    assert_equal("sown hidden", hidden[0], y2, "the output it sowed")
    """
    with numerics(case), reporting("intermediates appear only when asked for", case, check):
        x = case_x(case)
        m = pl.counting(case.width, case.features_int)
        cv = m.init(prng_key(case.seed_int), x)
        assert "intermediates" not in cv, f"init's variables hold {sorted(cv)}: intermediates kept without being asked for"
        y = m.apply(cv, x)
        assert hasattr(y, "shape"), f"apply without mutable returned {type(y).__name__}, but should return the output alone"
        y2, updates = m.apply(cv, x, mutable=["intermediates"])
        assert "intermediates" in updates, f"apply(mutable=['intermediates']) updated {sorted(updates)}, but should return the sown values"
        hidden = jax.tree_util.tree_leaves(updates["intermediates"])
        assert len(hidden) == 1, f"{len(hidden)} sown values, but the module sows one per call"
        assert_equal("sown hidden", hidden[0], y2, "the output the module sowed")


@given_data(FRACTION, shrink=False)
def test_state_update_outside_mutable_raises(device, data):
    case = draw_pipeline_case(data, device)
    check = COUNTING.rstrip() + """
    try:
        m.apply(cv, x)  # updates the call count, whose collection is not mutable
    except Exception as exc:
        print("raised, as Linen's nn.BatchNorm does:", type(exc).__name__)
    else:
        raise AssertionError(f"apply updated {name!r} outside mutable= silently: the update is lost")
    """
    with numerics(case), reporting("a state update outside mutable= raises", case, check):
        x = case_x(case)
        m = pl.counting(case.width, case.features_int)
        cv = m.init(prng_key(case.seed_int), x)
        name = pl.custom_collection(cv)
        try:
            m.apply(cv, x)
        except Exception:  # noqa: BLE001 - Linen raises ModifyScopeVariableError; any error refuses the lost update
            return
        raise AssertionError(f"apply updated the {name!r} collection without mutable=[{name!r}] and dropped the "
                             "update silently, but should raise as Linen's own nn.BatchNorm does")


CREATING = """
    from conformance.helpers import pipelines as pl
    m = pl.creating(x.shape[-1], int(features))
    name = pl.creating_class()[1].__name__
"""


@given_data(FRACTION, shrink=False)
def test_created_collection_kept_by_init(device, data):
    """Linen's init returns every collection the call creates; so must the bridged module's."""
    case = draw_pipeline_case(data, device)
    check = CREATING.rstrip() + """
    v = m.init(prng_key(seed), x)
    assert name in v, f"init's variables hold {sorted(v)}, but Linen's init keeps {name!r}, created during the call"
    """
    with numerics(case), reporting("init keeps a collection the call creates, as Linen's does", case, check):
        x = case_x(case)
        m = pl.creating(case.width, case.features_int)
        name = pl.creating_class()[1].__name__
        v = m.init(prng_key(case.seed_int), x)
        assert name in v, (f"init's variables hold {sorted(v)}, but should also hold {name!r}: the call creates it, "
                           "and Linen's init keeps every collection its call creates")


@given_data(FRACTION, shrink=False)
def test_created_collection_returned_under_mutable(device, data):
    """apply(..., mutable=[name]) returns the collection the call creates, holding what the call computed."""
    case = draw_pipeline_case(data, device)
    check = CREATING.rstrip() + """
    v = {"params": m.init(prng_key(seed), x)["params"]}
    y, upd = m.apply(v, x, mutable=[name])
    assert name in upd, f"apply(mutable=[{name!r}]) returned {sorted(upd)}, but the call creates {name!r}"
    """
    with numerics(case), reporting("apply(mutable=[name]) returns a collection the call creates", case, check):
        x = case_x(case)
        m = pl.creating(case.width, case.features_int)
        name = pl.creating_class()[1].__name__
        v = {"params": m.init(prng_key(case.seed_int), x)["params"]}
        y, updates = m.apply(v, x, mutable=[name])
        assert name in updates, (f"apply(mutable=[{name!r}]) returned the collections {sorted(updates)}, but should "
                                 f"return {name!r}, which the call creates")
        (loss,) = jax.tree_util.tree_leaves(unbox(updates[name]))
        y64 = np.asarray(y, np.float64)
        # The mean of squares the call computed, in float32: each square rounds once and the mean's
        # sum of n terms is within gamma_n of sum(y^2) (Higham 3.1), one more rounding for the division.
        n = y64.size
        bound = errormodel.gamma(n + 2, np.float32) * float(np.mean(y64**2)) + np.finfo(np.float32).tiny * n
        assert abs(float(loss) - float(np.mean(y64**2))) <= bound, (
            f"{name} holds {float(loss)!r}, but the call computed mean(y**2) = {float(np.mean(y64**2))!r} "
            f"(bound {bound:.3e} of the error model)")


@given_data(FRACTION, shrink=False)
def test_created_collection_outside_mutable_raises(device, data):
    """apply without mutable=[name] refuses a collection the call creates, as Linen does, instead of losing it."""
    case = draw_pipeline_case(data, device)
    check = CREATING.rstrip() + """
    v = {"params": m.init(prng_key(seed), x)["params"]}
    try:
        m.apply(v, x)
    except Exception as exc:
        print("raised, as Linen's self.variable(...) does:", type(exc).__name__)
    else:
        raise AssertionError(f"apply created {name!r} outside mutable= and dropped it silently")
    """
    with numerics(case), reporting("a collection created outside mutable= is refused", case, check):
        x = case_x(case)
        m = pl.creating(case.width, case.features_int)
        name = pl.creating_class()[1].__name__
        v = {"params": m.init(prng_key(case.seed_int), x)["params"]}
        try:
            m.apply(v, x)
        except Exception:  # noqa: BLE001 - Linen raises ScopeCollectionNotFound; any error refuses the lost value
            return
        raise AssertionError(f"apply without mutable=[{name!r}] dropped the {name!r} collection the call creates "
                             "silently, but should raise as Linen's own self.variable(...) does "
                             "(ScopeCollectionNotFound)")
