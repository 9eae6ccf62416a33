"""Every hint's advice is followed: a declaration that fails, mended only as its notes say, then runs every step.

A layer is declared as a newcomer would (fields left out); each step the
module properties take (init, training- and evaluation-mode apply, the vmap
against the batch, the variables tree) runs; where it fails, the fields of
the hints its note gives are applied, and the steps run again. The loop must
end in a declaration that runs every step, within a few rounds, and each
note must hold the hints that were followed (chosen by the step and the
declaration, so an einsum's ValueError and a dot_general's TypeError in the
vmap get the same advice).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from conformance.modules import hints, module_harness as zh, premises
from conformance.modules.declare import Call, ModuleSpec
from reference import _compat

nnx = _compat.nnx
ROUNDS = 4


class KeywordDropout(nnx.Module):
    """Switched by a keyword, as Linen-style layers are: ``deterministic`` is required."""

    def __init__(self, width, features, rngs):
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x, deterministic: bool):
        return self.dropout(self.linear(x), deterministic=deterministic)


class TutorialStyle(nnx.Module):
    """The NNX MNIST tutorial's style: .train()/.eval(), an nnx.Rngs at call time, BatchNorm statistics."""

    def __init__(self, width, features, rngs):
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.bn = nnx.BatchNorm(features, rngs=rngs)
        self.dropout = nnx.Dropout(0.5)

    def __call__(self, x, rngs: nnx.Rngs | None = None):
        return self.dropout(nnx.relu(self.bn(self.linear(x))), rngs=rngs)


class EinsumOverSequence(nnx.Module):
    """Gemma-style: an einsum over (batch, time, features) that needs its batch axis."""

    def __init__(self, width, features, rngs):
        self.w = nnx.Param(nnx.initializers.normal()(rngs.params(), (width, features)))

    def __call__(self, x):
        return jnp.einsum("btd,df->btf", x, self.w[...])


class DotOverSequence(nnx.Module):
    """The same contraction as a dot_general: another exception type, the same advice."""

    def __init__(self, width, features, rngs):
        self.w = nnx.Param(nnx.initializers.normal()(rngs.params(), (width, features)))

    def __call__(self, x):
        assert x.ndim == 3, f"expects (batch, time, features), got {x.shape}"
        return jax_dot(x, self.w[...])


def jax_dot(x, w):
    import jax

    return jax.lax.dot_general(x, w, (((2,), (0,)), ((), ())))


class FrozenNorm(nnx.Module):
    """An inference-mode BatchNorm: its statistics are only read."""

    def __init__(self, width, features, rngs):
        self.bn = nnx.BatchNorm(width, use_running_average=True, rngs=rngs)
        self.linear = nnx.Linear(width, features, rngs=rngs)

    def __call__(self, x):
        return self.linear(self.bn(x))


class AttentionBuiltWithDropout(nnx.Module):
    """bonsai's Whisper encoder layer: an attention with a dropout rate, built with rngs, always called deterministic."""

    def __init__(self, width, features, rngs):
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=width, dropout_rate=0.1, decode=False, rngs=rngs)
        self.linear = nnx.Linear(width, features, rngs=rngs)

    def __call__(self, x, mask):
        return self.linear(self.attn(x, mask=mask, deterministic=True))


def _x(*shape):
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _run_steps(spec):
    """The steps of the module properties, each raising with its note; None when every step runs."""
    from conformance.properties.modules.test_modules import _vmap_against_batch

    x = spec.calls[0]
    v = zh.init(spec, 0, x)
    found = premises.collections_hints(spec, v)
    if found:
        return "variables tree", found
    zh.train(spec, v, x, zh.stream_keys(spec, 0))
    zh.evaluate(spec, v, x)
    step = "vmap over calls" if spec.batch_axis is None else "vmap over rows"
    call = (zh.row_calls(spec) or [x])[0]
    with zh.step(step), zh.explained(spec, step):
        _vmap_against_batch(spec, v, call)
    return None


def _step_of(note: str) -> str:
    return next(s for s in hints.STEPS if f"during {s} of" in note)


def follow(spec):
    """Mend ``spec`` by its hints until every step runs: (the mended spec, [(step, [hint texts]), ...])."""
    followed = []
    for _ in range(ROUNDS):
        try:
            failed = _run_steps(spec)
        except Exception as exc:  # noqa: BLE001 - the layer's own error, with the suite's note
            notes = "\n".join(getattr(exc, "__notes__", []))
            assert "raised by the layer during" in notes, f"{spec.name}: {type(exc).__name__} without a note: {exc}"
            step = _step_of(notes)
            found = hints.hints(spec, step)
            for h in found:
                assert h.text in notes, f"{spec.name}: the note of {step} lacks the hint {h.text!r}:\n{notes}"
        else:
            if failed is None:
                return spec, followed
            step, found = failed
        fixes = [h for h in found if h.fix]
        assert fixes, f"{spec.name}: {step} failed and no hint says what to declare"
        followed.append((step, [h.text for h in fixes]))
        for h in fixes:
            spec = dataclasses.replace(spec, **h.fix)
    raise AssertionError(f"{spec.name}: still failing after following {len(followed)} rounds of hints: {followed}")


