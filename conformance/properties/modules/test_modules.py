"""Generic properties of every declared module: the zoo's and the team's own (``--module``).

Each test runs once per :class:`~conformance.declare.ModuleSpec` (the test id
names it); the RNG-stream and mutable-state properties skip modules that
declare none. Two float32 evaluations of the same module (jit and eager, rows
and batch) are compared with the three-outcome error model (identical, drift
within the bound, changed); the bound is the running-error analysis of the
computation itself (numerics/running_error.py), so it holds on any layer.
Example calls are any pytrees of any dtype; outputs are any pytree.
"""

import functools

import jax
import numpy as np
import pytest
from hypothesis import strategies as st

from conformance.core import config
from conformance.modules import module_harness as zh
from conformance.modules import hints, native, premises
from conformance.helpers.harness import given_data
from conformance.helpers.pytest_helpers import assert_equal, tree_paths
from conformance.properties.modules._draws import SEEDS, draw as _draw, premise_skip as _premise_skip, why as _why



@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_deterministic(spec, data):
    """Same key, same variables; same variables, input and stream keys, same output and updates."""
    x, seed, key = _draw(data, spec)
    v1, v2 = zh.init(spec, seed, x), zh.init(spec, seed, x)
    zh.assert_same_arrays("variables", v2, v1, _why(spec, "init twice with the same key"))
    keys = zh.stream_keys(spec, key)
    y1, u1 = zh.jit_train(spec)(v1, x, keys)  # compiled, as a pipeline runs it (eager: test_module_jit_matches_eager)
    y2, u2 = zh.jit_train(spec)(v1, x, keys)
    zh.assert_same_arrays("y", y2, y1, _why(spec, "training-mode apply twice with the same keys"))
    zh.assert_same_arrays("updates", u2, u1, _why(spec, "training-mode apply twice with the same keys"))


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_jit_matches_eager(spec, data):
    x, seed, key = _draw(data, spec)
    v = zh.init(spec, seed, x)
    keys = zh.stream_keys(spec, key)
    y_eager, u_eager = zh.train(spec, v, x, keys)
    y_jit, u_jit = zh.jit_train(spec)(v, x, keys)
    y_bound, u_bound = zh.difference_bound(zh.train_fn(spec), v, x, keys)
    zh.trees_within_model("y", y_jit, y_eager, y_bound, _why(spec, "jit(apply) against eager apply, training mode"))
    zh.trees_within_model("updates", u_jit, u_eager, u_bound, _why(spec, "updated state, jit against eager"))


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_vmap_matches_batch(spec, data):
    """Evaluation mode: vmap over independent rows equals applying the layer to them together (state not updated).

    Rows along the declared ``batch_axis``; with ``batch_axis=None`` (a layer
    that needs its batch axis) whole calls stacked on a new leading axis,
    against each call applied alone.
    """
    calls = zh.row_calls(spec)
    if not calls:
        pytest.skip(_why(spec, f"no example call has rows along batch_axis={spec.batch_axis} (every leaf needs an "
                               "axis beyond it); declare batch_axis=None to map over whole calls"))
    call = calls[data.draw(st.integers(0, len(calls) - 1), label="batched call")]
    seed = data.draw(SEEDS, label="params seed")
    v = zh.init(spec, seed, call)
    if premises.samples_in(spec, "eval", v, call, seed, (seed + 1) % 2**31):
        _premise_skip(spec, "the class samples in evaluation mode natively (two stream keys, two outputs): rows "
                               "mapped one at a time draw other noise than the batch drawn at once")
    step = "vmap over calls" if spec.batch_axis is None else "vmap over rows"
    with zh.step(step), zh.explained(spec, step):  # a failure here, raised or compared, carries this step's hints
        try:
            _vmap_against_batch(spec, v, call)
        except Exception:
            # Only a failure asks the class: does it, run natively, map its rows as it batches them?
            if not premises.maps_rows_as_batched(spec, v, call, _vmap_against_batch):
                _premise_skip(spec, f"the class natively gives other outputs for the {_units(spec)} mapped one at a "
                                    f"time than for them together (evaluation mode): they are not independent to it"
                                    f"{'' if spec.batch_axis is None else '; declare batch_axis=None if it needs its batch axis'}")
            raise


def _units(spec) -> str:
    return "whole calls" if spec.batch_axis is None else f"rows of batch_axis={spec.batch_axis}"


