"""Linen pipelines around a bridged module: parents, lifted transforms, partition names, checkpoints.

Every pipeline wraps ``Affine``, an ``nnx.Linear(width -> features)`` as the
reference holds one, built through ``_compat.to_linen`` at call time (so an
injected fault is seen). Builders are cached per shape: jax's caches then hit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from conformance.core import config
from conformance.numerics import errormodel
from conformance.helpers.harness import tree_paths, unbox
from reference import _compat

CHILD = "child"  # the explicit name the parents give the bridged module
PARTITION = config.PIPELINE_PARTITION  # (None, "model"): the kernel's annotated names
STACK_AXIS = config.PIPELINE_STACK_AXIS  # the partition name of the stacked (scan/vmap) axis
NESTING_FORMS = ("setup", "compact_named", "auto")


@functools.lru_cache(maxsize=None)
def affine_class(partitioned: bool = False):
    """An NNX module holding one Linear; ``negated`` is a second method, ``partitioned`` annotates the kernel."""
    nnx = _compat.nnx
    # One initializer per class: before flax 0.10.6 the variables hold a graphdef that names it, and two inits must agree.
    kw = {"kernel_init": nnx.with_partitioning(nnx.initializers.lecun_normal(), PARTITION)} if partitioned else {}

    class Affine(nnx.Module):
        def __init__(self, width, features, *, rngs):
            self.linear = nnx.Linear(width, features, rngs=rngs, **kw)

        def __call__(self, x):
            return self.linear(x)

        def negated(self, x):
            return -self.linear(x)

    return Affine


def bridged(width: int, features: int, partitioned: bool = False, **kw):
    """``to_linen(Affine, width, features, **kw)``: positional constructor arguments, as teams pass them."""
    with _compat.lazy_sharding():
        return _compat.to_linen(affine_class(partitioned), int(width), int(features), **kw)


def init_in(module, key, *xs, **kw):
    """``module.init`` with partition annotations kept as metadata (see ``_compat.lazy_sharding``)."""
    with _compat.lazy_sharding():
        return module.init(key, *xs, **kw)


# --- parents -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def parent(form: str, width: int, features: int):
    """A Linen parent holding the bridged module, named as ``form`` says; ``negated`` reaches its second method."""
    import flax.linen as nn

    if form == "setup":

        class SetupParent(nn.Module):
            def setup(self):
                self.child = bridged(width, features)

            def __call__(self, x):
                return self.child(x)

            def negated(self, x):
                return self.child.negated(x)

        return SetupParent()
    if form == "compact_named":

        class CompactParent(nn.Module):
            @nn.compact
            def __call__(self, x):
                return bridged(width, features, name=CHILD)(x)

        return CompactParent()
    if form == "auto":

        class AutoParent(nn.Module):
            @nn.compact
            def __call__(self, x):
                return bridged(width, features)(x)

        return AutoParent()
    if form == "siblings":

        class Siblings(nn.Module):
            @nn.compact
            def __call__(self, x):
                return bridged(width, features, name="first")(x), bridged(width, features, name="second")(x)

        return Siblings()
    raise ValueError(f"form must be one of {NESTING_FORMS + ('siblings',)}; got {form!r}")


def expected_child_names(form: str) -> tuple:
    """Where the parent's params must put the child: its explicit name, or Linen's ``<Class>_0`` rule."""
    if form == "auto":
        return (f"{type(bridged(1, 1)).__name__}_0",)
    if form == "siblings":
        return ("first", "second")
    return (CHILD,)


# --- lifted transforms ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def scanned(width: int, layers: int, split: bool = True, partitioned: bool = False):
    """``nn.scan`` of a square bridged layer over ``layers``, params stacked on axis 0."""
    import flax.linen as nn

    class Layer(nn.Module):
        @nn.compact
        def __call__(self, h, _):
            return bridged(width, width, partitioned, name=CHILD)(h), None

    stack = nn.scan(
        Layer, variable_axes={"params": 0}, split_rngs={"params": split}, length=layers,
        metadata_params={nn.PARTITION_NAME: STACK_AXIS},
    )

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            return stack(name="layers")(x, None)[0]

    return Stack()


@functools.lru_cache(maxsize=None)
def stateful_class():
    """Dropout, then BatchNorm (training mode), then a square Linear: it returns the dropout mask beside its output."""
    nnx = _compat.nnx

    class Stateful(nnx.Module):
        def __init__(self, width, *, rngs):
            self.drop = nnx.Dropout(config.PIPELINE_DROPOUT_RATE, rngs=rngs)
            self.bn = nnx.BatchNorm(width, use_running_average=False, momentum=config.ZOO_BN_MOMENTUM,
                                    epsilon=config.ZOO_BN_EPSILON, rngs=rngs)
            self.linear = nnx.Linear(width, width, rngs=rngs)

        def __call__(self, h):
            mask = self.drop(jnp.ones_like(h)) != 0
            return self.linear(self.bn(h)), mask

    return Stateful


@functools.lru_cache(maxsize=None)
def scanned_stateful(width: int, layers: int, split_dropout: bool):
    """``nn.scan`` of ``stateful_class``: params and batch_stats stacked; dropout keys split per layer or shared."""
    import flax.linen as nn

    class Layer(nn.Module):
        @nn.compact
        def __call__(self, h, _):
            with _compat.lazy_sharding():
                block = _compat.to_linen(stateful_class(), int(width), name=CHILD)
            return block(h)

    stack = nn.scan(Layer, variable_axes={"params": 0, "batch_stats": 0},
                    split_rngs={"params": True, "dropout": split_dropout}, length=layers)

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            return stack(name="layers")(x, None)  # (output, masks stacked per layer)

    return Stack()


@functools.lru_cache(maxsize=None)
def vmapped(width: int, features: int, partitioned: bool = False):
    """``nn.vmap`` over an ensemble axis: params and inputs both mapped on axis 0."""
    import flax.linen as nn

    class One(nn.Module):
        @nn.compact
        def __call__(self, x):
            return bridged(width, features, partitioned, name=CHILD)(x)

    return nn.vmap(
        One, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=0, out_axes=0,
        metadata_params={nn.PARTITION_NAME: STACK_AXIS},
    )()


@functools.lru_cache(maxsize=None)
def wrapped(transform: str, width: int, features: int):
    """The bridged module inside a parent lifted by ``nn.remat`` or ``nn.jit``."""
    import flax.linen as nn

    class One(nn.Module):
        @nn.compact
        def __call__(self, x):
            return bridged(width, features, name=CHILD)(x)

    lift = {"remat": nn.remat, "jit": nn.jit}
    if transform not in lift:
        raise ValueError(f"transform must be one of {tuple(lift)}; got {transform!r}")
    return lift[transform](One)()


# --- the float64 oracle of a stack of affine layers ------------------------------------------------------


def chain_oracle(x, kernels, biases, dtype):
    """The exact output of ``h <- h @ K_i + b_i`` over the layers, and the bound on one computed chain.

    Each layer adds the affine error of its product (errormodel.affine_error,
    γ_n over the magnitude of its input and params), and carries the error of
    its input through |K_i|: δ_i = δ_{i-1}|K_i| + γ_n((|e_{i-1}| + δ_{i-1})|K_i| + |b_i|),
    first order in u, with e the exact chain (docs/error-model.md, "Stacked layers").
    """
    e = np.asarray(x, np.float64)
    delta = np.zeros_like(e)
    n = int(e.shape[-1])
    for k, b in zip(kernels, biases):
        k64, b64 = np.asarray(k, np.float64), np.asarray(b, np.float64)
        magnitude = (np.abs(e) + delta) @ np.abs(k64) + np.abs(b64)
        delta = delta @ np.abs(k64) + errormodel.affine_error(n, dtype, magnitude)
        e = e @ k64 + b64
    return e, delta


def child(variables, *names) -> dict:
    """What a parent holds for its child at ``names``, in every collection (flax < 0.10.6 keeps a graphdef in 'nnx')."""
    out = {}
    for col, tree in variables.items():
        for name in names:
            tree = tree.get(name) if hasattr(tree, "get") else None
        if tree is not None:
            out[col] = tree
    return out


def stacked_slices(child_variables: dict, layers: int) -> list:
    """Each layer's variables of a stacked child: params sliced on the stacked axis (unboxed), other collections as held."""
    params = unbox(child_variables["params"])
    rest = {c: t for c, t in child_variables.items() if c != "params"}
    return [{"params": jax.tree_util.tree_map(lambda a, i=i: a[i], params), **rest} for i in range(layers)]


