"""Seed sensitivity: distinct seeds in the domain give distinct params."""

import numpy as np

from conformance.core import config
from conformance.helpers.harness import KERNEL, dummy_x, given_data, init_difference, init_jit, jit_init_many, leaf, numerics, seed_array
from conformance.helpers.hypothesis_helpers import Case, draw_case, seed_batch, seed_ints  # noqa: F401  (repro snippets import seed_batch from here)
from conformance.helpers.pytest_helpers import assert_trees_differ, assert_within_model, reporting


@given_data()
def test_distinct_seeds_distinct_params(device, data):
    case = draw_case(data, device, min_cells=config.SEED_MIN_CELLS)
    other = data.draw(seed_ints().filter(lambda s: s != case.seed_int), label="other seed")
    case.extra["other_seed"] = other
    check = f"""
    other_seed = {other}
    k1 = init_variables(seed, x, features)['params']['linear']['kernel']
    k2 = init_variables(other_seed, x, features)['params']['linear']['kernel']
    assert (k1 != k2).any(), f"seeds {{seed}} and {{other_seed}} give the same kernel"
    """
    with numerics(case), reporting("seed sensitivity (pairwise)", case, check):
        assert_trees_differ(
            "variables", init_jit(case), init_jit(Case(**{**case.__dict__, "seed": other})),
            f"seeds {case.seed_int} and {other} are distinct",
        )


@given_data(0.5)
def test_distinct_seeds_batch(device, data):
    # The kernel statistics' shapes (test_init.py): the same vmapped inits, compiled once for both.
    case = draw_case(data, device, min_cells=config.INIT_STAT_MIN_CELLS, dtype_names=("float32",))
    seeds = seed_batch(case.seed_int, config.SEED_BATCH)
    # Pad to the fixed batch size so every call hits the same executable.
    padded = np.resize(seeds, config.SEED_BATCH)
    case.extra["seeds"] = f"seed_batch({case.seed_int}, {config.SEED_BATCH})"
    check = f"""
    from conformance.properties.contract.test_seeds import seed_batch
    seeds = seed_batch({case.seed_int}, {config.SEED_BATCH})
    owner = {{}}
    for s in seeds.tolist():
        first = owner.setdefault(np.asarray(init_variables(s, x, features)['params']['linear']['kernel']).tobytes(), s)
        assert first == s, f"seeds {{first}} and {{s}} give the same kernel (of {{len(seeds)}} distinct seeds)"
    """
    with numerics(case), reporting("seed sensitivity (batch of seeds)", case, check):
        variables = jit_init_many(case.width, case.features_int)(padded.astype(seed_array(0).dtype), dummy_x(case))
        kernels = np.asarray(leaf(variables, KERNEL)).reshape(config.SEED_BATCH, -1)[: len(seeds)]
        owner: dict[bytes, int] = {}
        for seed, row in zip(seeds.tolist(), kernels):
            first = owner.setdefault(row.tobytes(), seed)
            assert first == seed, f"seeds {first} and {seed} give the same kernel (of {len(seeds)} distinct seeds)"
        # The batched init agrees with a single init of the first seed: another program, so within the sampler model.
        single = np.asarray(leaf(init_jit(case), KERNEL))
        assert_within_model("kernel[seed batch 0]", kernels[0].reshape(single.shape), single,
                            init_difference("kernel", single), "init of that seed alone")
