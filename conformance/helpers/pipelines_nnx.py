"""Linen layers inside NNX models: small Linen modules wrapped by ``bridge.ToNNX``, initialised by ``bridge.lazy_init``.

Each module is a Linen ``nn.Dense(features)`` with one thing more: a second
method, a partition annotation, a sown value, a dropout, a batch norm. The
oracle of every pipeline property is the same Linen module run natively
(``module.apply``) on the variables the NNX model holds, read off its state by
``linen_variables``, which maps NNX variable types to Linen collections itself
(not through the bridge's own conversion, which the properties check).
"""

from __future__ import annotations

import contextlib
import functools

import jax
import numpy as np

from conformance.core import config
from conformance.numerics import errormodel
from reference import _compat

SOWN = "hidden"  # the name the sowing module sows its hidden value under
PARTITION = config.PIPELINE_PARTITION  # (None, "model"): the mesh names of the kernel's axes
LOGICAL = config.TONNX_LOGICAL_NAMES
LOGICAL_RULES = config.TONNX_LOGICAL_RULES
BOXES = config.TONNX_PARTITION_BOXES
OWN_COLLECTION = config.TONNX_OWN_COLLECTION
REGISTERED_COLLECTION = config.TONNX_REGISTERED_COLLECTION
MODULE_KINDS = ("block", "sowing", "noisy", "normed", "counting", "registered")


@functools.lru_cache(maxsize=None)
def linen_class(kind: str, box: str | None = None):
    """The Linen class of ``kind`` (``MODULE_KINDS``); ``box`` annotates the block's kernel (``BOXES``)."""
    import flax.linen as nn

    if box is not None and (kind != "block" or box not in BOXES):
        raise ValueError(f"box must be None or, for the block, one of {BOXES}; got {box!r} for {kind!r}")
    init = nn.initializers.lecun_normal()
    if box == "Partitioned":
        init = nn.with_partitioning(init, PARTITION)
    elif box == "LogicallyPartitioned":
        init = nn.with_logical_partitioning(init, LOGICAL)

    if kind == "block":

        class Block(nn.Module):
            features: int

            def setup(self):
                self.dense = nn.Dense(self.features, kernel_init=init)

            def __call__(self, x):
                return self.dense(x)

            def negated(self, x):
                return -self.dense(x)

            def annotation(self):
                """What the layer reads of its own kernel: its box's type and names (a layer that constrains its
                activations by its params' names reads them so)."""
                kernel = self.variables["params"]["dense"]["kernel"]
                return type(kernel).__name__, tuple(getattr(kernel, "names", None) or ())

            def collections(self):
                """The collections the layer is applied with, as it reads ``self.variables``."""
                return tuple(sorted(self.variables))

        return Block
    if kind == "sowing":

        class Sowing(nn.Module):
            features: int

            @nn.compact
            def __call__(self, x):
                h = nn.Dense(self.features)(x)
                self.sow("intermediates", SOWN, h)
                return 2 * h  # exact: the output is not what was sown

        return Sowing
    if kind == "noisy":

        class Noisy(nn.Module):
            """Dropout on the layer's output, and a mask probe: dropout of TONNX_DROPOUT_CELLS ones."""

            features: int

            @nn.compact
            def __call__(self, x, deterministic: bool = False):
                h = nn.Dense(self.features)(x)
                drop = nn.Dropout(config.TONNX_DROPOUT_RATE)
                probe = np.ones((config.TONNX_DROPOUT_CELLS,), np.float32)
                return drop(h, deterministic=deterministic), drop(probe, deterministic=deterministic)

        return Noisy
    if kind == "normed":

        class NormedBlock(nn.Module):
            features: int

            @nn.compact
            def __call__(self, x, train: bool = False):
                h = nn.Dense(self.features)(x)
                return nn.BatchNorm(use_running_average=not train, momentum=config.ZOO_BN_MOMENTUM,
                                    epsilon=config.ZOO_BN_EPSILON)(h)

        class Normed(nn.Module):
            """The block one level down: a training call's update holds part of a subtree (the statistics
            beside the norm's own scale and bias, under the block's name), which must merge, not replace."""

            features: int

            @nn.compact
            def __call__(self, x, train: bool = False):
                return NormedBlock(self.features)(x, train)

        return Normed
    if kind in ("counting", "registered"):
        name = OWN_COLLECTION if kind == "counting" else REGISTERED_COLLECTION

        class Counting(nn.Module):
            """A collection of the layer's own: how often it was called while that collection was mutable (for
            "registered", a collection the team registered an NNX Variable type for: ``registered_type``)."""

            features: int

            @nn.compact
            def __call__(self, x):
                import jax.numpy as jnp

                calls = self.variable(name, "calls", lambda: jnp.zeros((), jnp.int32))
                if self.is_mutable_collection(name):
                    calls.value += 1
                return nn.Dense(self.features)(x)

        return Counting
    raise ValueError(f"kind must be one of {MODULE_KINDS}; got {kind!r}")


