"""What every module property draws (an example call, a params seed, a stream key seed) and how it names the module."""

import pytest
from hypothesis import strategies as st

from conformance.core import config

SEEDS = st.integers(0, 2**31 - 1)


def draw(data, spec):
    i = data.draw(st.integers(0, len(spec.calls) - 1), label="example call")
    seed = data.draw(SEEDS, label="params seed")
    key = data.draw(SEEDS, label="stream key seed")
    return spec.calls[i], seed, key


def other(data, seed, label):
    """A seed other than ``seed``."""
    return data.draw(SEEDS.filter(lambda s: s != seed), label=label)


def why(spec, text):
    return f"{spec.name} ({spec.source or 'zoo'}): {text}"


def premise_skip(spec, fact):
    """Skip because ``fact``, a fact about the layer taken from its class run natively (the gate compares these)."""
    pytest.skip(config.PREMISE_SKIP + why(spec, fact))
