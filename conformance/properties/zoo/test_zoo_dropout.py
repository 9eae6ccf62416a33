"""Dropout through the bridge: ``apply(..., rngs={"dropout": key})`` as a Linen pipeline calls it.

Zoo module: ``DropoutBlock`` (Linear then ``nnx.Dropout(rate)``), conformance/modules/zoo.py.
The mask is read off the output: a kept cell is ``h / keep``, a dropped one 0,
with ``h`` the block's deterministic output (non-zero almost surely).
"""

import math

import jax
import numpy as np
from hypothesis import strategies as st

from conformance.core import config
from conformance.numerics import errormodel
from conformance.modules import module_harness as zh
from conformance.helpers.harness import given_data
from conformance.helpers.pytest_helpers import assert_close, assert_equal, tree_paths
from conformance.modules import zoo

KEEP = 1.0 - config.ZOO_DROPOUT_RATE


def _spec():
    return zoo.dropout_spec()


def _keys(data, label="dropout key seed"):
    return data.draw(st.integers(0, 2**31 - 1), label=label)


def _mask_and_values(seed_params: int, seed_key: int, x, with_variables: bool = False):
    spec = _spec()
    v = zh.init(spec, seed_params, x)
    h = np.asarray(zh.jit_evaluate(spec)(v, x))
    y, _ = zh.jit_train(spec)(v, x, zh.stream_keys(spec, seed_key))
    return (h, np.asarray(y), v) if with_variables else (h, np.asarray(y))


def dropout_bound(x, variables, h):
    """|y - h / keep| where kept, h from another compiled program than y (errormodel.dropout_error)."""
    p = tree_paths(variables)
    k, b = np.abs(np.asarray(p["params/linear/kernel"], np.float64)), np.abs(np.asarray(p["params/linear/bias"], np.float64))
    return errormodel.dropout_error(h, np.abs(np.asarray(x, np.float64)) @ k + b, x.shape[-1], KEEP)


@given_data(0.25)
def test_zoo_dropout_mask_matches_oracle(data):
    """Kept cells are h / keep (one rounding), dropped cells are exactly 0; the same key gives the same mask."""
    seed, key = data.draw(st.integers(0, 2**31 - 1), label="params seed"), _keys(data)
    x = _spec().inputs[0]
    h, y, v = _mask_and_values(seed, key, x, with_variables=True)
    mask = y != 0
    assert np.all(h != 0), "the deterministic output has exact zeros: the mask cannot be read off"
    expected = np.where(mask, h.astype(np.float64) / KEEP, 0.0)
    bound = np.where(mask, dropout_bound(x, v, h), 0.0)
    assert_close("y", y, expected, bound, f"dropout(h) with keep probability {KEEP}")
    _, y_again = _mask_and_values(seed, key, x)
    assert_equal("mask (same key, second apply)", y_again != 0, mask, "the same dropout key must give the same mask")


@given_data(0.25)
def test_zoo_dropout_distinct_keys_distinct_masks(data):
    seeds = data.draw(st.lists(st.integers(0, 2**31 - 1), min_size=config.ZOO_DISTINCT_KEYS,
                               max_size=config.ZOO_DISTINCT_KEYS, unique=True), label="dropout key seeds")
    x = _spec().inputs[0]
    masks = [(s, _mask_and_values(0, s, x)[1] != 0) for s in seeds]
    # Two independent masks of n cells agree with probability (keep^2 + rate^2)^n: 0.625^512 here.
    for i, (sa, a) in enumerate(masks):
        for sb, b in masks[i + 1:]:
            assert (a != b).any(), f"dropout keys from seeds {sa} and {sb} gave the same mask of {a.size} cells"


def keep_rate_bound(cells: int) -> float:
    """Hoeffding, two-sided: P(|K/n - keep| >= t) <= 2 exp(-2 n t^2) = delta, so t = sqrt(ln(2/delta) / (2n))."""
    return math.sqrt(math.log(2 / config.ZOO_KEEP_RATE_DELTA) / (2 * cells))


@given_data(0.25)
def test_zoo_dropout_keep_rate(data):
    """The kept fraction is within the Hoeffding bound of 1 - rate (fails a correct bridge ~1e-9 of checks)."""
    key = _keys(data)
    x = np.random.default_rng(1).uniform(-1, 1, (config.ZOO_KEEP_RATE_ROWS, config.ZOO_WIDTH)).astype(np.float32)
    _, y = _mask_and_values(0, key, x)
    kept = float(np.mean(y != 0))
    t = keep_rate_bound(y.size)
    assert abs(kept - KEEP) <= t, (
        f"kept fraction {kept:.4f} of {y.size} cells, but should be {KEEP} +- {t:.4f} "
        f"(rate {config.ZOO_DROPOUT_RATE}; Hoeffding bound at delta={config.ZOO_KEEP_RATE_DELTA:g})"
    )


@given_data(0.25)
def test_zoo_dropout_deterministic_ignores_rngs(data):
    """deterministic=True returns the block's output unmasked, whatever dropout key is passed."""
    key = _keys(data)
    spec = _spec()
    x = spec.inputs[0]
    v = zh.init(spec, 0, x)
    plain = np.asarray(zh.evaluate(spec, v, x))
    keyed = np.asarray(zh.evaluate(spec, v, x, rngs=zh.stream_keys(spec, key)))
    assert_equal("y (deterministic, with a dropout key)", keyed, plain, "deterministic mode must ignore rngs")
    assert np.all(plain != 0), "deterministic mode dropped cells"


def test_zoo_dropout_missing_rng_is_an_error_naming_the_stream():
    """Training-mode apply without a dropout key: an error naming the stream, as Linen's own Dropout raises.

    Linen documents it (``InvalidRngError: ... needs PRNG for "dropout"``); NNX's
    Dropout raises when it has no rngs. A bridge that instead draws a mask from
    a fixed default key makes every step drop the same cells, silently.
    """
    spec = _spec()
    x = spec.inputs[0]
    v = zh.init(spec, 0, x)
    try:
        y = zh.linen(spec).apply(v, x, **spec.train_kwargs)
    except Exception as exc:  # noqa: BLE001 - the type is flax's choice; the message must name the stream
        assert "dropout" in str(exc), f"apply without a dropout key raised without naming the stream: {exc!r}"
        return
    y = np.asarray(y)
    raise AssertionError(
        f"apply in training mode without rngs={{'dropout': ...}} returned an output with {int((y == 0).sum())} of "
        f"{y.size} cells dropped instead of raising: a mask from a fixed default key, the same every step"
    )


def test_zoo_dropout_init_without_stream_names_it():
    """init given only a params key: succeeds, or raises an error naming the missing 'dropout' stream."""
    spec = _spec()
    x = spec.inputs[0]
    try:
        zh.linen(spec).init(jax.random.PRNGKey(0), x)
    except Exception as exc:  # noqa: BLE001
        assert "dropout" in str(exc), f"init without a dropout key raised without naming the stream: {exc!r}"