def _vmap_against_batch(spec, v, call, evaluate=None, vmap_evaluate=None):
    """``evaluate(v, call)`` against ``vmap_evaluate(in_axis, out_axis)(v, call)`` within the bridged module's bound
    (both the bridged module's unless given: the premise runs the class natively through the same comparison)."""
    evaluate = evaluate or zh.jit_evaluate(spec)
    vmap_evaluate = vmap_evaluate or functools.partial(zh.jit_vmap_evaluate, spec)
    if spec.batch_axis is None:
        batch, parts = zh.stacked(call)
        mapped = vmap_evaluate(0, 0)(v, batch)
        for i, part in enumerate(parts):
            y = evaluate(v, part)
            zh.trees_within_model(f"y[{i}]", jax.tree_util.tree_map(lambda a, i=i: a[i], mapped), y,
                                  zh.difference_bound(zh.evaluate_fn(spec), v, part),
                                  _why(spec, f"vmap over a new leading axis of calls: call {i} against it alone"))
        return
    ax = spec.batch_axis
    y = evaluate(v, call)
    rows = vmap_evaluate(ax, ax)(v, call)
    # An output without the batch axis (a count, a loss) is the same for every row: each row's copy against it.
    rows = jax.tree_util.tree_map(lambda r, b: r if np.ndim(r) == np.ndim(b) else _one_copy(spec, r, ax), rows, y)
    zh.trees_within_model("y", rows, y, zh.difference_bound(zh.evaluate_fn(spec), v, call),
                          _why(spec, f"vmap over the rows of batch_axis={ax} against the batch"))


def _collections_hint(spec, v) -> str:
    found = premises.collections_hints(spec, v)
    return "; ".join(h.text for h in found) + (" (a Variable subclass's collection is named after the class, or the "
                                               "name given to nnx.register_variable_name)") if found else ""


def _one_copy(spec, mapped, ax):
    """The rows' copies of an output that has no batch axis: all the same, so one of them."""
    copies = np.moveaxis(np.asarray(mapped), ax, 0)
    for i in range(1, copies.shape[0]):
        assert_equal(f"y (row {i}'s copy)", copies[i], copies[0], _why(spec, "an output without the batch axis, per row"))
    return copies[0]


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_grads(spec, data):
    """Gradients of a loss through training-mode apply: the params' tree, finite, some non-zero; two compilations agree.

    The bridge runs under tracers whether ``grad`` is jitted or not (JVP
    tracers either way), so its eager path is test_module_jit_matches_eager's;
    here ``jit(grad)`` is compared with the gradient the running-error analysis
    evaluates (the same computation compiled with the analysis around it).
    """
    x, seed, key = _draw(data, spec)
    v = zh.init(spec, seed, x)
    keys = zh.stream_keys(spec, key)
    if not zh.array_leaves(v.get("params", {})):
        pytest.skip(_why(spec, "the layer has no params: nothing to differentiate"))
    rest = {c: t for c, t in v.items() if c != "params"}
    grad = zh.loss_grad_fn(spec)
    with zh.step("gradient"):
        g = jax.jit(grad)(v["params"], rest, x, keys)
    gp, pp = tree_paths({"params": g}), tree_paths({"params": v["params"]})
    assert sorted(gp) == sorted(pp), _why(spec, f"gradient leaves {sorted(gp)}, but should be {sorted(pp)}")
    for path, leaf in gp.items():
        assert np.shape(leaf) == np.shape(pp[path]), _why(spec, f"{path}: gradient shape {np.shape(leaf)}, params {np.shape(pp[path])}")
        assert np.all(np.isfinite(leaf)), _why(spec, f"{path}: gradient has non-finite values")
    assert any(np.any(np.asarray(a) != 0) for a in gp.values()), _why(spec, "every gradient is zero: apply ignores params")
    # The running-error bound of the gradient's own computation: a gradient that is zero by
    # symmetry gets the rounding of the terms that cancelled, not zero.
    g_analysed, bound = zh.value_and_difference_bound(grad, v["params"], rest, x, keys)
    zh.trees_within_model("params", {"params": g}, {"params": g_analysed}, {"params": bound},
                          _why(spec, "jit(grad) against the gradient the running-error analysis evaluates"))


def test_module_works_as_a_jit_static_argument(spec):
    """The bridged module hashes and serves as a jit static argument, where its constructor's arguments hash."""
    unhashable = _unhashable_arguments(spec)
    if unhashable:
        _premise_skip(spec, f"the constructor's {', '.join(unhashable)} cannot be hashed (a dataclass not frozen, a "
                            "list, ...): no Linen module holding it hashes, bridged or not")
    m = zh.linen(spec)
    hash(m)
    x = spec.calls[0]
    v = zh.init(spec, 0, x)
    kw = zh.evaluation_extras(spec)
    y = jax.jit(lambda mod, v, c: mod.apply(v, *c.args, **zh.linen_kwargs(spec, {**c.kwargs, **spec.eval_kwargs}), **kw),
                static_argnums=0)(m, v, zh.as_call(x))
    zh.assert_same_arrays("y", y, zh.jit_evaluate(spec)(v, x), _why(spec, "the module as a jit static argument"))


def _unhashable_arguments(spec) -> list[str]:
    named = [(f"args[{i}]", a) for i, a in enumerate(spec.args)] + [(f"kwargs[{k!r}]", a) for k, a in spec.kwargs.items()]
    out = []
    for name, a in named:
        try:
            hash(a)
        except TypeError:
            out.append(f"{name} ({type(a).__name__})")
    return out


