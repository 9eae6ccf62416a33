"""A fault: hooks that break the bridge in one plausible way, and the registry every corpus adds to.

``conformance/selfcheck/faults.py`` wraps the hooks around the real
``to_linen``; ``contract_faults`` and ``zoo_faults`` hold the corpus.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

FAULTS: dict[str, "Fault"] = {}


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    area: str
    description: str
    init: Callable | None = None  # (base_init, self, key, x) -> variables
    apply: Callable | None = None  # (base_apply, self, variables, x) -> y
    construct: Callable | None = None  # (cls, args, kwargs) -> (cls, args, kwargs) passed on to the real to_linen
    kwargs: Callable | None = None  # (cls, kwargs) -> the kwargs passed on to the real to_linen
    attrs: dict | None = None  # class attributes of the broken module
    reference: Callable | None = None  # (reference module) -> None: breaks the reference's own checks
    apply_kw: Callable | None = None  # (base_apply, self, variables, x, kw) -> out: sees rngs= and mutable=
    modules: str | None = None  # a factory 'package.module:function' declaring broken user modules
    patch: Callable | None = None  # () -> None: breaks a flax layer the bridge wraps (a regression inside it)
    only_warns: bool = False  # changes no number, only warns: caught by the warnings a run records, not by a property


def fault(area: str, description: str):
    def register(fn):
        hooks = fn()
        FAULTS[fn.__name__] = Fault(fn.__name__, area, description, **hooks)
        return fn

    return register


# --- helpers the faults share (jax imported lazily: the plugin loads before jax is set up) ---


def _jax():
    import jax
    import jax.numpy as jnp

    return jax, jnp


def _is_traced(x) -> bool:
    jax, _ = _jax()
    return isinstance(x, jax.core.Tracer)


def _is_vmapped(x) -> bool:
    try:
        from jax._src.interpreters.batching import BatchTracer
    except ImportError:  # pragma: no cover - older jax
        from jax.interpreters.batching import BatchTracer
    return isinstance(x, BatchTracer)


def _map_leaf(variables, name: str, fn):
    """Apply ``fn`` to params/linear/<name>."""
    v = {c: dict(t) for c, t in variables.items()}
    lin = dict(v["params"]["linear"])
    lin[name] = fn(lin[name])
    v["params"] = {**v["params"], "linear": lin}
    return v
