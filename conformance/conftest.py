"""pytest configuration of the conformance gate.

Ships inside the package, so ``pytest --pyargs conformance`` from any
directory runs with the same profiles, devices and header as a run from the
checkout. Device set-up happens here, before jax is imported.
"""

from __future__ import annotations

from conformance import _setup

_setup.before_jax()

import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from conformance import config  # noqa: E402


_setup.register_profiles()


def pytest_configure(config):
    # xdist workers share the compilation cache; a worker that reads an entry
    # another is still writing recompiles and warns. Harmless, so not shown.
    config.addinivalue_line("filterwarnings", "ignore:Error reading persistent compilation cache entry")
    # Under xdist, keep each device's tests on one worker: executables are
    # compiled per device, so splitting a device across workers compiles twice.
    if getattr(config.option, "dist", "no") == "load" and getattr(config.option, "numprocesses", None):
        config.option.dist = "loadgroup"


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        from conformance.harness import all_devices, device_id

        ids = [device_id(d) for d in all_devices()]
        metafunc.parametrize("device", ids, ids=ids)


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "device" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(callspec.params["device"]))


def header_lines() -> list[str]:
    """Versions and settings that decide the verdict, for the report header."""
    import flax
    import hypothesis
    import jax
    import jaxlib
    import numpy

    from conformance.harness import all_devices, device_id

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


def pytest_report_header(config):
    return header_lines()
