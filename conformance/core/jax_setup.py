"""Process set-up that must happen before jax initialises its backends."""

from __future__ import annotations

import os
import sys

from conformance.core import config

SETUP_NOTE = ""
SHARED_CPU_EXECUTABLES = False  # whether one executable serves every CPU device (share_executables_across_devices)
_CONFIGURED = False
_FLAG = "--xla_force_host_platform_device_count"


def set_xla_flags() -> None:
    """Ask XLA for ``CPU_DEVICE_COUNT`` host devices and single-threaded CPU kernels (environment only).

    Also keeps every process from preallocating an accelerator's memory (jax
    takes 75 % by default): xdist workers sharing one GPU would run out of
    memory. The user's own settings win.
    """
    os.environ.setdefault(config.PREALLOCATE_ENV, config.PREALLOCATE)
    flags = os.environ.get("XLA_FLAGS", "")
    wanted = [f"{_FLAG}={config.CPU_DEVICE_COUNT}", *config.XLA_CPU_FLAGS]
    extra = [f for f in wanted if f.split("=")[0] not in flags]  # the user's own settings win
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def before_jax() -> None:
    """The XLA flags, then jax's device count, compilation cache and matmul precision (idempotent)."""
    global SETUP_NOTE, SHARED_CPU_EXECUTABLES, _CONFIGURED
    set_xla_flags()
    import jax  # noqa: E402  (after the flags)

    if _CONFIGURED:
        return
    _CONFIGURED = True
    if hasattr(jax.config, "jax_num_cpu_devices"):
        try:  # works while the backend is not up, even when jax was imported first
            jax.config.update("jax_num_cpu_devices", config.CPU_DEVICE_COUNT)
        except RuntimeError as exc:  # backend already up: the header says so
            SETUP_NOTE = f"CPU device count not set ({exc})"
    cache = compilation_cache_dir()
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        if hasattr(jax.config, "jax_persistent_cache_min_entry_size_bytes"):
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        if config.SHARE_EXECUTABLES_ACROSS_CPU_DEVICES:
            SHARED_CPU_EXECUTABLES = share_executables_across_devices()
    jax.config.update("jax_default_matmul_precision", config.MATMUL_PRECISION)


def share_executables_across_devices() -> bool:
    """Key the persistent cache's entries without their device assignment on every platform, as jax does on GPUs.

    A program compiled for one device is then loaded from the cache for the next
    one (config.SHARE_EXECUTABLES_ACROSS_CPU_DEVICES says why that is sound).
    The hook is jax's own key function, private: on a release without it, or
    with another signature, nothing changes (False) but speed.
    """
    import inspect

    try:
        from jax._src import cache_key
    except ImportError:
        return False
    real = getattr(cache_key, "_hash_serialized_compile_options", None)
    if real is None or getattr(real, "_conformance_shared", False):
        return bool(real)
    if "strip_device_assignment" not in inspect.signature(real).parameters:
        return False

    def without_device_assignment(hash_obj, compile_options, strip_device_assignment=False):
        return real(hash_obj, compile_options, strip_device_assignment=True)

    without_device_assignment._conformance_shared = True
    cache_key._hash_serialized_compile_options = without_device_assignment
    return True


def role(pytest_config) -> str:
    """"worker" (an xdist worker), "controller" (the xdist controller, which runs no tests) or "serial"."""
    if hasattr(pytest_config, "workerinput"):
        return "worker"
    opt = pytest_config.option
    if getattr(opt, "dist", "no") != "no" and getattr(opt, "numprocesses", None):
        return "controller"
    return "serial"


_AT_WORKER_END: list = []


def at_worker_end(fn) -> None:
    """Call ``fn()`` when an xdist worker ends without teardown (end_worker_process): what must still happen then,
    such as waiting for the processes it started, so that they end with it and their CPU time counts as its own."""
    if fn not in _AT_WORKER_END:
        _AT_WORKER_END.append(fn)


def end_worker_process() -> None:
    """An xdist worker's last exit handler: flush, then end the process without tearing the interpreter down.

    A process under coverage measurement keeps its teardown (coverage saves its data in an exit handler).
    """
    if "coverage" in sys.modules:
        return
    for fn in _AT_WORKER_END:
        fn()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing left to lose
            pass
    os._exit(0)


def configure_process(pytest_config) -> None:
    """pytest_configure: set jax up in every process that runs tests.

    The xdist controller only hands out tests and prints reports; leaving jax
    unimported there saves a second of start-up before the workers spawn.
    """
    set_xla_flags()  # inherited by the workers the controller spawns
    if role(pytest_config) != "controller":
        before_jax()


def compilation_cache_dir() -> str | None:
    """The persistent compilation cache shared by xdist workers; None when switched off."""
    from conformance.core import cachedirs

    return cachedirs.compilation_cache()


def register_profiles() -> None:
    """Register the profiles of ``config.PROFILES`` (idempotent).

    They derive from Hypothesis's own "ci" profile (the one it loads under CI),
    so its health-check choices carry over; ``--hypothesis-profile`` picks another.
    """
    from hypothesis import Phase, settings
    from hypothesis.errors import InvalidArgument

    try:
        parent = settings.get_profile("ci")
    except InvalidArgument:  # older hypothesis (6.111, 6.115) has no "ci" profile: its health-check choice by hand
        from hypothesis import HealthCheck

        parent = settings(settings.get_profile("default"), suppress_health_check=[HealthCheck.too_slow])
    for name, values in config.PROFILES.items():
        values = dict(values)
        if "phases" in values:
            values["phases"] = [Phase[p] for p in values["phases"]]
        settings.register_profile(name, parent=parent, **values)
