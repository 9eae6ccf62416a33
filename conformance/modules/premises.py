"""Facts about a declared layer, taken from the layer itself: its NNX class run natively (native.py).

A property that rests on such a fact (the params depend on the seed,
evaluation draws no randomness, a training step updates this collection)
asks here first. What the class does natively is what the bridged module must
do; where the fact does not hold, the property checks what the layer does
instead, or skips naming the fact.
"""

from __future__ import annotations

import jax
import numpy as np

from conformance.modules import module_harness as zh
from conformance.modules import native
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
