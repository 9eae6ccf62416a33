"""A subprocess with a cache directory of its own that still shares the compiled programs."""

from __future__ import annotations

import os

from conformance.core import cachedirs, config


def private_cache_env(root, env: dict | None = None) -> dict:
    """``env`` (default: this process's) with the suite's cache directory at ``root``: records, environments and
    wheels start empty there. JAX's compiled programs still come from this process's compilation cache: they are
    keyed by their contents (program, flags, versions), so sharing them changes no result, only what is compiled
    twice. A compilation cache switched off, or named, stays as it is."""
    out = dict(os.environ if env is None else env)
    out[config.CACHE_DIR_ENV] = str(root)
    shared = cachedirs.compilation_cache()
    if shared and config.COMPILATION_CACHE_ENV not in out:
        out[config.COMPILATION_CACHE_ENV] = shared
    return out
