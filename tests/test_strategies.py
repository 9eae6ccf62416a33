"""Meta-tests of the strategies: over many draws they reach the edges the contract needs."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from conformance.core import config
from conformance.helpers.hypothesis_helpers import SEED_BOUNDARIES, draw_case, make_x, seeds


def _draws(n=300, devices=("cpu:0", "cpu:1"), **kw):
    """Cases drawn on each of ``devices`` (the two CPU devices deal a property's compile keys out between them)."""
    seen = []
    for device in devices:

        @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def collect(data):
            seen.append(draw_case(data, device, **kw))

        collect()
    return seen


def test_cases_reach_the_edges():
    cases = _draws(batched=None)
    assert any(c.width == 1 for c in cases), "width 1 never drawn"
    assert any(c.width >= 256 for c in cases), "width 256 never drawn"
    assert any(c.features_int > 64 for c in cases), "features above 64 never drawn"
    assert any(c.features_int == 1 for c in cases), "features 1 never drawn"
    assert {c.dtype for c in cases} == set(config.DTYPES), f"dtypes drawn {sorted({c.dtype for c in cases})}"
    assert any(c.seed_int < 0 for c in cases), "no negative seed"
    assert {config.SEED_MIN, config.SEED_MAX} <= {c.seed_int for c in cases}, "a seed boundary never drawn"
    assert any(isinstance(c.seed, float) for c in cases), "seeds never passed as float"
    assert any(isinstance(c.features, float) for c in cases), "features never passed as float"
    assert any(isinstance(c.seed, np.generic) for c in cases), "seeds never passed as NumPy scalars"
    assert any(len(c.x.shape) > 1 for c in cases), "no batched input"


def test_shapes_stay_on_the_menu():
    """Compile-aware: every drawn (width, features) is one of the menu's shapes."""
    cases = _draws(batched=None)
    assert {(c.width, c.features_int) for c in cases} <= set(config.SHAPES)
    assert {c.x.shape[:-1] for c in cases} <= {()} | set(config.BATCH_SHAPES)


@given(seeds())
@settings(max_examples=200, derandomize=True, database=None)
def test_seeds_are_exact_and_in_domain(seed):
    assert float(seed) == int(seed), f"seed {seed!r} is not an exact integer"
    assert config.SEED_MIN <= int(seed) <= config.SEED_MAX


def test_seed_boundaries_are_the_domain_edges():
    assert min(SEED_BOUNDARIES) == config.SEED_MIN and max(SEED_BOUNDARIES) == config.SEED_MAX


def test_make_x_is_deterministic_bounded_and_typed():
    for dtype in config.DTYPES:
        for kind in ("uniform", "integers", "zeros", "one_hot", "tiny", "mixed"):
            a, b = make_x((2, 17), dtype, kind, 5), make_x((2, 17), dtype, kind, 5)
            assert a.dtype.name == dtype and a.shape == (2, 17)
            assert np.array_equal(a, b), f"make_x not deterministic for {dtype}/{kind}"
            v = a.astype(np.float64)
            assert np.isfinite(v).all() and np.abs(v).max() <= config.ELEMENT_MAX


def test_random_and_nightly_profiles_draw_shapes_off_the_menu():
    """Off the menu under random and nightly: the error model meets shapes it was not tuned on, up to OFF_MENU_MAX."""
    from hypothesis import settings as profiles

    from conformance.core import jax_setup as _setup

    _setup.register_profiles()
    previous = profiles._current_profile
    for name in config.OFF_MENU_PROFILES:
        profiles.load_profile(name)
        try:
            shapes = {(c.width, c.features_int) for c in _draws(batched=None)}
        finally:
            profiles.load_profile(previous)
        assert shapes - set(config.SHAPES), f"{name}: every shape drawn is on the menu"
        assert all(1 <= w <= config.OFF_MENU_MAX and 1 <= f <= config.OFF_MENU_MAX for w, f in shapes), name


def test_compile_keys_give_each_property_every_shape_dtype_and_batch_shape():
    """Paired draws: about one compile per shape, yet every menu entry is met; row 0 is every menu's first."""
    from conformance.helpers.hypothesis_helpers import batch_menu, compile_keys

    for rotation in ("test_a", "test_b", "test_c", ""):
        rows = compile_keys(config.SHAPES, config.DTYPES, batch_menu(None), rotation)
        assert rows[0] == (config.SHAPES[0], config.DTYPES[0], ()), f"rows[0]={rows[0]}, but should be every menu's first"
        assert len(rows) == len(config.SHAPES) + 1, f"len(rows)={len(rows)}, but should be {len(config.SHAPES) + 1}"
        assert {r[0] for r in rows} == set(config.SHAPES)
        assert {r[1] for r in rows} == set(config.DTYPES)
        assert {r[2] for r in rows} == set(batch_menu(None))
    assert compile_keys([(64, 64)], ["float32"], [()], "x") == [((64, 64), "float32", ())]


def test_the_suites_properties_pair_every_shape_with_every_dtype():
    """Across the suite's properties, the rotations cover every (shape, dtype) and (dtype, batch) pair."""
    from conformance.core import deviations
    from conformance.helpers.hypothesis_helpers import batch_menu, compile_keys

    rows = {r for name in deviations.suite_test_names()
            for r in compile_keys(config.SHAPES, config.DTYPES, batch_menu(None), name)}
    missing = {(s, d) for s in config.SHAPES for d in config.DTYPES} - {(r[0], r[1]) for r in rows}
    assert not missing, f"(shape, dtype) pairs no property draws: {sorted(missing)}"
    missing = {(d, b) for d in config.DTYPES for b in batch_menu(None)} - {(r[1], r[2]) for r in rows}
    assert not missing, f"(dtype, batch_shape) pairs no property draws: {sorted(missing)}"


def test_devices_of_a_platform_share_out_a_propertys_compile_keys():
    """Each device draws row 0 and its share of the rest; together they draw every row, each once."""
    from conformance.helpers.hypothesis_helpers import batch_menu, compile_keys, device_share

    keys = compile_keys(config.SHAPES, config.DTYPES, batch_menu(None), "test_a")
    for peers in (["cpu:0", "cpu:1"], ["gpu:0", "gpu:1", "gpu:2"]):
        shares = [device_share(keys, d, peers) for d in peers]
        assert all(share[0] == keys[0] for share in shares), "a device's share lacks row 0 (every menu's first)"
        rest = [k for share in shares for k in share[1:]]
        assert sorted(rest) == sorted(keys[1:]), f"shares {shares}, but should deal out {keys[1:]} once each"
        sizes = [len(share) for share in shares]
        assert max(sizes) - min(sizes) <= 1, f"share sizes {sizes}, but should differ by at most 1"
    shares = [device_share(keys[:3], d, ["cpu:0", "cpu:1"], common_first=False) for d in ("cpu:0", "cpu:1")]
    assert shares == [[keys[0], keys[2]], [keys[1]]], f"pipeline shares {shares}, but should deal 3 keys out as 2 + 1"
    assert device_share(keys[:1], "cpu:1", ["cpu:0", "cpu:1"], common_first=False) == keys[:1], "a device left without a key"
    assert device_share(keys, "gpu:0", ["gpu:0"]) == keys, "a platform's only device should draw every key"
    assert device_share(keys, "tpu:0", ["cpu:0", "cpu:1"]) == keys, "a device outside peers should draw every key"


def test_a_property_draws_only_its_compile_keys():
    from conformance.helpers.hypothesis_helpers import (
        CURRENT_PROPERTY, batch_menu, compile_keys, device_share, platform_peers,
    )

    token = CURRENT_PROPERTY.set("test_output_dtype")
    try:
        cases = _draws(n=100, devices=("cpu:0",), batched=None)
    finally:
        CURRENT_PROPERTY.reset(token)
    assert platform_peers("cpu:0") == ["cpu:0", "cpu:1"], platform_peers("cpu:0")
    keys = set(device_share(compile_keys(config.SHAPES, config.DTYPES, batch_menu(None), "test_output_dtype"),
                            "cpu:0", platform_peers("cpu:0")))
    drawn = {((c.width, c.features_int), c.dtype, c.x.shape[:-1]) for c in cases}
    assert drawn == keys, f"drawn {len(drawn)} compile keys, but should draw exactly cpu:0's {len(keys)}"
