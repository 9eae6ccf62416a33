"""Seeds through ToNNX: distinct seeds give distinct params; the same seed, however passed, the same params."""

import numpy as np

from conformance.core import config
from conformance.helpers import harness_nnx
from conformance.helpers.harness import NNX_KERNEL, case_x, dummy_x, given_data, init_difference, leaf, numerics, seed_array
from conformance.helpers.hypothesis_helpers import Case, draw_case, seed_batch, seed_ints
from conformance.helpers.pytest_helpers import assert_trees_differ, assert_trees_equal, assert_within_model, reporting
from reference import _compat, linen_dense, nnx_params



@given_data(rotation="test_distinct_seeds_distinct_params")
def test_tonnx_distinct_seeds_distinct_params(device, data):
    case = draw_case(data, device, min_cells=config.SEED_MIN_CELLS, direction=harness_nnx.DIRECTION)
    other = data.draw(seed_ints().filter(lambda s: s != case.seed_int), label="other seed")
    case.extra["other_seed"] = other
    check = f"""
    other_seed = {other}
    k2 = nnx_params(nnx_model(other_seed, x, features))['kernel']
    assert (variables['kernel'] != k2).any(), f"seeds {{seed}} and {{other_seed}} give the same kernel"
    """
    with numerics(case), reporting("ToNNX seed sensitivity (pairwise)", case, check):
        mine = harness_nnx.params_of(harness_nnx.init_state(case))
        theirs = harness_nnx.params_of(harness_nnx.init_state(Case(**{**case.__dict__, "seed": other})))
        assert_trees_differ("params", mine, theirs, f"seeds {case.seed_int} and {other} are distinct")


# Three eager lazy inits per example: a tenth of the profile's examples.
@given_data(0.1, rotation="test_deterministic")
def test_tonnx_same_seed_same_params(device, data):
    """The seed as drawn (int, float, NumPy scalar), as an int, and nnx.Rngs(seed)'s default stream: the same params.

    ToNNX hands Linen's init the ``default`` stream as ``params`` when there is
    no ``params`` stream, so ``nnx.Rngs(seed)`` and ``nnx.Rngs(params=seed)``
    draw the same keys.
    """
    case = draw_case(data, device, min_cells=config.SEED_MIN_CELLS, direction=harness_nnx.DIRECTION)
    check = """
    from flax.nnx import bridge
    assert_trees_equal("params (int seed)", nnx_params(nnx_model(int(seed), x, features)), variables, "the seed as passed")
    by_default = bridge.ToNNX(linen_dense(int(features)), rngs=nnx.Rngs(int(seed)))
    bridge.lazy_init(by_default, x)
    assert_trees_equal("params (nnx.Rngs(seed))", nnx_params(by_default), variables, "nnx.Rngs(params=seed)")
    """
    with numerics(case), reporting("ToNNX same seed, same params", case, check):
        x = case_x(case)
        params = nnx_params(harness_nnx.eager_model(case, x))
        assert_trees_equal("params (int seed)", nnx_params(harness_nnx.eager_model(Case(**{**case.__dict__, "seed": case.seed_int}), x)),
                           params, f"the seed passed as {type(case.seed).__name__}")
        by_default = _compat.to_nnx(linen_dense(case.features_int), _compat.nnx.Rngs(case.seed_int))
        _compat.lazy_init(by_default, x)
        assert_trees_equal("params (nnx.Rngs(seed))", nnx_params(by_default), params, "nnx.Rngs(params=seed)")


# 64 lazy inits of a kernel of at least 256 cells per example: a tenth of the profile's examples.
@given_data(0.1, rotation="test_distinct_seeds_batch")
def test_tonnx_distinct_seeds_batch(device, data):
    case = draw_case(data, device, min_cells=config.INIT_STAT_MIN_CELLS, dtype_names=("float32",),
                     direction=harness_nnx.DIRECTION)
    seeds = seed_batch(case.seed_int, config.SEED_BATCH)
    padded = np.resize(seeds, config.SEED_BATCH)  # the fixed batch size: every call hits the same executable
    case.extra["seeds"] = f"seed_batch({case.seed_int}, {config.SEED_BATCH})"
    check = f"""
    from conformance.helpers.hypothesis_helpers import seed_batch
    seeds = seed_batch({case.seed_int}, {config.SEED_BATCH})
    owner = {{}}
    for s in seeds.tolist():
        first = owner.setdefault(np.asarray(nnx_params(nnx_model(s, x, features))['kernel']).tobytes(), s)
        assert first == s, f"seeds {{first}} and {{s}} give the same kernel (of {{len(seeds)}} distinct seeds)"
    """
    with numerics(case), reporting("ToNNX seed sensitivity (batch of seeds)", case, check):
        params = harness_nnx.jit_init_many(case.width, case.features_int)(padded.astype(seed_array(0).dtype), dummy_x(case))
        kernels = np.asarray(leaf(params, NNX_KERNEL)).reshape(config.SEED_BATCH, -1)[: len(seeds)]
        owner: dict[bytes, int] = {}
        for seed, row in zip(seeds.tolist(), kernels):
            first = owner.setdefault(row.tobytes(), seed)
            assert first == seed, f"seeds {first} and {seed} give the same kernel (of {len(seeds)} distinct seeds)"
        # The batched init agrees with a single init of the first seed: another program, so within the sampler model.
        single = np.asarray(harness_nnx.params_of(harness_nnx.init_state(case))["kernel"])
        assert_within_model("kernel[seed batch 0]", kernels[0].reshape(single.shape), single,
                            init_difference("kernel", single), "lazy init of that seed alone")
