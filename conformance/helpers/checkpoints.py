"""Abstract init and checkpoints: ``lazy_init``, orbax save and restore, ``flax.serialization``."""

from __future__ import annotations

import jax

from reference import _compat


def lazy_init(module, seed, x):
    """Linen's ``lazy_init`` (shapes of ``x`` only), partition annotations kept as metadata."""
    from reference import prng_key

    with _compat.lazy_sharding():
        return module.lazy_init(prng_key(seed), jax.ShapeDtypeStruct(x.shape, x.dtype))


def on_device(tree, device: str):
    """``tree``'s arrays committed to ``device`` (a restored checkpoint comes back on the default device)."""
    from conformance.helpers.devices import device_by_id

    return jax.device_put(tree, device_by_id(device))


def orbax_save(path: str, tree) -> None:
    """Save ``tree`` to disk with orbax, waiting until it is written."""
    import orbax.checkpoint as ocp

    ckpt = ocp.StandardCheckpointer() if hasattr(ocp, "StandardCheckpointer") else ocp.PyTreeCheckpointer()
    ckpt.save(path, tree)
    if hasattr(ckpt, "wait_until_finished"):
        ckpt.wait_until_finished()


def orbax_restore(path: str, target):
    """Restore into ``target`` (an abstract tree: what ``jax.eval_shape(init)`` gives)."""
    import orbax.checkpoint as ocp

    if hasattr(ocp, "StandardCheckpointer"):
        return ocp.StandardCheckpointer().restore(path, target)
    return ocp.PyTreeCheckpointer().restore(path, item=target)


CHECKPOINT_LIBRARIES = ("orbax", "flax.serialization")


def restore_with(library: str, saved, target, path: str):
    """Save ``saved`` with ``library`` and restore it into ``target``."""
    if library == "orbax":
        orbax_save(path, saved)
        return orbax_restore(path, target)
    if library == "flax.serialization":
        from flax import serialization

        return serialization.from_bytes(target, serialization.to_bytes(saved))
    raise ValueError(f"library must be one of {CHECKPOINT_LIBRARIES}; got {library!r}")
