"""Linen ``nn.Dropout`` inside an NNX model, driven by ``nnx.Rngs`` streams.

Oracle: the Linen module run natively. A call given ``rngs=nnx.Rngs(dropout=k)``
drops the cells Linen's own ``apply(..., rngs={'dropout': key})`` drops with
the key that stream hands out, bit for bit; the same key drops the same cells,
another key others. A model holding its own ``dropout`` stream draws a new key
per call, and two models seeded alike draw alike. In deterministic mode nothing
is drawn: the output is Linen's deterministic output whatever the key, and a
model without a dropout stream computes it. The mask is read off a probe of
``TONNX_DROPOUT_CELLS`` ones, so two keys' masks agree with probability
2**-256 at most.
"""

import numpy as np
from hypothesis import strategies as st

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION
KEYS = st.lists(st.integers(0, config.SEED_MAX), min_size=2, max_size=2, unique=True)


def _assert_masks_differ(name, a, b, what):
    __tracebackhide__ = True
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    assert (a != b).any(), (f"{name}: the two dropout masks of {a.size} cells are identical, but should differ ({what}; "
                            f"two independent masks agree with probability 2**-{a.size} at rate 0.5)")


def _assert_outputs_equal(name, got, want, what):
    __tracebackhide__ = True
    assert_equal(f"{name} output", got[0], want[0], what)
    assert_equal(f"{name} dropout probe", got[1], want[1], what)


@given_data(FRACTION, shrink=False)
def test_tonnx_dropout_mask_follows_the_stream_key(device, data):
    case = draw_pipeline_case(data, device)
    k1, k2 = data.draw(KEYS, label="dropout keys")
    case.extra["dropout_keys"] = (k1, k2)
    check = f"""
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("noisy", int(features), int(seed), x, deterministic=True)
    native = pn.linen_module("noisy", int(features)).apply(pn.linen_variables(m), x, rngs={{"dropout": nnx.Rngs(dropout={k1}).dropout()}})
    got = m(x, rngs=nnx.Rngs(dropout={k1}))
    assert_equal("dropout probe", got[1], native[1], "Linen's own dropout with the stream's key")
    assert_equal("output", got[0], native[0], "Linen's own dropout with the stream's key")
    other = m(x, rngs=nnx.Rngs(dropout={k2}))
    assert (np.asarray(other[1]) != np.asarray(got[1])).any(), "keys {k1} and {k2} drop the same cells"
    """
    with numerics(case), reporting("a call's nnx.Rngs dropout stream drops what Linen drops with its key", case, check):
        from flax import nnx

        x = case_x(case)
        m = pn.wrapped("noisy", case.features_int, case.seed_int, x, deterministic=True)
        linen = pn.linen_module("noisy", case.features_int)
        variables = pn.linen_variables(m)
        first = m(x, rngs=nnx.Rngs(dropout=k1))
        native = linen.apply(variables, x, rngs={"dropout": nnx.Rngs(dropout=k1).dropout()})
        _assert_outputs_equal(f"m(x, rngs=nnx.Rngs(dropout={k1}))", first, native,
                              "Linen's own apply with the key nnx.Rngs(dropout=k).dropout() hands out")
        _assert_outputs_equal(f"m(x, rngs=nnx.Rngs(dropout={k1})) again", m(x, rngs=nnx.Rngs(dropout=k1)), first,
                              "the first call with the same key")
        other = m(x, rngs=nnx.Rngs(dropout=k2))
        _assert_masks_differ(f"keys {k1} and {k2}", other[1], first[1], "another stream key drops other cells")


@given_data(FRACTION, shrink=False)
def test_tonnx_dropout_stream_advances_per_call(device, data):
    case = draw_pipeline_case(data, device)
    k1, k2 = data.draw(KEYS, label="dropout keys")
    case.extra["dropout_keys"] = (k1, k2)
    check = f"""
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    a = pn.wrapped("noisy", int(features), nnx.Rngs(params=int(seed), dropout={k1}), x, deterministic=True)
    b = pn.wrapped("noisy", int(features), nnx.Rngs(params=int(seed), dropout={k1}), x, deterministic=True)
    a1, a2, b1 = a(x), a(x), b(x)
    assert_equal("a's first mask", a1[1], b1[1], "b's first mask (the same stream seed)")
    assert (np.asarray(a1[1]) != np.asarray(a2[1])).any(), "a's second call drops the same cells as its first"
    """
    with numerics(case), reporting("a model's own dropout stream: a new key per call, alike for alike seeds", case, check):
        from flax import nnx

        x = case_x(case)
        a, b, c = (pn.wrapped("noisy", case.features_int, nnx.Rngs(params=case.seed_int, dropout=k), x, deterministic=True)
                   for k in (k1, k1, k2))
        a1, b1, c1 = a(x), b(x), c(x)
        _assert_outputs_equal("a's first call", a1, b1, f"b's first call (both streams seeded {k1})")
        _assert_masks_differ("a's and c's first calls", a1[1], c1[1], f"streams seeded {k1} and {k2}")
        a2, b2 = a(x), b(x)
        _assert_masks_differ("a's first and second calls", a1[1], a2[1], "the stream hands out a new key per call")
        _assert_outputs_equal("a's second call", a2, b2, "b's second call (alike streams advance alike)")


@given_data(FRACTION, shrink=False)
def test_tonnx_dropout_deterministic_draws_nothing(device, data):
    case = draw_pipeline_case(data, device)
    k1, k2 = data.draw(KEYS, label="dropout keys")
    case.extra["dropout_keys"] = (k1, k2)
    check = f"""
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("noisy", int(features), int(seed), x, deterministic=True)  # nnx.Rngs(seed): no dropout stream
    native = pn.linen_module("noisy", int(features)).apply(pn.linen_variables(m), x, deterministic=True)
    got = m(x, deterministic=True)
    assert_equal("output", got[0], native[0], "Linen's deterministic output")
    assert_equal("dropout probe", got[1], native[1], "all ones")
    """
    with numerics(case), reporting("deterministic=True draws no key: Linen's deterministic output, any stream", case, check):
        from flax import nnx

        x = case_x(case)
        m = pn.wrapped("noisy", case.features_int, case.seed_int, x, deterministic=True)
        native = pn.linen_module("noisy", case.features_int).apply(pn.linen_variables(m), x, deterministic=True)
        assert_equal("Linen's deterministic dropout probe", native[1], np.ones(config.TONNX_DROPOUT_CELLS, np.float32),
                     "ones: nothing dropped")
        _assert_outputs_equal("m(x, deterministic=True), without a dropout stream", m(x, deterministic=True), native,
                              "Linen's own deterministic apply (no rngs)")
        for k in (k1, k2):
            _assert_outputs_equal(f"m(x, deterministic=True, rngs=nnx.Rngs(dropout={k}))",
                                  m(x, deterministic=True, rngs=nnx.Rngs(dropout=k)), native,
                                  "Linen's own deterministic apply: the key must not matter")
