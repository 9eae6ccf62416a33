"""orbax checkpoints of an NNX model's state around a Linen layer: save, restore into an abstract model, resume.

Oracle: the saved model. The layer is a Linen ``nn.Dense`` and ``nn.BatchNorm``
after one training step, so the state holds params, batch statistics and the
wrapper's RNG streams. A pipeline resumes by ``nnx.eval_shape`` of its model
(no arrays), ``nnx.split``, an orbax restore into the abstract state, and
``nnx.merge``: leaves come back bit for bit, and the resumed model computes the
saved model's outputs, bit for bit (the same program on the same variables).
"""

import os
import tempfile

from conformance.core import config
from conformance.helpers import checkpoints
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_trees_equal, reporting
from reference import _compat

FRACTION = config.TONNX_EXAMPLE_FRACTION


@given_data(FRACTION, shrink=False)
def test_tonnx_orbax_round_trip(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    import tempfile, os
    from flax import nnx
    from conformance.helpers import checkpoints, pipelines_nnx as pn
    m = pn.wrapped("normed", int(features), int(seed), x, train=False)
    m(x, train=True, mutable=["batch_stats"])
    path = os.path.join(tempfile.mkdtemp(), "ckpt")
    checkpoints.orbax_save(path, pn.with_key_data(nnx.state(m)))
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: pn.wrapped("normed", int(features), int(seed), x, train=False)))
    restored = checkpoints.orbax_restore(path, pn.with_key_data(abstract), x.devices().pop())
    resumed = nnx.merge(graphdef, pn.with_typed_keys(restored, abstract))
    assert_trees_equal("resumed variables", pn.linen_variables(resumed), pn.linen_variables(m), "saved")
    assert_equal("resumed(x)", resumed(x, train=False), m(x, train=False), "m(x)")
    """
    with numerics(case), reporting("orbax save of nnx.state, restore into an abstract model: bit for bit", case, check):
        from flax import nnx

        x = case_x(case)
        m = pn.wrapped("normed", case.features_int, case.seed_int, x, train=False)
        m(x, train=True, mutable=["batch_stats"])  # batch statistics that differ from their initial values
        saved = nnx.state(m)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ckpt")
            checkpoints.orbax_save(path, pn.with_key_data(saved))
            abstract_model = nnx.eval_shape(lambda: pn.wrapped("normed", case.features_int, case.seed_int, x, train=False))
            graphdef, abstract = nnx.split(abstract_model)
            restored = pn.with_typed_keys(checkpoints.orbax_restore(path, pn.with_key_data(abstract), case.device), abstract)
        assert_trees_equal("restored state", pn.with_key_data(_compat.pure_dict(restored)), pn.with_key_data(_compat.pure_dict(saved)),
                           "the saved nnx.state(m), RNG streams included")
        resumed = nnx.merge(graphdef, restored)
        assert_trees_equal("resumed model's variables", pn.linen_variables(resumed), pn.linen_variables(m),
                           "the saved model's (params and batch_stats)")
        assert_equal("resumed(x, train=False)", resumed(x, train=False), m(x, train=False),
                     "the saved model's output: the same program on the same variables")
        y, y_saved = resumed(x, train=True, mutable=["batch_stats"]), m(x, train=True, mutable=["batch_stats"])
        assert_equal("resumed(x, train=True)", y, y_saved, "the saved model's training output")
        assert_trees_equal("resumed model's batch_stats after a training call", pn.collection(resumed, "batch_stats"),
                           pn.collection(m, "batch_stats"), "the saved model's after the same call")
