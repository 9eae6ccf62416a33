"""Bad input: each invalid argument raises a ValueError or TypeError naming it and its domain.

The error must come from the reference's own checks, before flax runs (flax
answers some of these with ZeroDivisionError, IndexError or silent truncation).
"""

import numpy as np

from conformance.core import config
from conformance.helpers.bad_input import bad_integral, bad_x, raise_from_reference
from conformance.helpers.harness import given_data, place
from conformance.helpers.hypothesis_helpers import make_x
from reference import nnx_inside_linen


@given_data(0.5)
def test_rejects_bad_seed(device, data):
    value, exc = data.draw(bad_integral(config.SEED_MIN, config.SEED_MAX), label="bad seed")
    x = place(make_x((3,), "float32"), device)
    raise_from_reference(lambda: nnx_inside_linen(value, x, 2), exc, "seed", f"[{config.SEED_MIN}, {config.SEED_MAX}]")


@given_data(0.5)
def test_rejects_bad_features(device, data):
    value, exc = data.draw(bad_integral(config.FEATURES_MIN, config.FEATURES_MAX), label="bad features")
    x = place(make_x((3,), "float32"), device)
    raise_from_reference(lambda: nnx_inside_linen(0, x, value), exc, "features", f"[{config.FEATURES_MIN}, {config.FEATURES_MAX}]")


@given_data(0.25)
def test_rejects_bad_x(device, data):
    make, exc, mentions = data.draw(bad_x(), label="bad x")
    raise_from_reference(lambda: nnx_inside_linen(0, make(device), 2), exc, "x", mentions)


EDGE_SEEDS = (config.SEED_MIN, config.SEED_MAX, float(config.SEED_MIN), float(config.SEED_MAX),
              np.int32(config.SEED_MIN), np.int64(config.SEED_MAX), np.float64(config.SEED_MAX))
EDGE_FEATURES = (config.FEATURES_MIN, float(config.FEATURES_MIN), np.int64(config.FEATURES_MIN), np.float64(config.FEATURES_MIN))


def test_accepts_domain_edges(device):
    """Every edge of the domains is accepted and reaches flax: the checks are not too strict.

    A fixed set, checked whole on every run (a draw could miss the one edge an
    off-by-one check rejects).
    """
    x = place(make_x((1,), "float32", "uniform", 1), device)
    for seed in EDGE_SEEDS:
        for feats in EDGE_FEATURES:
            y = nnx_inside_linen(seed, x, feats)
            assert y.shape == (1,), f"y.shape={y.shape}, but should be (1,) [seed={seed!r}, features={feats!r}]"
