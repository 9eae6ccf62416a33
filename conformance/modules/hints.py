"""Hints for a declared layer that raised: chosen by what was being done and by what the declaration says.

An error a layer raises during a property carries a note naming the
declaration, the step (``init``, a training- or evaluation-mode apply, the vmap
over rows...) and the declaration fields that would fix it. The hints are
derived from the step, the declaration and the layer itself (its method's
signature, the modules it holds), never from the exception: the same message
can come from a missing keyword or from a layer that needs its batch axis.

Each :class:`Hint` also carries its ``fix``, the fields it advises, so
tests/test_hints.py can follow every hint and check that the declaration
then runs every step.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
from typing import Any, Mapping

from conformance.modules.declare import ModuleSpec

# A mode keyword's value in training and in evaluation (init runs in evaluation mode).
MODE_KEYWORDS = {"deterministic": (False, True), "train": (True, False), "training": (True, False),
                 "is_training": (True, False), "use_running_average": (False, True)}
STEPS = ("init", "training-mode apply", "evaluation-mode apply", "vmap over rows", "vmap over calls", "gradient")
# The step a property is taking, when it is more than the apply inside it (the vmap property's "vmap over rows").
STEP = contextvars.ContextVar("conformance_step", default=None)


@dataclasses.dataclass(frozen=True)
class Hint:
    text: str
    fix: Mapping[str, Any]  # the ModuleSpec fields the hint advises


def _parameters(spec: ModuleSpec) -> list:
    fn = getattr(spec.nnx_class, spec.method or "__call__", None)
    try:
        return list(inspect.signature(fn).parameters.values())[1:]  # without self
    except (TypeError, ValueError):
        return []


def _mode_keywords(spec: ModuleSpec) -> list[str]:
    return [p.name for p in _parameters(spec) if p.name in MODE_KEYWORDS]


def _rngs_parameter(spec: ModuleSpec) -> str | None:
    """The called method's parameter that takes an ``nnx.Rngs``: annotated so, or named ``rngs`` without an
    annotation; not one every example call already gives (a raw key, as bonsai's ConvNeXt takes)."""
    given = set.intersection(*(set(c.kwargs) for c in spec.calls)) if spec.calls else set()
    for p in _parameters(spec):
        if p.name in given:
            continue
        if "Rngs" in str(p.annotation) or (p.name == "rngs" and p.annotation is p.empty):
            return p.name
    return None


def _missing(spec: ModuleSpec, step_kwargs: Mapping) -> list[str]:
    """Required parameters of the called method that no example call nor the step's keywords give."""
    nargs = min(len(c.args) for c in spec.calls)
    given = set(step_kwargs) | set.intersection(*(set(c.kwargs) for c in spec.calls))
    out = []
    for i, p in enumerate(_parameters(spec)):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
            continue
        if p.kind != p.KEYWORD_ONLY and i < nargs:
            continue
        if p.name not in given:
            out.append(p.name)
    return out


def _switches_by_attributes(spec: ModuleSpec) -> bool:
    """Whether the class holds layers whose mode is an attribute (Dropout's deterministic, BatchNorm's use_running_average)."""
    from conformance.modules import native

    return any(hasattr(m, "deterministic") or hasattr(m, "use_running_average") for m in native.held_modules(spec))


def _draws_dropout(spec: ModuleSpec) -> bool:
    """A held Dropout with a rate, or a layer with a dropout rate of its own (nnx.MultiHeadAttention's dropout_rate)."""
    from conformance.modules import native

    return any((isinstance(m, native.nnx.Dropout) and getattr(m, "rate", 0)) or (getattr(m, "dropout_rate", 0) or 0) > 0
               for m in native.held_modules(spec))


def hints(spec: ModuleSpec, step: str) -> list[Hint]:
    """What the declaration could say differently for ``step`` to run, most specific first."""
    from conformance.modules import native

    if native.needs_stream_to_build(spec, "dropout"):  # nothing runs before the layer is built: the one hint that matters
        streams = (*spec.rng_streams, "dropout")
        return [Hint(f"{getattr(spec.nnx_class, '__name__', 'the layer')} is not built without a 'dropout' stream "
                     f"(it holds a layer that takes its dropout key at construction, an attention with a dropout rate "
                     f"above 0, say): declare rng_streams={streams!r}", {"rng_streams": streams})]
    out: list[Hint] = []
    modes = _mode_keywords(spec)
    if spec.mode_switch == "keywords" and modes:
        undeclared = [k for k in modes if not all(k in kw for kw in (spec.init_kwargs, spec.train_kwargs,
                                                                      spec.eval_kwargs))]
        if undeclared:
            fix = {"init_kwargs": {**spec.init_kwargs, **{k: MODE_KEYWORDS[k][1] for k in undeclared}},
                   "train_kwargs": {**spec.train_kwargs, **{k: MODE_KEYWORDS[k][0] for k in undeclared}},
                   "eval_kwargs": {**spec.eval_kwargs, **{k: MODE_KEYWORDS[k][1] for k in undeclared}}}
            out.append(Hint(f"{_called(spec)} takes the mode keyword(s) {undeclared}: declare them for each step, "
                            + ", ".join(f"{f}={v!r}" for f, v in fix.items()), fix))
    rngs = _rngs_parameter(spec)
    if rngs and spec.call_rngs is None:
        fix = {"call_rngs": rngs, "rng_streams": spec.rng_streams or ("dropout",)}
        out.append(Hint(f"{_called(spec)} takes an nnx.Rngs as {rngs!r}: declare call_rngs={rngs!r} and the streams "
                        f"it holds in training, rng_streams={fix['rng_streams']!r}", fix))
    if spec.mode_switch == "keywords" and not modes and _switches_by_attributes(spec):
        out.append(Hint(f"{_called(spec)} takes no mode keyword, and the layer holds Dropout or BatchNorm layers: if "
                        "it switches mode with .train()/.eval() (nnx.view), declare mode_switch='train_eval'",
                        {"mode_switch": "train_eval"}))
    if step in ("init", "training-mode apply", "evaluation-mode apply", "gradient"):
        step_kwargs = {"init": spec.init_kwargs, "evaluation-mode apply": spec.eval_kwargs}.get(step, spec.train_kwargs)
        missing = [m for m in _missing(spec, step_kwargs) if m not in modes and m != rngs]
        if missing:
            out.append(Hint(f"{_called(spec)} requires {missing}, which neither the example calls nor the {step}'s "
                            "keywords give: arrays go in Call(args=..., kwargs=...), flags in init_kwargs, train_kwargs "
                            "and eval_kwargs", {}))
    if step in ("init", "training-mode apply", "gradient") and not spec.rng_streams and _draws_dropout(spec):
        out.append(Hint("the layer holds a Dropout or a dropout rate: declare the stream it is built with and draws "
                        "from in training, rng_streams=('dropout',)", {"rng_streams": ("dropout",)}))
    if step == "vmap over rows" and spec.batch_axis is not None:
        out.append(Hint(f"the layer fails on one row of batch_axis={spec.batch_axis} at a time: if it needs its batch "
                        "axis (convolutions, BatchNorm in training, RNNs, attention), declare batch_axis=None: the vmap "
                        "property then maps over a new leading axis of whole calls", {"batch_axis": None}))
    if (spec.method or spec.mode_switch != "keywords" or spec.call_rngs) and not _takes_nnx_method():
        out.append(Hint("method=, mode_switch='train_eval' and call_rngs need a flax whose to_linen modules take "
                        "nnx_method (flax >= 0.10)", {}))
    return out


def _called(spec: ModuleSpec) -> str:
    return f"{getattr(spec.nnx_class, '__name__', 'the layer')}.{spec.method or '__call__'}"


def _takes_nnx_method() -> bool:
    from reference import _compat

    return "nnx_method" in inspect.signature(_compat.bridge.ToLinen.__call__).parameters


def note(spec: ModuleSpec, step: str) -> str:
    """The note an error raised during ``step`` carries: the declaration, the step, and its hints."""
    step = STEP.get() or step
    found = hints(spec, step)
    advice = "; ".join(f"({i}) {h.text}" for i, h in enumerate(found, 1)) if found else (
        "nothing in the declaration explains it: the layer itself raised")
    return f"raised by the layer during {step} of {spec.declared()}; {advice} (README: 'Declaring real layers')"