def array_layout(tree) -> dict:
    """``{path: (shape, dtype)}`` of the array leaves (a graphdef's leaves are not arrays)."""
    return {p: (tuple(a.shape), str(a.dtype)) for p, a in tree_paths(tree).items() if hasattr(a, "shape")}




# --- compiled entry points (cached per module: one compile per shape and device) ---------------------


def per_module(fn):
    """``functools.lru_cache`` keyed by the module's identity: a ToLinen module is unhashable before flax 0.10.2.

    The builders above are cached, so a module's identity is stable; the cache
    keeps the module alive, so its id is never reused.
    """
    cache: dict = {}

    @functools.wraps(fn)
    def cached(module, *args):
        key = (id(module), *args)
        if key not in cache:
            cache[key] = (module, fn(module, *args))
        return cache[key][1]

    return cached


@per_module
def jit_init(module):
    """``jit(module.init)`` with the seed traced; partition annotations kept as metadata."""
    from reference import prng_key

    return jax.jit(lambda seed, x: init_in(module, prng_key(seed), x))


def apply_in(module, variables, *xs, **kw):
    """``module.apply`` with partition annotations kept as metadata (apply rebuilds the NNX module)."""
    with _compat.lazy_sharding():
        return module.apply(variables, *xs, **kw)


@per_module
def jit_apply(module, method: str | None = None):
    if method is None:
        return jax.jit(lambda v, x: apply_in(module, v, x))
    return jax.jit(lambda v, x: apply_in(module, v, x, method=method))