def test_module_variables_tree_structure(spec):
    """init gives params plus the declared mutable and read-only collections, as raw arrays; updates match their paths.

    Collections the call creates (``created``) are collected by training-mode
    apply; whether ``init`` keeps them as Linen's does is
    test_created_collection_kept_by_init's question, so either answer passes here.
    """
    from flax.core import meta

    x = spec.calls[0]
    v = zh.init(spec, 0, x)
    allowed = (sorted(spec.collections), sorted((*spec.collections, *spec.created)))
    assert sorted(v) in allowed, _why(spec, f"collections {sorted(v)}, but should be "
                                      f"{sorted(spec.collections)}; {_collections_hint(spec, v)}")
    v = {c: t for c, t in v.items() if c in spec.collections}
    flat, _ = jax.tree_util.tree_flatten_with_path(v, is_leaf=lambda a: isinstance(a, meta.AxisMetadata))
    for path, leaf in flat:
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        assert isinstance(leaf, jax.Array), _why(spec, f"{name} is a {type(leaf).__name__}, but should be a raw jax.Array")
    _, upd = zh.train(spec, v, x, zh.stream_keys(spec, 0))
    assert sorted(upd) == sorted(spec.collected), _why(
        spec, f"updated collections {sorted(upd)}, but should be {sorted(spec.collected)} (mutable and created)")
    for c in spec.mutable:
        want = {p: np.shape(a) for p, a in tree_paths({c: v[c]}).items()}
        got = {p: np.shape(a) for p, a in tree_paths({c: upd[c]}).items()}
        assert got == want, _why(spec, f"updated {c} {got}, but should have the paths and shapes of init's {want}")


@given_data(config.ZOO_MODULE_EXAMPLE_FRACTION, shrink=False)
def test_module_stream_keys_drive_randomness(spec, data):
    """Where the module declares RNG streams: the output depends on the stream keys.

    Two keys may give the same output by chance: a small layer whose dropout
    sees few non-zero cells agrees on all of them with probability q (0.68 per
    cell at rate 0.2). So the key is compared against ZOO_STREAM_KEY_TRIES
    others and the property fails only if every one gives the same output: a
    correct bridge then fails with probability q ** tries (below 1e-6 for a
    layer with two such cells); one that ignores the key fails every time.
    """
    if not spec.rng_streams:
        pytest.skip(_why(spec, "declares no RNG stream"))
    x, seed, key = _draw(data, spec)
    other = data.draw(SEEDS.filter(lambda s: s != key), label="other key seed")
    v = zh.init(spec, seed, x)
    y1, _ = zh.jit_train(spec)(v, x, zh.stream_keys(spec, key))
    tried = [k for k in ((other + i) % 2**31 for i in range(config.ZOO_STREAM_KEY_TRIES)) if k != key]
    for k in tried:
        y2, _ = zh.jit_train(spec)(v, x, zh.stream_keys(spec, k))
        if zh.arrays_differ(y1, y2):
            return
    # Which side ignores the keys, from the class run natively with the same keys. Where the class itself draws
    # nothing (bonsai's ViT at its published dropout rate of 0) the premise fails: skipped, and the gate compares that
    # fact across sides, so a flax whose own layer stops drawing is still a change.
    native_train = native.jit_call(spec, "train")
    n1, _ = native_train(v, x, native.stream_keys(spec, key))
    if any(zh.arrays_differ(n1, native_train(v, x, native.stream_keys(spec, k))[0]) for k in tried):
        raise AssertionError(_why(spec, f"stream keys from seed {key} and from each of seeds {tried[0]}..{tried[-1]} "
                                        "give the same output; the class's training output changes with them "
                                        "natively: the keys do not reach it"))
    # Natively nothing is drawn either. The suite's own layers (its zoo and real-layer tier) draw from every stream
    # they declare, by construction: there it is flax's own layer that stopped. Of a layer others wrote, one run cannot
    # tell that from a layer that never draws (bonsai's ViT at rate 0; Whisper's encoder layer calls its attention
    # with deterministic=True, though it needs the stream to build it): the premise, which the gate compares across sides.
    if not spec.nnx_class.__module__.startswith("conformance."):
        _premise_skip(spec, f"the class run natively draws nothing from the declared streams {list(spec.rng_streams)} "
                            "in training either (a dropout rate of 0, attention called deterministically): no key "
                            "can change its output")
    raise AssertionError(_why(spec, f"stream keys from seed {key} and from each of seeds {tried[0]}..{tried[-1]} "
                                    f"give the same output, and so does the class run natively, though this suite's "
                                    f"own layer draws from {list(spec.rng_streams)} in training by construction: "
                                    f"flax's own layer stopped drawing (or train_kwargs, now {dict(spec.train_kwargs)}, "
                                    "and mode_switch no longer switch training on)"))


