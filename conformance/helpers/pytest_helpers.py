"""Asserts whose messages say what differs, and the repro note every failure carries."""

from __future__ import annotations

import contextlib
import textwrap

import numpy as np

from conformance.core import config
from conformance.numerics import drift
from conformance.numerics import errormodel
from conformance.helpers.harness import (
    affine_bound, init_difference, kernel_bias, oracle, outputs_same_params, tree_paths,
)
from conformance.helpers.hypothesis_helpers import Case

# --- asserts ---------------------------------------------------------------------------------


def assert_shape(name: str, shape, expected):
    __tracebackhide__ = True
    shape, expected = tuple(shape), tuple(expected)
    assert shape == expected, f"{name}.shape={shape}, but should be {expected}"


def assert_dtype(name: str, dtype, expected):
    __tracebackhide__ = True
    dtype, expected = np.dtype(dtype), np.dtype(expected)
    assert dtype == expected, f"{name}.dtype={dtype.name}, but should be {expected.name}"


def assert_on_device(name: str, arr, device):
    __tracebackhide__ = True
    got = set(arr.devices())
    assert got == {device}, f"{name} is on {sorted(map(str, got))}, but should be on {device}"


def _bytes(a: np.ndarray) -> np.ndarray:
    """The bytes of ``a``, any rank (a 0-d array cannot change its dtype's itemsize in a view)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _worst(err, bound):
    ratio = np.where(bound > 0, err / np.where(bound > 0, bound, 1), np.where(err > 0, np.inf, 0))
    return np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.ndim else (), ratio


def assert_close(name: str, actual, expected, bound, what: str = "expected"):
    """|actual - expected| <= bound elementwise (NaN fails); the message names the worst index.

    For comparisons against an exact oracle: within the model, or not.
    """
    __tracebackhide__ = True
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{name}.shape={a.shape}, but should be {e.shape}"
    b = np.broadcast_to(np.asarray(bound, dtype=np.float64), e.shape)
    assert_bound_is_sound(name, b, what)
    err = np.abs(a - e)
    bad = ~(err <= b)  # NaN counts as bad
    if bad.any():
        idx, ratio = _worst(np.where(np.isnan(err), np.inf, err), b)
        raise AssertionError(
            f"{name}[{', '.join(map(str, idx))}]={a[idx].item()!r}, but should be {e[idx].item()!r} ({what}); "
            f"|error|={err[idx]:.3e} > bound {b[idx]:.3e} of the error model ({ratio[idx]:.3g}x); "
            f"{int(bad.sum())} of {bad.size} elements out of bound"
        )


def assert_bound_is_sound(name: str, bound, what: str = "expected"):
    """A bound of the error model is never NaN nor negative: either is a defect of the suite, not of the bridge."""
    __tracebackhide__ = True
    b = np.asarray(bound, dtype=np.float64)
    bad = np.isnan(b) | (b < 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"the error model's bound for {name}[{', '.join(map(str, idx))}] is {b[idx]!r} ({what}): "
                             f"{int(bad.sum())} of {b.size} bounds NaN or negative, a defect of the suite's error model "
                             "(conformance/numerics), whatever the bridge does")


def assert_within_model(name: str, actual, expected, bound, what: str = "expected") -> str:
    """Two computations of the same values: ``"identical"``, ``"drift"`` (counted), or changed (fails).

    Drift is reported with its size in ulp of ``actual``'s dtype and as a
    relative error; changed fails with the worst element against its bound.
    """
    __tracebackhide__ = True
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{name}.shape={a.shape}, but should be {e.shape} ({what})"
    assert_bound_is_sound(name, np.broadcast_to(np.asarray(bound, np.float64), e.shape), what)
    if a.dtype == e.dtype and (a.size == 0 or np.array_equal(_bytes(a), _bytes(e))):
        drift.record(name, False)
        return "identical"
    try:
        assert_close(name, a, e, bound, what)
    except AssertionError as exc:
        raise AssertionError(f"changed beyond the error model: {exc}") from None
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    err = np.abs(a64 - e64)
    b = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
    rel = np.where(e64 != 0, err / np.where(e64 != 0, np.abs(e64), 1), 0)
    frac = np.where(b > 0, err / np.where(b > 0, b, 1), 0)
    drift.record(name, True, float(errormodel.ulps(a64, e64, a.dtype).max()), float(rel.max()), float(frac.max()))
    return "drift"


def assert_equal(name: str, actual, expected, what: str = "expected"):
    """Bitwise equality (NaNs equal), naming the first differing index."""
    __tracebackhide__ = True
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{name}.shape={a.shape}, but should be {e.shape} ({what})"
    assert a.dtype == e.dtype, f"{name}.dtype={a.dtype.name}, but should be {e.dtype.name} ({what})"
    same = _bytes(a) == _bytes(e) if a.size else np.ones(0, bool)
    if not np.all(same):
        diff = np.argwhere(a != e)
        idx = tuple(diff[0]) if len(diff) else ()
        raise AssertionError(
            f"{name}[{', '.join(map(str, idx))}]={a[idx].item()!r}, but should be {e[idx].item()!r} ({what}); "
            f"{len(diff)} of {a.size} elements differ"
        )


def assert_trees_equal(name: str, actual, expected, what: str = "expected"):
    """Same leaf paths and bitwise-equal leaves; the message names the leaf path."""
    __tracebackhide__ = True
    a, e = tree_paths(actual), tree_paths(expected)
    assert a.keys() == e.keys(), (
        f"{name} leaves {sorted(a)}, but should be {sorted(e)} ({what}); "
        f"missing {sorted(e.keys() - a.keys())}, unexpected {sorted(a.keys() - e.keys())}"
    )
    for path in e:
        assert_equal(f"{name}/{path}", a[path], e[path], what)


def assert_trees_differ(name: str, a, b, what: str):
    __tracebackhide__ = True
    pa, pb = tree_paths(a), tree_paths(b)
    assert any(
        k in pb and (np.shape(pa[k]) != np.shape(pb[k]) or not np.array_equal(np.asarray(pa[k]), np.asarray(pb[k])))
        for k in pa
    ), f"{name}: every leaf of {sorted(pa)} is identical, but they should differ ({what})"


def assert_inits_within_model(name: str, actual, expected, what: str):
    """Every leaf of two inits of the same seed: identical, drift within the sampler model, or changed."""
    __tracebackhide__ = True
    a, e = tree_paths(actual), tree_paths(expected)
    assert a.keys() == e.keys(), f"{name} leaves {sorted(a)}, but should be {sorted(e)} ({what})"
    for path, value in e.items():
        assert_within_model(f"{name}/{path}", a[path], value, init_difference(path, value), what)


def assert_product_close(name: str, actual, expected, x, variables, exact: bool = False, what: str = "expected"):
    """``actual`` and ``expected``, two values of ``x @ kernel + bias`` for ``variables``, within the error model.

    ``exact=True``: ``expected`` is the exact (float64) value, so one affine
    error bounds the difference; otherwise both are computed (another
    compilation, order or device), and two do. Repro snippets state a
    property's check with it in one line.
    """
    __tracebackhide__ = True
    if exact:
        _, mag = oracle(x, *kernel_bias(variables))
        assert_close(name, actual, expected, affine_bound(x, mag), what)
    else:
        assert_within_model(name, actual, expected, outputs_same_params(x, variables), what)


# --- repro notes -------------------------------------------------------------------------------


def _injected() -> list[str]:
    """Lines that re-apply what this run injected: the fault (and a benign perturbation, where one is on)."""
    import sys

    lines = []
    faults = sys.modules.get("conformance.selfcheck.faults")
    if faults is not None and getattr(faults, "ACTIVE", None):
        lines.append(f'from conformance import faults; faults.install("{faults.ACTIVE}")  # the fault this run injected')
    benign = sys.modules.get("conformance.selfcheck.benign")
    if benign is not None and getattr(benign, "ACTIVE", None) and hasattr(benign, "install"):
        lines.append(f'from conformance import benign; benign.install("{benign.ACTIVE}")  # the perturbation this run applied')
    return lines


# How a snippet reaches each direction's contract: ``variables`` (the params), ``y`` (the output); ToNNX's ``model`` too.
CONTRACT_IMPORTS = {
    "to_linen": ("from reference import nnx_inside_linen, init_variables, linen_module, prng_key",),
    "to_nnx": ("from flax import nnx",
               "from reference import linen_inside_nnx, linen_dense, nnx_model, nnx_params, nnx_rngs"),
}
CONTRACT_CALLS = {
    "to_linen": ("variables = init_variables(seed, x, features)", "y = nnx_inside_linen(seed, x, features)"),
    "to_nnx": ("jax.config.update('jax_default_device', x.devices().pop())  # the case's device: the model's params live there",
               "model = nnx_model(seed, x, features)  # ToNNX(nn.Dense(features)), lazy_init on x",
               "variables = nnx_params(model)  # {'kernel': ..., 'bias': ...}",
               "y = linen_inside_nnx(seed, x, features)"),
}


def repro_snippet(case: Case, check: str = "") -> str:
    """Copy-paste code that rebuilds the case's inputs, calls the contract and runs the property's check.

    It starts as the suite does (host CPU devices, matmul precision), re-applies
    an injected fault, and ends with the check: run, it raises when the
    property fails. tests/test_repro_snippets.py runs one per property.
    """
    x64 = case.dtype in ("float64", "int64")
    lines = [
        "from conformance.core import jax_setup; jax_setup.before_jax()  # the suite's devices and jax settings",
        *_injected(),
        "import jax, jax.numpy as jnp, numpy as np",
        "from conformance.helpers.hypothesis_helpers import make_x",
        "from conformance.numerics import errormodel",
        "from conformance.helpers.pytest_helpers import assert_close, assert_equal, assert_product_close, assert_trees_equal",
        *CONTRACT_IMPORTS[case.direction],
    ]
    lines.append(f'jax.config.update("jax_default_matmul_precision", "{config.MATMUL_PRECISION}")')
    if x64:
        lines.append('jax.config.update("jax_enable_x64", True)')
    plat, idx = case.device.split(":")
    lines += [
        f'x = jax.device_put({case.x.code()}, jax.devices("{plat}")[{idx}])',
        f"seed, features = {case.seed!r}, {case.features!r}",
        *CONTRACT_CALLS[case.direction],
    ]
    if check:
        lines.append(textwrap.dedent(check).strip())
    return "\n".join(lines)


class _Note:
    """The check a repro snippet ends with; a property may set it once its draws are known."""

    def __init__(self, check: str):
        self.check = check


@contextlib.contextmanager
def reporting(prop: str, case: Case, check: str = ""):
    """Attach the property, the inputs and a repro snippet to any failure inside.

    Yields a note whose ``check`` the body may set (for checks that depend on
    draws made inside).
    """
    note = _Note(check)
    try:
        yield note
    except Exception as exc:
        if hasattr(exc, "add_note"):
            exc.add_note(f"property: {prop}")
            exc.add_note(f"inputs: {case.describe()}")
            exc.add_note("repro:\n" + textwrap.indent(repro_snippet(case, note.check), "    "))
        raise
