"""Module properties whose premise is a fact about the layer, taken from its NNX class run natively.

"Distinct seeds give distinct params" is false for a zero-initialised scale;
"evaluation ignores stream keys" is false for a layer that samples in every
mode; "a training step updates batch_stats" is false for an inference-mode
BatchNorm. So each property here first asks the layer itself
(conformance/modules/premises.py, the same class run without the bridge), and
demands of the bridged module what the class does natively. Where the fact
does not hold, the property checks the layer's own behaviour instead, or skips
naming the fact; it never fails a correct layer and never passes without
checking something.

``test_module_matches_native`` is the differential property: the bridged
module and the native class, given the same (perturbed) variables and inputs,
agree within the running-error bounds of both computations.
"""

import numpy as np
import pytest

from conformance.core import config
from conformance.helpers.harness import given_data
from conformance.modules import module_harness as zh
from conformance.modules import native, premises
from conformance.properties.modules._draws import draw as _draw, other as _other, premise_skip as _premise_skip, why as _why


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_distinct_seeds_distinct_params(spec, data):
    """Each param depends on the seed exactly where the class draws it from its params key (a zero scale does not)."""
    x, seed, _ = _draw(data, spec)
    other = _other(data, seed, "other seed")
    seeded = premises.seed_dependent_params(spec, seed, other)
    a = zh.array_leaves({"params": zh.init(spec, seed, x).get("params", {})})
    b = zh.array_leaves({"params": zh.init(spec, other, x).get("params", {})})
    for path in sorted(a):
        if path in seeded:
            assert b.get(path) is None or not np.array_equal(a[path], b[path]), _why(
                spec, f"{path}: seeds {seed} and {other} give identical values, but the class draws it from its "
                      "params key natively (two keys, two values)")
        else:
            zh.assert_same_arrays(path, b.get(path), a[path], _why(
                spec, f"seeds {seed} and {other}: the class draws {path} without its params key natively "
                      "(a constant initialiser), so every seed must give the same values"))
    if not seeded:
        _premise_skip(spec, "no param depends on the params key natively (constant initialisers): checked "
                               "instead that distinct seeds give identical params")


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_apply_uses_given_params(spec, data):
    """apply answers for the variables it is given: another seed's params exactly, and moved params where they matter.

    The params are moved around their values (premises.perturbed: a zero
    scale becomes non-zero), evaluated natively with the same stream keys: where
    the class's output changes with them, the bridged output must change too.
    """
    x, seed, key = _draw(data, spec)
    other = _other(data, seed, "other seed")
    v, w = zh.init(spec, seed, x), zh.init(spec, other, x)
    if not zh.array_leaves(v.get("params", {})):
        pytest.skip(_why(spec, "the layer has no params: apply has none to take"))
    mixed = {**v, "params": w["params"]}
    y_w, y_mixed = zh.jit_evaluate(spec)(w, x), zh.jit_evaluate(spec)(mixed, x)
    zh.assert_same_arrays("y", y_mixed, y_w, _why(spec, f"apply with seed {other}'s params (and seed {seed}'s other state)"))
    moved = {**v, "params": premises.perturbed({"params": v["params"]}, seed)["params"]}
    keys = native.stream_keys(spec, key)
    n_v, _ = native.jit_call(spec, "eval")(v, x, keys)
    n_moved, _ = native.jit_call(spec, "eval")(moved, x, keys)
    if not zh.arrays_differ(n_v, n_moved):
        _premise_skip(spec, "the class's output does not depend on its params natively (moved params, same "
                               "output): checked instead that apply takes another seed's params exactly")
    assert zh.arrays_differ(zh.jit_evaluate(spec)(v, x), zh.jit_evaluate(spec)(moved, x)), _why(
        spec, f"apply gives the same output for seed {seed}'s params and for those params moved, but the class's "
              "output changes with them natively: apply ignores the params it is given")


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_apply_is_pure(spec, data):
    """apply leaves the variables it is given as they were; evaluation uses stream keys exactly as the class does.

    A layer that samples in every mode (a VAE's reparameterisation) draws in
    evaluation too: natively its output changes with the keys, so the bridged
    output must change with them; any other layer's evaluation ignores them.
    """
    x, seed, key = _draw(data, spec)
    other = _other(data, key, "other key seed")
    v = zh.init(spec, seed, x)
    before = {p: a.copy() for p, a in zh.array_leaves(v).items()}
    zh.train(spec, v, x, zh.stream_keys(spec, key))
    zh.assert_same_arrays("variables", v, before, _why(spec, "variables after a training-mode apply"))
    streams = spec.rng_streams or ("dropout",)
    keyed = zh.evaluate(spec, v, x, rngs=zh.stream_keys(spec, key, streams))
    if premises.samples_in(spec, "eval", v, x, key, other):
        keyed_other = zh.evaluate(spec, v, x, rngs=zh.stream_keys(spec, other, streams))
        assert zh.arrays_differ(keyed, keyed_other), _why(
            spec, f"evaluation with stream keys from seeds {key} and {other} gives the same output, but the class "
                  "samples in evaluation mode natively (two keys, two outputs): the keys do not reach it")
        return
    plain = zh.evaluate(spec, v, x)
    zh.assert_same_arrays("y", keyed, plain, _why(spec, "evaluation mode with and without stream keys (the class "
                                                        "draws nothing in evaluation mode natively)"))


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_mutable_state_round_trip(spec, data):
    """Declared mutable collections: those a native training step updates feed back; the others come back unchanged.

    An inference-mode BatchNorm declared mutable only reads its statistics:
    natively a step leaves them, so the bridged step must return them as given.
    """
    if not spec.mutable:
        pytest.skip(_why(spec, "declares no mutable collection"))
    x, seed, key = _draw(data, spec)
    v = zh.init(spec, seed, x)
    missing = sorted(set(spec.mutable) - set(v))
    assert not missing, _why(spec, f"mutable names {missing}, which init does not create; declare mutable= with the "
                                   f"collections init creates besides 'params': {sorted(set(v) - {'params'})}")
    updated = premises.collections_a_step_updates(spec, v, x, key)
    keys = zh.stream_keys(spec, key)
    _, u1 = zh.jit_train(spec)(v, x, keys)
    for c in sorted(set(spec.mutable) - updated):
        zh.assert_same_arrays(c, u1.get(c), v[c], _why(spec, f"a native training step leaves {c} as it is (only "
                                                              "read), so the bridged step must return it unchanged"))
    if not updated:
        _premise_skip(spec, f"no declared mutable collection changes in a native training step ({list(spec.mutable)} "
                               "are only read; declare them readonly=): checked instead that they come back unchanged")
    assert zh.arrays_differ({c: u1[c] for c in updated}, {c: v[c] for c in updated}), _why(
        spec, f"a training step must update {sorted(updated)}, as it does natively")
    v1 = {**v, **{c: u1[c] for c in spec.mutable}}
    _, u2 = zh.jit_train(spec)(v1, x, keys)
    # The second step starts from the first's state: applying it to the initial state would give u1 again.
    assert zh.arrays_differ({c: u2[c] for c in updated}, {c: u1[c] for c in updated}), _why(
        spec, "the second step must start from the first step's state")


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_created_collections_collected(spec, data):
    """Collections the call creates (``created``): training-mode apply returns them with the paths the class creates."""
    if not spec.created:
        pytest.skip(_why(spec, "declares no collection created during the call"))
    x, seed, key = _draw(data, spec)
    v = {c: t for c, t in zh.init(spec, seed, x).items() if c in spec.collections}
    made = premises.created_by_the_call(spec, v, x, key)
    _, upd = zh.jit_train(spec)(v, x, zh.stream_keys(spec, key))
    for c in spec.created:
        assert c in made, _why(spec, f"declares created={spec.created!r}, but the class natively creates "
                                     f"{sorted(made) or 'no collection'} during the call")
        want = {p: np.shape(a) for p, a in zh.array_leaves({c: made[c]}).items()}
        got = {p: np.shape(a) for p, a in zh.array_leaves({c: upd.get(c, {})}).items()}
        assert got == want, _why(spec, f"apply(..., mutable={list(spec.collected)}) returned {c} {got}, but the call "
                                       f"creates {want} natively")


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_matches_native(spec, data):
    """The bridged module and its NNX class run natively, same moved variables and inputs: the same numbers.

    Evaluation mode, and training mode where the class draws nothing then
    (two stream keys, one output natively: Linen and NNX route keys
    differently, so sampled values are compared only through the other
    properties). Every float variable is moved first (premises.perturbed), so
    a bridge that ignores stored statistics or a zero-initialised scale is
    seen. Each side is within its running-error bound E of the exact value,
    so the two differ by at most E_bridged + E_native (numerics/running_error.py).
    """
    x, seed, key = _draw(data, spec)
    other = _other(data, key, "other key seed")
    v = zh.init(spec, seed, x)
    moved = premises.perturbed({c: t for c, t in v.items() if c in spec.collections}, seed)
    keys = native.stream_keys(spec, key)
    compared = []
    for mode in ("eval", "train"):
        if premises.samples_in(spec, mode, moved, x, key, other):
            continue
        if mode == "eval":
            y = zh.jit_evaluate(spec)(moved, x)
            bridged, b_bound = zh.evaluate_fn(spec), (moved, x)
            got = {"y": y}
        else:
            y, upd = zh.jit_train(spec)(moved, x, zh.stream_keys(spec, key))
            bridged, b_bound = zh.train_fn(spec), (moved, x, zh.stream_keys(spec, key))
            got = {"y": y, **{c: upd[c] for c in spec.mutable if c in upd}}
        n_y, n_state = native.jit_call(spec, mode)(moved, x, keys)
        want = {"y": n_y, **({c: n_state[c] for c in spec.mutable if c in n_state} if mode == "train" else {})}
        e_bridged = zh.difference_bound(bridged, *b_bound)
        e_native = zh.difference_bound(native.call_fn(spec, mode), moved, x, keys)
        bound = zh.halved_sum(_as_outputs(mode, e_bridged, spec), _as_outputs(mode, e_native, spec, native_side=True))
        zh.trees_within_model("out", got, want, bound, _why(
            spec, f"{mode} mode: bridged apply against the class run natively, the same moved variables"))
        compared.append(mode)
    if not compared:
        _premise_skip(spec, "the class samples in both modes natively (two stream keys, two outputs): Linen and "
                               "NNX route keys differently, so its numbers are compared through the golden record")


def _as_outputs(mode, bound, spec, native_side=False):
    """A bound tree shaped like the compared ``{"y": ..., collection: ...}``."""
    y, state = bound if (mode == "train" or native_side) else (bound, {})
    if mode == "eval":
        return {"y": y}
    return {"y": y, **{c: state[c] for c in spec.mutable if c in state}}
