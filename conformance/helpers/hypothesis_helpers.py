"""Hypothesis strategies for the bridge contract.

Shapes come from the small menus in ``config`` (JAX compiles once per shape),
values from the whole documented domains. Inputs are described by a small
``XSpec`` and built deterministically by ``make_x``, so a failure's repro
snippet rebuilds the exact array from a few numbers.
"""

from __future__ import annotations

import contextvars
import dataclasses
import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.core import config
from conformance.numerics.dtypes import np_dtype

X_KINDS = ("uniform", "integers", "zeros", "one_hot", "tiny", "mixed")
PIPELINE_X_KINDS = ("uniform", "integers", "one_hot", "mixed")  # no all-zero x: a pipeline check compares outputs that must differ under a fault


def make_x(shape, dtype: str, kind: str = "uniform", x_seed: int = 0) -> np.ndarray:
    """A deterministic input array; values are finite and at most ELEMENT_MAX in size."""
    shape = tuple(shape)
    rng = np.random.default_rng(x_seed)
    m = config.ELEMENT_MAX
    integer = np.issubdtype(np_dtype(dtype), np.integer)
    if kind == "zeros":
        v = np.zeros(shape)
    elif kind == "one_hot":
        v = np.zeros(shape)
        idx = rng.integers(0, shape[-1], size=shape[:-1])
        np.put_along_axis(v, np.expand_dims(idx, -1), 1.0, axis=-1)
    elif kind == "integers" or integer:
        v = rng.integers(-int(m), int(m) + 1, size=shape).astype(np.float64)
    elif kind == "tiny":
        v = rng.uniform(-1e-3, 1e-3, size=shape)
    elif kind == "mixed":
        v = rng.uniform(-1, 1, size=shape) * 10.0 ** rng.integers(-3, 1, size=shape) * m
    else:
        v = rng.uniform(-m, m, size=shape)
    return v.astype(np_dtype(dtype))


@dataclasses.dataclass(frozen=True)
class XSpec:
    shape: tuple
    dtype: str
    kind: str
    x_seed: int

    def build(self) -> np.ndarray:
        return make_x(self.shape, self.dtype, self.kind, self.x_seed)

    def code(self) -> str:
        return f"make_x({self.shape!r}, {self.dtype!r}, {self.kind!r}, {self.x_seed})"


# Linearity's inputs: on a grid of quarters, with small integer coefficients, so that
# a*x + b*y is exact in every input dtype (bfloat16 included).
LINEAR_COEFFS = (-3, -2, -1, 1, 2, 3)


def on_quarter_grid(spec: XSpec) -> np.ndarray:
    """The spec's integers, quartered for float dtypes: a*x + b*y stays exact."""
    v = spec.build()
    return v if np.issubdtype(v.dtype, np.integer) else (v.astype(np.float64) / 4).astype(v.dtype)


# --- scalar arguments ------------------------------------------------------------


def _as_given(value: int, form: str):
    """The same integer as the caller might pass it: int, float or a NumPy scalar."""
    if form == "float":
        return float(value)
    if form == "np.float64":
        return np.float64(value)
    if form == "np.int64":
        return np.int64(value)
    if form == "np.int32":
        return np.int32(value)
    return int(value)


def _given_forms(draw_value: st.SearchStrategy[int], forms) -> st.SearchStrategy:
    return st.tuples(draw_value, st.sampled_from(forms)).map(lambda t: _as_given(*t))


SEED_BOUNDARIES = (config.SEED_MIN, config.SEED_MIN + 1, -1, 0, 1, config.SEED_MAX - 1, config.SEED_MAX)


def seed_ints() -> st.SearchStrategy[int]:
    """Seeds over the whole int32 domain, its boundaries drawn often."""
    return st.one_of(
        st.sampled_from(SEED_BOUNDARIES),
        st.integers(config.SEED_MIN, config.SEED_MAX),
        st.integers(-1000, 1000),
    )


def seeds() -> st.SearchStrategy:
    """Seeds as a caller passes them: int, float, NumPy int and float scalars (all exact)."""
    return _given_forms(seed_ints(), ("int", "float", "np.int64", "np.int32", "np.float64"))


def seed_batch(base: int, size: int) -> np.ndarray:
    """``base`` and neighbours differing in single bits (high bits too), then a stride.

    Catches a key derived from only part of the seed (truncation, low bits only).
    """
    out = [base]
    for bit in range(32):
        flipped = np.int64(base) ^ (1 << bit)
        if config.SEED_MIN <= flipped <= config.SEED_MAX:
            out.append(int(flipped))
    step = 7919
    while len(set(out)) < size:
        out.append(int((base + step * len(out) - config.SEED_MIN) % 2**32 + config.SEED_MIN))
    return np.array(list(dict.fromkeys(out))[:size], dtype=np.int64)  # distinct, base first


FEATURE_FORMS = ("int", "float", "np.int64", "np.float64")


def as_features(count: int, form: str):
    return _as_given(count, form)


