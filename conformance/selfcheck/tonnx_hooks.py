"""Hooks around ``bridge.ToNNX``'s call, shared by this direction's faults and the benign perturbations.

``wrap_call(hook)`` replaces ``ToNNX.__call__`` with ``hook(base, self, args,
kwargs)``, where ``base(self, *args, **kwargs)`` is the real call: the lazy
init (``lazy_init`` runs the call while the model is initialising) and every
later call go through it. Wrapping again wraps the real call, not the last hook.
"""

from __future__ import annotations

from typing import Callable


def wrap_call(hook: Callable) -> None:
    from flax.nnx import bridge

    cls = bridge.ToNNX
    real = cls.__dict__.get("_conformance_real_call", cls.__call__)
    cls._conformance_real_call = real

    def __call__(self, *args, **kwargs):
        return hook(real, self, args, kwargs)

    cls.__call__ = __call__


def restore_call() -> None:
    """``ToNNX.__call__`` back to the real one (the project's tests undo an installed hook with it)."""
    from flax.nnx import bridge

    real = bridge.ToNNX.__dict__.get("_conformance_real_call")
    if real is not None:
        bridge.ToNNX.__call__ = real


def initializing(model) -> bool:
    """True while ``lazy_init`` runs the model's call (Linen ``init`` instead of ``apply``)."""
    return bool(model._pytree__state.initializing)


def traced(x) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def dense_params(model):
    """(kernel, bias) values of a ToNNX-wrapped ``nn.Dense`` after its lazy init, or None for any other module."""
    import flax.linen as nn

    from reference import _compat

    if not isinstance(model.to_nnx__module, nn.Dense) or initializing(model):
        return None
    kernel, bias = getattr(model, "kernel", None), getattr(model, "bias", None)
    if kernel is None or bias is None:
        return None
    return _compat.get_value(kernel), _compat.get_value(bias)


def stream_keys(model) -> dict:
    """One key from each of the model's rng streams, ``default`` renamed ``params`` (what ToNNX hands Linen)."""
    rngs = model.to_nnx__rngs
    keys = {name: stream() for name, stream in rngs.items()} if rngs is not None else {}
    if "params" not in keys and "default" in keys:
        keys["params"] = keys.pop("default")
    return keys


def numbers_hook(fn: Callable) -> Callable:
    """A call hook that keeps ToNNX's own call and replaces only the numbers of a wrapped ``nn.Dense``.

    ``fn(x, kernel, bias, y)`` returns the replacement (or None to keep ``y``),
    as the ``to_linen`` direction's apply hooks do (``benign._numerics``).
    """

    def call(base, self, args, kw):
        y = base(self, *args, **kw)
        params = dense_params(self)
        if params is None or not args:
            return y
        out = fn(args[0], params[0], params[1], y)
        return y if out is None else out.astype(y.dtype)

    return call
