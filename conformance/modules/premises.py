"""Facts about a declared layer, taken from the layer itself: its NNX class run natively (native.py).

A property that rests on such a fact (the params depend on the seed,
evaluation draws no randomness, a training step updates this collection)
asks here first. What the class does natively is what the bridged module must
do; where the fact does not hold, the property checks what the layer does
instead, or skips naming the fact.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from conformance.modules import module_harness as zh
from conformance.modules import native
from conformance.modules.hints import Hint
from conformance.modules.declare import ModuleSpec

# Perturbed variables (see perturbed()): params move by this many of their leaf's RMS, other float state
# is scaled by exp(this x N(0, 1)) and shifted up by this x |N(0, 1)| x RMS, which keeps variances positive.
PERTURBATION = 0.5


def seed_dependent_params(spec: ModuleSpec, seed: int, other: int) -> set:
    """Paths of the params the class draws differently from two params keys (a zero-initialised scale does not)."""
    a, b = zh.array_leaves({"params": native.params(spec, seed)}), zh.array_leaves({"params": native.params(spec, other)})
    return {p for p in a if p in b and not np.array_equal(a[p], b[p])}


def samples_in(spec: ModuleSpec, mode: str, variables, x, key: int, other: int) -> bool:
    """Whether the class's output in ``mode`` depends on its stream keys (two keys, two outputs)."""
    fn = native.jit_call(spec, mode)
    y1, _ = fn(variables, x, native.stream_keys(spec, key, _streams(spec)))
    y2, _ = fn(variables, x, native.stream_keys(spec, other, _streams(spec)))
    return zh.arrays_differ(y1, y2)


def maps_rows_as_batched(spec: ModuleSpec, variables, call, compare) -> bool:
    """Whether the class, run natively in evaluation mode, maps its rows (or whole calls) one at a time as it
    batches them: ``compare(spec, variables, call, evaluate, vmap_evaluate)``, the vmap property's own
    comparison and bound, run on the native class; False where it fails or the class raises."""
    keys = native.stream_keys(spec, 0)
    fn = native.jit_call(spec, "eval")

    def evaluate(v, c):
        return fn(v, c, keys)[0]

    def vmap_evaluate(in_axis, out_axis):
        return jax.jit(jax.vmap(lambda v, c: native.call(spec, "eval", v, c, keys)[0],
                                in_axes=(None, in_axis), out_axes=out_axis))

    try:
        compare(spec, variables, call, evaluate, vmap_evaluate)
    except Exception:  # noqa: BLE001 - a mismatch or the class's own error: either way the premise fails
        return False
    return True


PLAIN_LEAVES_DEVIATION = (
    "known deviation (observed on this flax for this layer): the layer holds plain jax arrays, not nnx.Variables, at "
    "{paths}; the bridge files them under a collection named after their Python type in eager init ('ArrayImpl') and "
    "jax.jit(init) drops them, so apply draws them again from a key of its own: they are not params a Linen pipeline "
    "can train, restore or seed (docs/known-deviations.md, 'Plain-array leaves'). Hold them in nnx.Param")


@functools.lru_cache(maxsize=None)
def plain_leaves_deviation(spec: ModuleSpec) -> str | None:
    """The recorded deviation's text where the class holds plain-array leaves and the bridge's jitted ``init``
    (the harness's, and a pipeline's) indeed leaves them out of the variables; None otherwise."""
    try:
        plain = native.plain_array_leaves(spec)
    except Exception:  # noqa: BLE001 - a class that cannot be built natively: the native properties say so
        return None
    if not plain:
        return None
    held = {"/".join(p.split("/")[1:]) for p in zh.array_leaves(zh.init(spec, 0, spec.calls[0]))}
    if all(p in held for p in plain):
        return None  # the bridge carries them: the properties judge the layer as any other
    shown = ", ".join(plain[:4]) + (f" and {len(plain) - 4} more" if len(plain) > 4 else "")
    return PLAIN_LEAVES_DEVIATION.format(paths=shown)


def _streams(spec: ModuleSpec) -> tuple:
    return spec.rng_streams or ("dropout",)


def collections_a_step_updates(spec: ModuleSpec, variables, x, key: int) -> set:
    """The declared mutable collections a native training step changes (an inference-mode BatchNorm's do not)."""
    _, after = native.jit_call(spec, "train")(variables, x, native.stream_keys(spec, key))
    return {c for c in spec.mutable if c in after and zh.arrays_differ(after[c], variables[c])}


def created_by_the_call(spec: ModuleSpec, variables, x, key: int) -> dict:
    """``{collection: tree}`` the native call creates in training mode (Variables assigned during the call)."""
    _, after = native.jit_call(spec, "train")(variables, x, native.stream_keys(spec, key))
    return {c: t for c, t in after.items() if c not in variables}


def perturbed(variables: dict, seed: int) -> dict:
    """``variables`` with every float leaf moved: params by a draw around them, other state kept in its domain.

    A zero-initialised scale gets non-zero values, so the output depends on
    it; a variance stays positive. Integer leaves (counters) are kept.
    """
    rng = np.random.default_rng(seed)

    def move(collection, leaf):
        a = np.asarray(leaf)
        if not np.issubdtype(a.dtype, np.floating) and a.dtype.name != "bfloat16":
            return leaf
        f = a.astype(np.float64)
        rms = float(np.sqrt(np.mean(f * f))) if f.size else 0.0
        scale = rms if rms > 0 else 1.0
        if collection == "params":
            f = f + PERTURBATION * scale * rng.standard_normal(f.shape)
        else:
            f = f * np.exp(PERTURBATION * rng.standard_normal(f.shape)) + PERTURBATION * scale * np.abs(
                rng.standard_normal(f.shape))
        return jax.numpy.asarray(f.astype(a.dtype))

    return {c: jax.tree_util.tree_map(lambda leaf, c=c: move(c, leaf), t) for c, t in variables.items()}


def collections_hints(spec: ModuleSpec, variables) -> list[Hint]:
    """Collections ``init`` creates that the declaration does not name: mutable= or readonly=, as a native step shows."""
    import dataclasses as dc

    extra = tuple(sorted(set(variables) - set(spec.collections) - set(spec.created)))
    if not extra:
        return []
    try:
        probe = dc.replace(spec, mutable=(*spec.mutable, *extra), readonly=tuple(c for c in spec.readonly if c not in extra))
        updated = collections_a_step_updates(probe, variables, spec.calls[0], 0)
    except Exception:  # noqa: BLE001 - a hint must not raise: without the native step it names both fields
        return [Hint(f"init creates {list(extra)}: declare each in mutable= (a training step updates it) or "
                     "readonly= (it only reads it)", {})]
    upd, read = tuple(c for c in extra if c in updated), tuple(c for c in extra if c not in updated)
    out = []
    if upd:
        out.append(Hint(f"init creates {list(upd)}, which a native training step updates: declare "
                        f"mutable={(*spec.mutable, *upd)!r}", {"mutable": (*spec.mutable, *upd)}))
    if read:
        out.append(Hint(f"init creates {list(read)}, which a native training step only reads: declare "
                        f"readonly={(*spec.readonly, *read)!r}", {"readonly": (*spec.readonly, *read)}))
    return out