@functools.lru_cache(maxsize=None)
def registered_type():
    """The NNX Variable type registered for ``REGISTERED_COLLECTION``, as a team registers its own (once a process)."""
    from flax import nnx

    class RegisteredCounts(nnx.Variable):
        """A team's own kind of state: a call count it filters by type, as optimisers filter ``nnx.Param``."""

    _compat.register_variable_type(REGISTERED_COLLECTION, RegisteredCounts)
    return RegisteredCounts


def linen_module(kind: str, features: int, box: str | None = None):
    """A fresh Linen module of ``kind`` (a new instance each time: two models never share one)."""
    return linen_class(kind, box)(int(features))


def wrapped(kind: str, features: int, rngs, *xs, box: str | None = None, **kw):
    """``bridge.lazy_init(bridge.ToNNX(module, rngs=rngs), *xs, **kw)``: the NNX model a team builds.

    ``rngs`` is an ``nnx.Rngs`` or a seed (``nnx.Rngs(seed)``). Read through
    ``flax.nnx.bridge`` at call time, so an injected fault is seen.
    """
    from flax import nnx
    from flax.nnx import bridge

    if not isinstance(rngs, nnx.Rngs):
        rngs = nnx.Rngs(int(rngs))
    model = bridge.ToNNX(linen_module(kind, features, box), rngs=rngs)
    bridge.lazy_init(model, *xs, **kw)
    return model


def plain_attribute_values():
    """Values a team hangs on a model that are no NNX Variable and no array: a label, a count, a flag."""
    from hypothesis import strategies as st

    return st.sampled_from(config.TONNX_PLAIN_ATTRIBUTE_VALUES)


def other_seed(seed: int) -> int:
    """A seed next to ``seed``, inside the int32 domain."""
    return seed + 1 if seed < config.SEED_MAX else seed - 1


# --- NNX state read as Linen variables --------------------------------------------------------------


def _collections() -> dict:
    from flax import nnx

    return {nnx.Param: "params", nnx.BatchStat: "batch_stats", nnx.Intermediate: "intermediates"}


def linen_variables(model) -> dict:
    """The model's variables as Linen holds them: {'params': {...}, 'batch_stats': {...}, ...}.

    Each NNX variable goes to the collection of its type (its exact type: a
    subclass is a collection of its own; a type the bridge made for a Linen
    collection flax does not name goes to that name); RNG state is the
    wrapper's own and is left out.
    """
    from flax import nnx

    names = _collections()
    out: dict = {}
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Variable) or isinstance(node, nnx.RngState):
            continue
        name = names.get(type(node)) or _compat.collection_of(type(node))
        if name is None:
            raise TypeError(f"the model holds a {type(node).__name__} at {'/'.join(map(str, path))}: no Linen "
                            f"collection known for it (known: {sorted(t.__name__ for t in names)})")
        tree = out.setdefault(name, {})
        path = _compat.without_collection(path, name)
        for key in path[:-1]:
            tree = tree.setdefault(str(key), {})
        tree[str(path[-1])] = _compat.get_value(node)
    return out


