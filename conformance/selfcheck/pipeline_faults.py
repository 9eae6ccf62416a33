"""Faults of the bridge inside Linen pipelines: names, methods, lifted transforms, metadata, checkpoints, collections.

Most act on the bridged module's own ``__call__`` or on the bridge's helpers
(``flax.nnx.bridge.wrappers``), since a parent's init and apply never call
the child's ``init``/``apply``. The properties that catch them are in
``conformance/properties/pipelines``.
"""

from __future__ import annotations

from conformance.selfcheck.fault import _is_traced, _jax, fault


def _linen():
    import flax.linen as nn

    return nn


def _nested(self) -> bool:
    """Inside a Linen parent (a top-level apply binds the module to a scope, not to a Module)."""
    return isinstance(self.parent, _linen().Module)


def _fresh(self, *xs, **kw):
    """The NNX module built afresh from a fixed key, called on the inputs: params it was never given."""
    from flax import nnx

    kw.pop("nnx_method", None)
    module = self.nnx_class(*self.args, **dict(self.kwargs), rngs=nnx.Rngs(0))
    return module(*xs, **kw)


def _base_call(self):
    """The real ToLinen.__call__ (the class the faulty module derives from)."""
    return type(self).__mro__[1].__call__


@fault("pipelines: nesting", "to_linen drops name=: the child is auto-named instead of taking the parent's name")
def nested_name_dropped():
    def kwargs(cls, kw):
        kw = dict(kw)
        kw.pop("name", None)
        return kw

    return dict(kwargs=kwargs)


@fault("pipelines: nesting", "apply(method=...) and nnx_method= are ignored: __call__ runs instead")
def method_ignored():
    def call(self, *xs, nnx_method=None, **kw):
        return _base_call(self)(self, *xs, **kw)

    def getattr_(self, name):
        cls = type(self).__mro__[1]
        if callable(getattr(self.nnx_class, name, None)) and not hasattr(cls, name):
            return lambda *xs, **kw: self(*xs, **kw)
        return cls.__getattr__(self, name)

    return dict(attrs={"__call__": call, "__getattr__": getattr_})


@fault("pipelines: lifted transforms", "a nested bridge under a trace (jit, nn.scan, nn.vmap, nn.remat) computes with freshly "
       "initialised params instead of the variables its parent holds")
def traced_nested_params_ignored():
    def call(self, *xs, **kw):
        if _nested(self) and not self.is_initializing() and any(_is_traced(x) for x in xs):
            return _fresh(self, *xs, **kw)
        return _base_call(self)(self, *xs, **kw)

    return dict(attrs={"__call__": call})


@fault("pipelines: nesting", "init_with_output returns an output computed from other params than the variables it stores")
def init_output_from_other_params():
    def call(self, *xs, **kw):
        out = _base_call(self)(self, *xs, **kw)
        return _fresh(self, *xs, **kw) if self.is_initializing() else out

    return dict(attrs={"__call__": call})


@fault("pipelines: lifted transforms", "the bridge draws from a fixed key, not its scope's: siblings and stacked layers get "
       "equal params and equal dropout masks")
def params_from_fixed_key():
    def patch():
        from flax.nnx.bridge import wrappers

        real = getattr(wrappers, "_conformance_real_rngs", wrappers.linen_rngs_dict)
        wrappers._conformance_real_rngs = real

        def rngs(module, add_default=False):
            out = real(module, add_default=add_default)
            return {stream: _jax()[0].random.PRNGKey(0) for stream in out}

        wrappers.linen_rngs_dict = rngs

    return dict(patch=patch)


@fault("pipelines: lifted transforms", "the bridged module's output stops gradients: grads of its params are zero")
def output_gradient_stopped():
    def patch():
        from flax.nnx.bridge import wrappers

        real = getattr(wrappers, "_conformance_real_method", wrappers._get_module_method)
        wrappers._conformance_real_method = real

        def method(module, name):
            fn = real(module, name)
            return lambda *a, **k: _jax()[0].lax.stop_gradient(fn(*a, **k))

        wrappers._get_module_method = method

    return dict(patch=patch)


@fault("pipelines: partitioning", "the bridge stores variables without their metadata: partition names are lost")
def partition_names_dropped():
    from reference import _compat

    return dict(kwargs=lambda cls, kw: {**kw, "metadata_fn": _compat.get_value})


@fault("pipelines: partitioning", "the metadata box drops its partition names when a lifted transform (nn.scan, nn.vmap) "
       "adds the stacked axis")
def partition_names_lost_under_transform():
    def patch():
        from flax.nnx.bridge import variables

        def add_axis(self, index, params):
            # Every release's key for the names: sharding (flax < 0.11), sharding_names, out_sharding (0.12).
            kept = {k: v for k, v in self.metadata.items() if k not in ("sharding", "sharding_names", "out_sharding")}
            return self.replace(metadata=kept)

        variables.NNXMeta.add_axis = add_axis

    return dict(patch=patch)


@fault("pipelines: partitioning", "apply reassembles a sharded kernel's columns in the wrong order (a sharded apply differs)")
def shards_misordered():
    def apply(base, self, v, x):
        jax, jnp = _jax()
        box = v.get("params", {}).get("linear", {}).get("kernel")
        value = getattr(box, "value", box)
        sharding = getattr(value, "sharding", None)
        if _is_traced(value) or sharding is None or sharding.is_fully_replicated:
            return base(self, v, x)
        rolled = jnp.roll(value, 1, axis=-1)
        lin = {**v["params"]["linear"], "kernel": box.replace_boxed(rolled) if hasattr(box, "replace_boxed") else rolled}
        return base(self, {**v, "params": {**v["params"], "linear": lin}}, x)

    return dict(apply=apply)


@fault("pipelines: construction", "to_linen passes the constructor's positional arguments in reverse order")
def positional_args_reversed():
    return dict(construct=lambda cls, args, kw: (cls, tuple(reversed(args)), kw))


@fault("pipelines: construction", "to_linen accepts an instance and wraps it silently (its params, not the seed's)")
def instance_accepted():
    def construct(cls, args, kw):
        if isinstance(cls, type):
            return cls, args, kw
        instance = cls
        return (lambda *a, rngs=None, **k: instance), args, kw

    return dict(construct=construct)


@fault("pipelines: checkpoints", "the metadata box keeps its array as static metadata, not as a leaf: checkpoints "
       "and tree maps miss it")
def kernel_box_static():
    def metadata_fn(variable):
        from conformance.selfcheck.static_box import StaticBox
        from reference import _compat

        value = _compat.get_value(variable)
        return StaticBox(value) if getattr(value, "ndim", 0) >= 2 else value

    return dict(kwargs=lambda cls, kw: {**kw, "metadata_fn": metadata_fn})


@fault("pipelines: collections", "apply writes back params only: updates to any other collection (a team's own, "
       "intermediates) are dropped although mutable")
def update_collection_dropped():
    def is_mutable(self, col):
        return col == "params" and type(self).__mro__[1].is_mutable_collection(self, col)

    return dict(attrs={"is_mutable_collection": is_mutable})
