"""Process set-up that must happen before jax initialises its backends."""

from __future__ import annotations

import os

from conformance import config

SETUP_NOTE = ""
_FLAG = "--xla_force_host_platform_device_count"


def before_jax() -> None:
    """Ask for ``CPU_DEVICE_COUNT`` host devices and set up the compilation cache."""
    flags = os.environ.get("XLA_FLAGS", "")
    wanted = [f"{_FLAG}={config.CPU_DEVICE_COUNT}", *config.XLA_CPU_FLAGS]
    extra = [f for f in wanted if f.split("=")[0] not in flags]  # the user's own settings win
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
    import jax  # noqa: E402  (after the flags)

    global SETUP_NOTE
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
    jax.config.update("jax_default_matmul_precision", config.MATMUL_PRECISION)


def compilation_cache_dir() -> str | None:
    """The persistent compilation cache shared by xdist workers; None when switched off."""
    value = os.environ.get(config.COMPILATION_CACHE_ENV, config.DEFAULT_COMPILATION_CACHE)
    return None if value.lower() in ("", "0", "off", "none", "false") else value


def register_profiles() -> None:
    """Register the profiles of ``config.PROFILES`` (idempotent).

    They derive from Hypothesis's own "ci" profile (the one it loads under CI),
    so its health-check choices carry over; ``--hypothesis-profile`` picks another.
    """
    from hypothesis import Phase, settings

    parent = settings.get_profile("ci")
    for name, values in config.PROFILES.items():
        values = dict(values)
        if "phases" in values:
            values["phases"] = [Phase[p] for p in values["phases"]]
        settings.register_profile(name, parent=parent, **values)