def state_values(model, *filters) -> dict:
    """``nnx.state(model, *filters)`` as a nested dict of arrays (paths as Linen names them)."""
    from flax import nnx

    return _compat.pure_dict(nnx.state(model, *filters))


def _is_key(a) -> bool:
    dtype = getattr(a, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def with_key_data(tree):
    """``tree`` with typed PRNG keys (arrays or abstract) replaced by their key data, uint32 integers.

    Leaves then compare bit for bit, and orbax stores them in every release
    (orbax before 0.11 cannot restore a typed key: "Cannot interpret 'key<fry>'
    as a data type"); ``with_typed_keys`` wraps them back.
    """

    def data(a):
        if not _is_key(a):
            return a
        if isinstance(a, jax.ShapeDtypeStruct):
            return jax.eval_shape(jax.random.key_data, a)
        return jax.random.key_data(a)

    return jax.tree_util.tree_map(data, tree)


def with_typed_keys(tree, like):
    """``tree`` (from ``with_key_data``) with the leaves that are typed keys in ``like`` wrapped back into keys."""
    return jax.tree_util.tree_map(lambda d, ref: jax.random.wrap_key_data(d) if _is_key(ref) else d, tree, like)


def collection(model, name: str) -> dict:
    """One Linen collection of the model's state ({} when it holds none)."""
    return linen_variables(model).get(name, {})


# --- meshes -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def on_mesh(mesh):
    """``mesh`` as the context's mesh (``mesh.ambient``) with the logical rules: where NNX shards an annotated variable as it creates it."""
    import flax.linen as nn

    from conformance.helpers.mesh import ambient

    with ambient(mesh), nn.logical_axis_rules(LOGICAL_RULES):
        yield


def partition_specs(model) -> dict:
    """{'dense/kernel': the names NNX reports for the variable (``nnx.get_partition_spec``)} for every param."""
    from flax import nnx
    from jax.sharding import PartitionSpec

    specs = nnx.get_partition_spec(nnx.state(model, nnx.Param))
    flat, _ = jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda s: isinstance(s, PartitionSpec))
    out = {}
    for path, spec in flat:
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        names = _compat.without_collection(tuple(n for n in names if n != "value"), "params")
        out["/".join(names)] = tuple(spec)
    return out


def place_by_names(model, mesh) -> None:
    """Place the model's params on ``mesh`` as their names say (logical names through the rules), in place.

    What a pipeline does after ``lazy_init`` when its flax does not shard on
    creation (before 0.12); from 0.12 the params are already placed so, and
    this moves nothing.
    """
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    state = nnx.state(model, nnx.Param)
    specs = nnx.get_partition_spec(state)
    rules = dict(LOGICAL_RULES)

    def sharding(spec):  # a logical name through the rules; a mesh axis's name as it is
        return NamedSharding(mesh, PartitionSpec(*(rules[n] if n in rules else n for n in tuple(spec))))

    shardings = jax.tree_util.tree_map(sharding, specs, is_leaf=lambda s: isinstance(s, PartitionSpec))
    nnx.update(model, jax.device_put(state, shardings))


def mesh_names(box: str) -> tuple:
    """The mesh axes the kernel's annotation names, the logical names mapped by the rules."""
    if box == "Partitioned":
        return tuple(PARTITION)
    rules = dict(LOGICAL_RULES)
    return tuple(rules[n] for n in LOGICAL)


def annotated_names(box: str) -> tuple:
    """The names the kernel is annotated with: mesh axes, or logical names."""
    return tuple(PARTITION) if box == "Partitioned" else tuple(LOGICAL)


# --- numbers ----------------------------------------------------------------------------------------


def dense_outputs_difference(x, kernel, bias):
    """Bound on two computations of ``x @ kernel + bias`` from two inits of the same seed (float32).

    The kernel's two draws may differ by the sampler model, the bias is exact
    zeros; each product adds its own affine error (error model, section 3).
    """
    k = np.asarray(kernel, np.float64)
    dk = errormodel.sampler_difference(k, errormodel.lecun_sigma(k.shape[0]))
    return errormodel.affine_difference(x, kernel, bias, dk, np.zeros(np.shape(bias)), np.float32)