CASES = {
    "keyword_dropout": (ModuleSpec(name="hint_keyword_dropout", nnx_class=KeywordDropout,
                                   kwargs=dict(width=4, features=3), inputs=(_x(2, 4),)),
                        dict(init_kwargs={"deterministic": True}, train_kwargs={"deterministic": False},
                             eval_kwargs={"deterministic": True}, rng_streams=("dropout",))),
    "tutorial_style": (ModuleSpec(name="hint_tutorial_style", nnx_class=TutorialStyle,
                                  kwargs=dict(width=4, features=3), inputs=(_x(2, 4),)),
                       dict(mode_switch="train_eval", call_rngs="rngs", rng_streams=("dropout",),
                            mutable=("batch_stats",))),
    "einsum_over_sequence": (ModuleSpec(name="hint_einsum", nnx_class=EinsumOverSequence,
                                        kwargs=dict(width=4, features=3), inputs=(_x(2, 5, 4),)),
                             dict(batch_axis=None)),
    "dot_over_sequence": (ModuleSpec(name="hint_dot", nnx_class=DotOverSequence,
                                     kwargs=dict(width=4, features=3), inputs=(_x(2, 5, 4),)),
                          dict(batch_axis=None)),
    "attention_built_with_dropout": (ModuleSpec(name="hint_attention_dropout", nnx_class=AttentionBuiltWithDropout,
                                                kwargs=dict(width=4, features=3), batch_axis=None,
                                                inputs=(Call(args=(_x(2, 5, 4), np.tril(np.ones((5, 5), bool)))),)),
                                     dict(rng_streams=("dropout",), mode_switch="keywords")),
    "frozen_norm": (ModuleSpec(name="hint_frozen_norm", nnx_class=FrozenNorm, kwargs=dict(width=4, features=3),
                               inputs=(_x(2, 4),)),
                    dict(readonly=("batch_stats",))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_following_the_hints_ends_in_a_declaration_that_runs(case):
    spec, expected = CASES[case]
    mended, followed = follow(spec)
    assert followed, f"{case}: the naive declaration ran every step; the case proves nothing"
    for field, value in expected.items():
        assert getattr(mended, field) == value, (f"{case}: following the hints set {field}={getattr(mended, field)!r}, "
                                                 f"but the layer needs {value!r} ({followed})")


def test_the_vmap_hint_depends_on_the_declaration_not_on_the_exception():
    """An einsum's ValueError and a dot_general's error in the vmap get the same advice; with batch_axis=None, none."""
    einsum, _ = CASES["einsum_over_sequence"]
    dot, _ = CASES["dot_over_sequence"]
    texts = [[h.text for h in hints.hints(s, "vmap over rows")] for s in (einsum, dot)]
    assert texts[0] == texts[1] and any("batch_axis=None" in t for t in texts[0]), texts
    assert not any("batch_axis" in h.text for h in hints.hints(dataclasses.replace(einsum, batch_axis=None),
                                                                "vmap over calls"))


def test_no_mode_keyword_hint_for_a_layer_without_that_keyword():
    """The tutorial's layer has no deterministic keyword: its hints never advise init_kwargs={'deterministic': ...}."""
    spec, _ = CASES["tutorial_style"]
    for step in hints.STEPS:
        for h in hints.hints(spec, step):
            assert "init_kwargs" not in h.fix and "deterministic" not in h.text, (step, h)


def test_the_stream_a_layer_needs_to_be_built_is_read_off_the_class():
    """Built natively with only params and the declared streams, then with the stream too: only the contrast counts."""
    from conformance.modules import native

    spec, _ = CASES["attention_built_with_dropout"]
    assert native.needs_stream_to_build(spec, "dropout")
    assert not native.needs_stream_to_build(dataclasses.replace(spec, rng_streams=("dropout",)), "dropout")
    tutorial, _ = CASES["tutorial_style"]  # its Dropout is built without rngs: it gets its key at call time
    assert not native.needs_stream_to_build(tutorial, "dropout")
    assert [h.fix for h in hints.hints(spec, "init")] == [{"rng_streams": ("dropout",)}]
