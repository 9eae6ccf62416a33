"""A mesh over the suite's devices: partition specs read off a variables tree, shardings, placed variables."""

from __future__ import annotations


import jax
import numpy as np

from conformance.core import config
from reference import _compat
from conformance.helpers.pipelines import PARTITION, STACK_AXIS, jit_init, per_module


def platform_devices(platform: str) -> list:
    from conformance.helpers.devices import all_devices

    return [d for d in all_devices() if d.platform == platform]


def mesh_for(platform: str, features: int):
    """A ('data', 'model') mesh over the platform's devices; 'model' takes as many as divide ``features``.

    jit's out_shardings need the sharded axis divisible by the mesh axis, so
    the model axis is the largest device count that divides the feature count.
    """
    from jax.sharding import Mesh

    devs = platform_devices(platform)
    model = max(k for k in range(1, len(devs) + 1) if len(devs) % k == 0 and int(features) % k == 0)
    return Mesh(np.array(devs).reshape(len(devs) // model, model), config.PIPELINE_MESH_AXES)


def ambient(mesh):
    """``mesh`` as the ambient mesh: ``jax.set_mesh`` (new), ``jax.sharding.use_mesh``, or the mesh itself (old)."""
    for fn in (getattr(jax, "set_mesh", None), getattr(jax.sharding, "use_mesh", None)):
        if fn is not None:
            return fn(mesh)
    return mesh


def shardings(mesh, specs):
    """A NamedSharding on ``mesh`` for every PartitionSpec of ``specs`` (nn.get_partition_spec's tree)."""
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda s: isinstance(s, PartitionSpec))


def partition_specs(variables) -> dict:
    """{'params/linear/kernel': PartitionSpec} from ``nn.get_partition_spec``."""
    import flax.linen as nn
    from jax.sharding import PartitionSpec

    with _compat.lazy_sharding():  # flax 0.12.0 rebuilds an annotated variable to read its spec
        specs = nn.get_partition_spec(variables)
    flat, _ = jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda s: isinstance(s, PartitionSpec))
    out = {}
    for path, spec in flat:
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        if names[-1] == "value":  # flax 0.9 keeps each leaf in a VariableState: its spec sits at .value
            names = names[:-1]
        out["/".join(names)] = spec
    return out


def expected_spec(path: str, stacked: bool = False) -> tuple:
    """The names the pipeline annotated: the kernel's PARTITION (after the stacked axis's name); an unannotated leaf has none."""
    if path.endswith("kernel"):
        return ((STACK_AXIS,) if stacked else ()) + tuple(PARTITION)
    return ()


@per_module
def sharded_init(module, mesh):
    """``jit(init, out_shardings=...)`` with the shardings read off the abstract init's partition specs."""
    import flax.linen as nn

    init = jit_init(module)
    compiled: dict = {}  # one jit per input shape, not one per call

    def run(seed, x):
        key = (tuple(x.shape), str(x.dtype))
        if key not in compiled:
            abstract = jax.eval_shape(init, seed, x)
            with _compat.lazy_sharding():
                specs = nn.get_partition_spec(abstract)
            compiled[key] = jax.jit(init, out_shardings=shardings(mesh, specs))
        return compiled[key](seed, x)

    return run


def place_sharded(variables, mesh):
    """``variables`` placed on ``mesh`` as their partition specs say."""
    import flax.linen as nn

    with _compat.lazy_sharding():
        specs = nn.get_partition_spec(variables)
    return jax.device_put(variables, shardings(mesh, specs))


def replicated(x, mesh):
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.device_put(x, NamedSharding(mesh, PartitionSpec()))
