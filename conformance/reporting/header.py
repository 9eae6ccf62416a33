"""The report header: versions and settings that decide the verdict."""

from __future__ import annotations

import os
import sys

from conformance.core import jax_setup as _setup
from conformance.core import config


PACKAGES = ("flax", "jax", "jaxlib", "numpy", "hypothesis")


def header_lines(with_jax: bool = True) -> list[str]:
    """Versions and settings that decide the verdict, for the report header.

    ``with_jax=False`` (the xdist controller, which never imports jax) leaves
    out the lines that need jax; a worker reports them in the summary instead.
    """
    from hypothesis import settings

    from conformance.core import versions
    from conformance.core.deviations import installed_versions

    profile = settings._current_profile  # the loaded profile's name
    cur = settings.default
    found = installed_versions(PACKAGES)  # package metadata: no import of jax or flax
    lines = [
        "conformance: " + ", ".join(f"{p} {found.get(p, 'not installed')}" for p in PACKAGES)
        + f", python {sys.version.split()[0]}",
        *(jax_lines() if with_jax else []),
        f"conformance: hypothesis profile {profile!r} (max_examples={cur.max_examples}, "
        f"derandomize={cur.derandomize}, database={'off' if cur.database is None else 'on'})",
        f"conformance: {versions.verification_note(found)}",
        f"conformance: compilation cache {_setup.compilation_cache_dir() or 'off'}"
        + (" (one executable for every device: its key leaves out the device assignment)"
           if _setup.SHARED_CPU_EXECUTABLES else ""),
    ]
    if "XLA_FLAGS" in os.environ:
        lines.append(f"conformance: XLA_FLAGS={os.environ['XLA_FLAGS']}")
    return lines


def jax_lines() -> list[str]:
    """The devices and jax settings of this process."""
    import jax

    from conformance.helpers.devices import all_devices, device_id

    devices = ", ".join(device_id(d) for d in all_devices())
    lines = [
        f"conformance: devices [{devices}] ({len(all_devices())}; host CPU devices asked: {config.CPU_DEVICE_COUNT})",
        f"conformance: x64 default={jax.config.jax_enable_x64} (float64 cases switch it on in scope), "
        f"jax_threefry_partitionable={getattr(jax.config, 'jax_threefry_partitionable', 'n/a')}, "
        f"jax_default_matmul_precision={jax.config.jax_default_matmul_precision!r} "
        f"(numerical properties pinned to {config.MATMUL_PRECISION!r}; reduced-precision matmul on "
        f"accelerators is reported, not gated)",
    ]
    if _setup.SETUP_NOTE:
        lines.append(f"conformance: {_setup.SETUP_NOTE}")
    return lines


def default_precision_lines() -> list[str]:
    """What jax's *default* matmul precision does on each device (reported, never gated).

    The properties run at ``config.MATMUL_PRECISION``; accelerators default to
    reduced-precision products (TF32 on an H100), so users should know how far
    the default strays from a float64 oracle on their hardware.
    """
    import jax
    import numpy as np

    from conformance.helpers.devices import all_devices, device_id

    rng = np.random.default_rng(0)
    x, k = rng.uniform(-1, 1, (3, 64)).astype(np.float32), rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    exact = x.astype(np.float64) @ k.astype(np.float64)
    lines = []
    for d in all_devices():
        errs = {}
        for prec in ("default", config.MATMUL_PRECISION):
            with jax.default_matmul_precision(prec):
                y = jax.jit(lambda a, b: a @ b)(jax.device_put(x, d), jax.device_put(k, d))
            errs[prec] = float(np.max(np.abs(np.asarray(y, np.float64) - exact)) / np.max(np.abs(exact)))
        lines.append(
            f"matmul precision on {device_id(d)}: max relative error of a (3,64)@(64,64) float32 product vs float64: "
            + ", ".join(f"{p} {e:.1e}" for p, e in errs.items())
        )
    return lines
