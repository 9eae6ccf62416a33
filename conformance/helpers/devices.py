"""The devices the suite runs on: every device of every backend present, named ``platform:id``."""

from __future__ import annotations

import functools

import jax

BACKENDS = ("cpu", "gpu", "tpu")


@functools.lru_cache(maxsize=None)
def all_devices() -> tuple:
    """Every device of every backend present, CPU first."""
    found = []
    for backend in BACKENDS:
        try:
            found.extend(jax.devices(backend))
        except RuntimeError:
            continue
    return tuple(found)


def device_id(d) -> str:
    return f"{d.platform}:{d.id}"


def device_by_id(name: str):
    for d in all_devices():
        if device_id(d) == name:
            return d
    raise LookupError(f"no device {name!r}; present: {[device_id(d) for d in all_devices()]}")


