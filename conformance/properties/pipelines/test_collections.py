"""Mutable state beyond ``batch_stats``: a team's own ``nnx.Variable`` subclass, and sown intermediates.

Oracle: Linen's own rules. A collection is updated only under
``mutable=[name]`` and comes back in the updates; fed back, it carries on.
Intermediates appear only when asked for. A state update outside ``mutable``
raises, as it does for Linen's own ``nn.BatchNorm``.
"""

import jax
import numpy as np

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers.harness import case_x, given_data, numerics, unbox
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting
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
