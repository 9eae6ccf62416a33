"""Where the suite keeps its caches: one directory, moved by one variable.

    $CONFORMANCE_CACHE_DIR                 (if set)
    $XDG_CACHE_HOME/flax-bridge-conformance (if XDG_CACHE_HOME is set)
    ~/.cache/flax-bridge-conformance        (otherwise)

holds ``jax/`` (the persistent compilation cache), ``envs/`` (the gate's
environments), ``wheels/`` (the suite's wheel built for them),
``hypothesis/`` (Hypothesis' storage directory) and ``records/`` (golden
records written by ``python -m conformance record`` without ``--out``). Read at call time, so a
variable set after import still counts.
"""

from __future__ import annotations

import os

from conformance.core import config


def root() -> str:
    """The cache directory (not created here)."""
    given = os.environ.get(config.CACHE_DIR_ENV)
    if given:
        return os.path.abspath(os.path.expanduser(given))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), config.CACHE_DIR_NAME)


def part(name: str) -> str:
    """``root()/<name>`` for one of ``config.CACHE_PARTS``."""
    return os.path.join(root(), config.CACHE_PARTS[name])


def compilation_cache() -> str | None:
    """JAX's persistent compilation cache; None when $CONFORMANCE_COMPILATION_CACHE switches it off."""
    value = os.environ.get(config.COMPILATION_CACHE_ENV)
    if value is None:
        return part("jax")
    return None if value.lower() in ("", "0", "off", "none", "false") else value


def gate_envs() -> str:
    """The gate's environments: $CONFORMANCE_GATE_CACHE, else ``root()/envs``."""
    return os.environ.get(config.GATE_CACHE_ENV) or part("envs")


def use_for_hypothesis() -> None:
    """Point Hypothesis' storage directory (default ``./.hypothesis``) at ``root()/hypothesis``.

    With no example database Hypothesis still writes there: its cache of the
    constants found in the code under test. $HYPOTHESIS_STORAGE_DIRECTORY wins.
    """
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(part("hypothesis"))
