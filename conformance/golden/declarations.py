"""A declared module's fingerprint: what the golden record of its outputs depends on.

A record made from one declaration says nothing about another that happens
to share its name (a team's ``real_cnn`` is not the tier's). The fingerprint
covers every :class:`~conformance.modules.declare.ModuleSpec` field that
changes what is computed: the class (module and qualified name), constructor
arguments, the example calls' structure, shapes and dtypes, the method, the
call keywords of each mode, the mode switch, streams and collections. Fields
added later are covered too (every field is, except those in
``IGNORED_FIELDS``). Arrays count by shape and dtype, callables by module and
qualified name, other values by a repr with memory addresses removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

# Fields that do not change what the record holds: the test id, where the
# declaration came from, an unused legacy field, and the vmap property's axis.
IGNORED_FIELDS = ("name", "source", "accumulation", "batch_axis")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def stable_repr(value) -> str:
    """A repr that is the same in every process: arrays by shape and dtype, callables by name, no addresses."""
    import numpy as np

    from conformance.modules.declare import Call

    if isinstance(value, Call):
        return f"Call(args={stable_repr(tuple(value.args))}, kwargs={stable_repr(dict(value.kwargs))})"
    if isinstance(value, (np.ndarray, np.generic)) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return f"array(shape={tuple(np.shape(value))}, dtype={np.dtype(value.dtype).name})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(stable_repr(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict) or (hasattr(value, "keys") and hasattr(value, "items")):
        return "{" + ", ".join(f"{k!r}: {stable_repr(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, type) or callable(value):
        inner = getattr(value, "__wrapped__", None)  # jax.jit and functools.wraps keep the function they wrap
        return _qualname(inner if inner is not None and not isinstance(value, type) else value)
    return f"{_qualname(type(value))}({_ADDRESS.sub('', repr(value))})"


def describe(spec) -> dict:
    """``{field: stable repr}`` of every field that changes the record, the calls as ``inputs``."""
    from conformance.modules.declare import ModuleSpec

    out = {}
    for f in dataclasses.fields(ModuleSpec):
        if f.name in IGNORED_FIELDS:
            continue
        value = getattr(spec, f.name)
        if f.name == "nnx_class":
            out[f.name] = _qualname(value)
        elif f.name == "inputs":
            out[f.name] = stable_repr(tuple(spec.calls))
        else:
            out[f.name] = stable_repr(value)
    return out


def fingerprint_of(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(spec) -> str:
    """A short hash of :func:`describe`: equal declarations, equal fingerprints."""
    return fingerprint_of(describe(spec))


def differences(a: dict, b: dict) -> list[str]:
    """The fields two descriptions disagree on (``["kwargs", "nnx_class"]``)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
