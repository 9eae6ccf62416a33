"""The report header: versions and settings that decide the verdict."""

from __future__ import annotations

import os
import sys

from conformance import _setup, config


def header_lines() -> list[str]:
    """Versions and settings that decide the verdict, for the report header."""
    import flax
    import hypothesis
    import jax
    import jaxlib
    import numpy

    from conformance.harness import all_devices, device_id

    from hypothesis import settings

    profile = settings._current_profile  # the loaded profile's name
    cur = settings.default
    devices = ", ".join(device_id(d) for d in all_devices())
    lines = [
        f"conformance: flax {flax.__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
        f"numpy {numpy.__version__}, hypothesis {hypothesis.__version__}, python {sys.version.split()[0]}",
        f"conformance: devices [{devices}] ({len(all_devices())}; host CPU devices asked: {config.CPU_DEVICE_COUNT})",
        f"conformance: hypothesis profile {profile!r} (max_examples={cur.max_examples}, "
        f"derandomize={cur.derandomize}, database={'off' if cur.database is None else 'on'})",
        f"conformance: x64 default={jax.config.jax_enable_x64} (float64 cases switch it on in scope), "
        f"jax_threefry_partitionable={getattr(jax.config, 'jax_threefry_partitionable', 'n/a')}, "
        f"jax_default_matmul_precision={jax.config.jax_default_matmul_precision!r} "
        f"(numerical properties pinned to {config.MATMUL_PRECISION!r}; reduced-precision matmul on "
        f"accelerators is reported, not gated)",
        f"conformance: compilation cache {_setup.compilation_cache_dir() or 'off'}",
    ]
    if _setup.SETUP_NOTE:
        lines.append(f"conformance: {_setup.SETUP_NOTE}")
    if "XLA_FLAGS" in os.environ:
        lines.append(f"conformance: XLA_FLAGS={os.environ['XLA_FLAGS']}")
    return lines
