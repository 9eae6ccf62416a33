"""Linen ``nn.BatchNorm`` statistics as NNX variables (``nnx.BatchStat``), updated in place by training calls.

Oracle: Linen run natively. Each training call ``model(x, train=True,
mutable=['batch_stats'])`` must leave in the model's state what Linen's own
``apply(variables, x, train=True, mutable=['batch_stats'])`` returns from
the same variables, and the same output: the wrapper runs that very apply,
so bit for bit, step after step. An inference call reads the statistics
(Linen's ``use_running_average=True`` output on the updated variables) and
writes nothing.
"""

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_differ, assert_trees_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION
STEPS = config.ZOO_TRAIN_STEPS
NORMED = """
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("normed", int(features), int(seed), x, train=False)
    linen = pn.linen_module("normed", int(features))
    v = pn.linen_variables(m)
"""


def _train_both(m, linen, x, steps):
    """``steps`` training calls of the model and of Linen natively from its variables; the native variables after."""
    v = pn.linen_variables(m)
    for step in range(1, steps + 1):
        y = m(x, train=True, mutable=["batch_stats"])
        y_native, updates = linen.apply(v, x, train=True, mutable=["batch_stats"])
        v = {**v, **updates}
        assert_equal(f"training call {step}'s output", y, y_native,
                     "Linen's own apply(variables, x, train=True, mutable=['batch_stats'])")
        assert_trees_equal(f"batch_stats after training call {step}", pn.collection(m, "batch_stats"),
                           v["batch_stats"], "Linen's own updates from the same variables")
    return v


@given_data(FRACTION, shrink=False)
def test_tonnx_batch_stats_update_matches_linen(device, data):
    case = draw_pipeline_case(data, device)
    check = NORMED.rstrip() + f"""
    for step in range({STEPS}):
        y = m(x, train=True, mutable=["batch_stats"])
        y_native, upd = linen.apply(v, x, train=True, mutable=["batch_stats"])
        v = {{**v, **upd}}
        assert_equal("output", y, y_native, "Linen's own training apply")
        assert_trees_equal("batch_stats", pn.collection(m, "batch_stats"), v["batch_stats"], "Linen's own updates")
    """
    with numerics(case), reporting("training calls update batch_stats in place as Linen's mutable apply does", case, check):
        x = case_x(case)
        m = pn.wrapped("normed", case.features_int, case.seed_int, x, train=False)
        linen = pn.linen_module("normed", case.features_int)
        start = pn.linen_variables(m)
        assert "batch_stats" in start, f"lazy_init left the collections {sorted(start)}, but nn.BatchNorm creates batch_stats"
        v = _train_both(m, linen, x, STEPS)
        assert_trees_differ("batch_stats before and after training", start["batch_stats"], v["batch_stats"],
                            "a training call moves the running mean and variance")
        assert_trees_equal("params after training calls", pn.collection(m, "params"), start["params"],
                           "lazy_init's params: a forward call writes only batch_stats")


@given_data(FRACTION, shrink=False)
def test_tonnx_inference_reads_batch_stats(device, data):
    case = draw_pipeline_case(data, device)
    check = NORMED.rstrip() + """
    y_native, upd = linen.apply(v, x, train=True, mutable=["batch_stats"])
    m(x, train=True, mutable=["batch_stats"])
    v = {**v, **upd}
    assert_equal("inference output", m(2 * x, train=False), linen.apply(v, 2 * x, train=False), "Linen's on the updated stats")
    assert_trees_equal("batch_stats after inference", pn.collection(m, "batch_stats"), v["batch_stats"], "before it")
    """
    with numerics(case), reporting("an inference call reads the updated batch_stats and writes nothing", case, check):
        x = case_x(case)
        m = pn.wrapped("normed", case.features_int, case.seed_int, x, train=False)
        linen = pn.linen_module("normed", case.features_int)
        v = _train_both(m, linen, x, 1)
        x2 = 2 * x  # another batch: the stored statistics, not this batch's, must normalise it
        assert_equal("m(2 * x, train=False)", m(x2, train=False), linen.apply(v, x2, train=False),
                     "Linen's own use_running_average=True output on the updated variables")
        assert_trees_equal("batch_stats after an inference call", pn.collection(m, "batch_stats"), v["batch_stats"],
                           "those before it: inference reads the statistics, never writes them")
