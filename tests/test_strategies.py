"""Meta-tests of the strategies: over many draws they reach the edges the contract needs."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from conformance.core import config
from conformance.helpers.hypothesis_helpers import SEED_BOUNDARIES, draw_case, make_x, seeds


def _draws(n=300, **kw):
    seen = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(data):
        seen.append(draw_case(data, "cpu:0", **kw))

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
