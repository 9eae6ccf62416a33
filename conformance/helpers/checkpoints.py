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


def placed(target, device=None):
    """``target``'s abstract leaves given a single-device sharding on ``device`` (default: jax's default device).

    ``device`` is a jax device or the suite's id (``"cpu:0"``). ``jax.eval_shape`` gives leaves with no placement,
    and orbax then looks for the device the checkpoint was saved from among ``jax.local_devices()``: on a GPU
    host those are the GPUs alone, so a checkpoint saved from a CPU device would not restore ("Device cpu:0
    was not found"). A pipeline names its placement; so does the suite.
    """
    from conformance.helpers.devices import device_by_id

    if device is None:
        device = jax.devices()[0]
    elif isinstance(device, str):
        device = device_by_id(device)
    sharding = jax.sharding.SingleDeviceSharding(device)

    def place(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct) and getattr(leaf, "sharding", None) is None:
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
        return leaf

    return jax.tree.map(place, target)


def orbax_restore(path: str, target, device=None):
    """Restore into ``target`` (an abstract tree: what ``jax.eval_shape(init)`` gives), placed on ``device``."""
    import orbax.checkpoint as ocp

    target = placed(target, device)
    if hasattr(ocp, "StandardCheckpointer"):
        return ocp.StandardCheckpointer().restore(path, target)
    return ocp.PyTreeCheckpointer().restore(path, item=target)


CHECKPOINT_LIBRARIES = ("orbax", "flax.serialization")


def restore_with(library: str, saved, target, path: str, device=None):
    """Save ``saved`` with ``library`` and restore it into ``target`` (orbax: placed on ``device``)."""
    if library == "orbax":
        orbax_save(path, saved)
        return orbax_restore(path, target, device)
    if library == "flax.serialization":
        from flax import serialization

        return serialization.from_bytes(target, serialization.to_bytes(saved))
    raise ValueError(f"library must be one of {CHECKPOINT_LIBRARIES}; got {library!r}")