@functools.lru_cache(maxsize=None)
def top_level(width: int, features: int):
    """The same bridged module at the top level: the oracle of every nested form (one module per shape)."""
    return bridged(width, features)


@per_module
def jit_init_with_output(module):
    from reference import prng_key

    def run(seed, x):
        with _compat.lazy_sharding():
            return module.init_with_output(prng_key(seed), x)

    return jax.jit(run)


@per_module
def jit_apply_nnx_method(module, name: str):
    return jax.jit(lambda v, x: apply_in(module, v, x, nnx_method=name))



# --- mutable state beyond batch_stats ----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def counting_class():
    """An affine layer with a team's own ``nnx.Variable`` subclass counting calls, and a sown intermediate."""
    nnx = _compat.nnx

    class StepCount(nnx.Variable):  # not the tier's CallCount: flax files both under their class name
        pass

    class Counting(nnx.Module):
        def __init__(self, width, features, *, rngs):
            self.linear = nnx.Linear(width, features, rngs=rngs)
            self.calls = StepCount(jnp.zeros((), jnp.int32))

        def __call__(self, x):
            y = self.linear(x)
            _compat.set_value(self.calls, _compat.get_value(self.calls) + 1)
            self.sow(nnx.Intermediate, "hidden", y)
            return y

    return Counting, StepCount


def counting(width: int, features: int):
    cls, _ = counting_class()
    return _counting(int(width), int(features), cls)


@functools.lru_cache(maxsize=None)
def _counting(width, features, cls):
    return _compat.to_linen(cls, width, features)


@functools.lru_cache(maxsize=None)
def creating_class():
    """An affine layer that creates a Variable of its own type during the call (the NNX VAE example's KL loss)."""
    nnx = _compat.nnx

    class CreatedLoss(nnx.Variable):  # a name no other layer of the suite files a collection under
        pass

    class Creating(nnx.Module):
        def __init__(self, width, features, *, rngs):
            self.linear = nnx.Linear(width, features, rngs=rngs)

        def __call__(self, x):
            y = self.linear(x)
            self.loss = CreatedLoss(jnp.mean(jnp.square(y)))
            return y

    return Creating, CreatedLoss


@functools.lru_cache(maxsize=None)
def creating(width: int, features: int):
    return _compat.to_linen(creating_class()[0], int(width), int(features))


def custom_collection(variables) -> str:
    """The collection init filed the call count under: the Variable subclass's name in every release (``StepCount``).

    Read off the variables, not from flax's private registry (its API moved
    between releases); an init that files it nowhere, or twice, is named.
    """
    cls_name = counting_class()[1].__name__
    found = [c for c in variables if c not in ("params", "nnx")]
    assert found == [cls_name], (f"init's variables hold the collections {sorted(variables)}, but should hold the call "
                                 f"count under its own collection {cls_name!r} beside params")
    return found[0]
