"""Small shims over the flax and jax APIs that moved between releases."""

from __future__ import annotations

import contextlib

import jax
from flax import nnx  # noqa: F401  (re-exported: the suite reaches nnx through here)
from flax.nnx import bridge


def to_linen(cls, *args, **kwargs):
    """``bridge.to_linen`` looked up at call time, so a patched bridge is seen."""
    fn = getattr(bridge, "to_linen", None)
    if fn is not None:
        return fn(cls, *args, **kwargs)
    return bridge.ToLinen(cls, args=args, kwargs=kwargs)


def enable_x64(on: bool = True):
    """Scoped x64 switch: ``jax.enable_x64`` (new) or ``jax.experimental.enable_x64`` (old)."""
    if hasattr(jax, "enable_x64") and callable(getattr(jax, "enable_x64")):
        return jax.enable_x64(on)
    from jax.experimental import enable_x64 as _enable, disable_x64 as _disable  # jax < 0.7

    return _enable() if on else _disable()


def x64_enabled() -> bool:
    return bool(jax.config.jax_enable_x64)


@contextlib.contextmanager
def maybe_x64(on: bool):
    if on and not x64_enabled():
        with enable_x64(True):
            yield
    else:
        yield