def off_menu() -> bool:
    """True under the profiles that also draw shapes off the compile-aware menu."""
    from hypothesis import settings

    return settings._current_profile in config.OFF_MENU_PROFILES


def shapes(min_cells: int = 1) -> st.SearchStrategy[tuple]:
    """(width, features) from the compile-aware menu; under random and nightly, any up to OFF_MENU_MAX too."""
    menu = st.sampled_from([s for s in config.SHAPES if s[0] * s[1] >= min_cells])
    if not off_menu():
        return menu
    anywhere = st.tuples(st.integers(1, config.OFF_MENU_MAX), st.integers(1, config.OFF_MENU_MAX)).map(
        lambda s: s if s[0] * s[1] >= min_cells else (max(s[0], -(-min_cells // s[1])), s[1])
    )
    return st.one_of(menu, anywhere)


def dtypes(names=config.DTYPES) -> st.SearchStrategy[str]:
    return st.sampled_from(names)


def batch_shapes(batched: bool | None) -> st.SearchStrategy[tuple]:
    """Leading axes of x: () for the 1-D contract, a menu shape when batched."""
    return st.sampled_from(batch_menu(batched))


# The property being run (set by harness.given_data): it picks the property's compile-key design.
CURRENT_PROPERTY: contextvars.ContextVar[str] = contextvars.ContextVar("conformance_property", default="")


def compile_keys(shape_menu, dtype_names, batch_menu, rotation: str = "") -> list[tuple]:
    """A property's (width, features), dtype and batch shape, paired: one row per compile.

    Row 0 is every menu's first entry (every property's first example, see
    ``config.SHAPES``). Later rows walk the shapes in order, the dtypes from an
    offset ``o`` and the batch shapes from ``2·o``, where ``o`` is one of
    ``config.COMPILE_KEY_ROTATIONS`` picked by ``rotation`` (the property's
    name). So each property sees every shape, dtype and batch shape while
    compiling about ``len(shape_menu)`` programs, not their product, and
    ``device_share`` deals those out to the platform's devices. Between
    rotations the dtype offset takes every value (every (shape, dtype) pair)
    and so does the batch offset minus the dtype offset (every (dtype, batch)
    pair); properties with the same rotation share their programs (README,
    "Profiles and settings").
    """
    shape_menu, dtype_names, batch_menu = list(shape_menu), list(dtype_names), list(batch_menu)
    offset = zlib.crc32(rotation.encode()) % config.COMPILE_KEY_ROTATIONS
    # One more row than the longest menu: the first shape comes back with a rotated dtype.
    n = max(len(shape_menu), len(dtype_names), len(batch_menu)) + 1
    rows = [(shape_menu[0], dtype_names[0], batch_menu[0])]
    for i in range(1, n):
        row = (shape_menu[i % len(shape_menu)], dtype_names[(i - 1 + offset) % len(dtype_names)],
               batch_menu[(i - 1 + 2 * offset) % len(batch_menu)])
        if row not in rows:
            rows.append(row)
    return rows


def device_share(keys: list, device: str, peers, *, common_first: bool = True) -> list:
    """The compile keys ``device`` draws: its place among ``peers``, then every ``len(peers)``-th key.

    ``peers`` are the devices of ``device``'s platform, identical hardware, so
    between them they compile each of a property's keys once instead of each
    device compiling all of them; every device still runs the property, and
    every platform meets every key. ``common_first``: every device also draws
    row 0 (the contract's first example, see ``config.SHAPES``). A device not
    among ``peers`` draws all keys; one left without a key draws one.
    """
    keys, peers = list(keys), list(peers)
    if device not in peers or len(peers) < 2:
        return keys
    place, count = peers.index(device), len(peers)
    if common_first:
        return keys[:1] + [k for i, k in enumerate(keys[1:]) if i % count == place]
    return [k for i, k in enumerate(keys) if i % count == place] or [keys[place % len(keys)]]


def platform_peers(device: str) -> list[str]:
    """The devices of ``device``'s platform, in the suite's order."""
    from conformance.helpers.devices import all_devices, device_id  # lazy: jax starts after the suite's set-up

    platform = device.split(":")[0]
    return [device_id(d) for d in all_devices() if d.platform == platform]


def batch_menu(batched: bool | None) -> tuple:
    if batched is None:
        return ((),) + config.BATCH_SHAPES
    return config.BATCH_SHAPES if batched else ((),)


def x_specs(width: int, dtype: str, lead: tuple = (), kinds=X_KINDS) -> st.SearchStrategy[XSpec]:
    return st.builds(
        XSpec,
        shape=st.just(tuple(lead) + (width,)),
        dtype=st.just(dtype),
        kind=st.sampled_from(kinds),
        x_seed=st.integers(0, 2**32 - 1),
    )


# --- a whole case ------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One drawn call of the contract: what the repro snippet needs to rebuild it."""

    seed: Any
    features: Any
    width: int
    dtype: str
    x: XSpec
    device: str
    extra: dict = dataclasses.field(default_factory=dict)
    direction: str = "to_linen"  # which contract the repro snippet calls: to_linen's or ToNNX's

    @property
    def seed_int(self) -> int:
        return int(self.seed)

    @property
    def features_int(self) -> int:
        return int(self.features)

    def describe(self) -> str:
        parts = [
            f"seed={self.seed!r} ({type(self.seed).__name__})",
            f"width={self.width}",
            f"features={self.features!r} ({type(self.features).__name__})",
            f"dtype={self.dtype}",
            f"x.shape={self.x.shape}",
            f"x.kind={self.x.kind}",
            f"device={self.device}",
        ]
        parts += [f"{k}={v!r}" for k, v in self.extra.items()]
        if self.direction != "to_linen":
            parts.insert(0, f"direction={self.direction}")
        return ", ".join(parts)


def draw_case(
    data, device: str, *, batched: bool | None = False, dtype_names=config.DTYPES, kinds=X_KINDS, min_cells: int = 1,
    direction: str = "to_linen",
) -> Case:
    """Draw a case with one labelled draw per argument (the same draws for either direction's contract)."""
    seed = data.draw(seeds(), label="seed")
    if off_menu():  # the whole product, and shapes off the menu
        width, count = data.draw(shapes(min_cells), label="width, features")
        dtype = data.draw(dtypes(dtype_names), label="dtype")
        lead = data.draw(batch_shapes(batched), label="batch_shape")
    else:  # paired: about one compile per shape of the menu (compile_keys)
        menu = [s for s in config.SHAPES if s[0] * s[1] >= min_cells]
        keys = compile_keys(menu, dtype_names, batch_menu(batched), CURRENT_PROPERTY.get())
        keys = device_share(keys, device, platform_peers(device))
        (width, count), dtype, lead = data.draw(st.sampled_from(keys), label="(width, features), dtype, batch_shape")
    feats = as_features(count, data.draw(st.sampled_from(FEATURE_FORMS), label="features passed as"))
    xs = data.draw(x_specs(width, dtype, lead, kinds), label="x")
    return Case(seed=seed, features=feats, width=width, dtype=dtype, x=xs, device=device, direction=direction)


def draw_pipeline_case(
    data, device: str, *, square: bool = False, features_multiple_of: int = 1, layers: bool = False
) -> Case:
    """A float32 batch through a pipeline: seed, a small shape (square for stacked layers), x's kind.

    ``features_multiple_of``: a mesh's device count, so the kernel's columns
    split over every device (the whole menu when no shape allows it).
    ``layers``: also draw a scan length (``case.extra["layers"]``). Outside
    random and nightly, shape and length are drawn paired like ``draw_case``'s
    keys: the (shape, length) rows start at an offset the property's name
    picks, and ``device_share`` deals them out to the platform's devices, one
    each on two devices (a pipeline's verdict is in its wiring, not its shape).
    """
    seed = data.draw(seeds(), label="seed")
    menu = [s for s in config.PIPELINE_SHAPES if s[0] == s[1] or not square]
    menu = [s for s in menu if s[1] % features_multiple_of == 0] or menu
    lengths = config.PIPELINE_LAYERS if layers else (None,)
    if off_menu():
        width, count = data.draw(st.sampled_from(menu), label="width, features")
        length = data.draw(st.sampled_from(lengths), label="layers")
    else:
        rows = [(shape, n) for shape in menu for n in lengths]
        start = zlib.crc32(CURRENT_PROPERTY.get().encode()) % len(rows)
        rows = device_share(rows[start:] + rows[:start], device, platform_peers(device), common_first=False)
        (width, count), length = data.draw(st.sampled_from(rows), label="(width, features), layers")
    xs = data.draw(x_specs(width, "float32", config.BATCH_SHAPES[0], PIPELINE_X_KINDS), label="x")
    case = Case(seed=seed, features=count, width=width, dtype="float32", x=xs, device=device)
    if layers:
        case.extra["layers"] = length
    return case


def draw_exact_combination(data, case):
    """A second input y drawn like ``case``'s x, coefficients a and b, and x, y and a*x + b*y on the quarter grid.

    The combination is exact in the input dtype (asserted), so only the layer's own rounding separates f(a*x + b*y)
    from a*f(x) + b*f(y). Returns ``(y_spec, a, b, xv, yv, zv)``; the draws go into ``case.extra`` for the report.
    """
    y_spec = data.draw(x_specs(case.width, case.dtype, case.x.shape[:-1], ("integers",)), label="y")
    a = data.draw(st.sampled_from(LINEAR_COEFFS), label="a")
    b = data.draw(st.sampled_from(LINEAR_COEFFS), label="b")
    case.extra.update(y=y_spec.code(), a=a, b=b)
    xv, yv = on_quarter_grid(case.x), on_quarter_grid(y_spec)
    exact = a * xv.astype(np.float64) + b * yv.astype(np.float64)
    zv = exact.astype(xv.dtype)
    assert np.array_equal(zv.astype(np.float64), exact), "a*x + b*y is not exact in the input dtype"
    return y_spec, a, b, xv, yv, zv
