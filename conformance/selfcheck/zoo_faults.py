"""The zoo's faults (conformance/modules/zoo.py), its real-layer tier's (zoo_layers.py), and a team's broken module."""

from __future__ import annotations

from conformance.selfcheck.fault import _jax, fault

TIER = "conformance.modules.zoo_layers:real_layer_specs"  # the real-layer tier's factory (declared for these faults)


def _rewriting_updates(rewrite):
    """An apply hook that passes ``rewrite(variables, updates)`` back instead of a mutable apply's updates."""

    def apply_kw(base, self, v, x, kw):
        out = base(self, v, x, kw)
        if kw.get("mutable") and isinstance(out, tuple):
            y, updates = out
            return y, rewrite(v, updates)
        return out

    return apply_kw


@fault("zoo: dropout", "apply replaces every stream key it is given with PRNGKey(0): the same mask every step")
def dropout_key_ignored():
    def apply_kw(base, self, v, x, kw):
        if kw.get("rngs"):
            jax = _jax()[0]
            kw["rngs"] = {name: jax.random.PRNGKey(0) for name in kw["rngs"]}
        return base(self, v, x, kw)

    return dict(apply_kw=apply_kw)


@fault("zoo: dropout", "init without a key for a stream the module draws from fails with an error that does not name it")
def init_error_hides_missing_stream():
    def init(base, self, key, x):
        try:
            return base(self, key, x)
        except Exception:  # noqa: BLE001 - the regression: whatever flax raised, the stream's name is lost
            raise RuntimeError("to_linen: init failed (an RNG key is missing)") from None

    return dict(init=init)


@fault("zoo: batch stats", "apply(mutable=[...]) returns the state it was given instead of the updated state")
def batch_stats_not_updated():
    return dict(apply_kw=_rewriting_updates(lambda v, updates: {c: v[c] if c in v else t for c, t in updates.items()}))


@fault("zoo: kwargs", "to_linen grows a keyword parameter dtype= and consumes it silently")
def kwarg_dtype_swallowed():
    return dict(kwargs=lambda cls, kw: {k: v for k, v in kw.items() if k != "dtype"})


@fault("zoo: real layers", "attention dropout ignores the key it is given: the same attention mask every step")
def attention_dropout_key_ignored():
    def patch():
        from flax import nnx

        cls = nnx.MultiHeadAttention
        real = getattr(cls, "_conformance_real_call", cls.__call__)
        cls._conformance_real_call = real

        def call(self, *args, **kwargs):
            kwargs["rngs"] = nnx.Rngs(dropout=0)  # a fixed stream instead of the one the bridge routes
            return real(self, *args, **kwargs)

        cls.__call__ = call

    return dict(patch=patch, modules=TIER)


@fault("zoo: real layers", "a recurrent cell's carry is reset to zeros at every step")
def recurrent_carry_reset():
    def patch():
        from flax import nnx

        jax, jnp = _jax()
        cls = nnx.LSTMCell
        real = getattr(cls, "_conformance_real_call", cls.__call__)
        cls._conformance_real_call = real
        cls.__call__ = lambda self, carry, x, *a, **k: real(self, jax.tree.map(jnp.zeros_like, carry), x, *a, **k)

    return dict(patch=patch, modules=TIER)


@fault("zoo: real layers", "apply looks embeddings up one row off (the table shifted by one row)")
def embedding_row_shifted():
    def shifted(tree):
        _, jnp = _jax()
        if isinstance(tree, dict):
            return {k: (jnp.roll(v, 1, axis=0) if k == "embedding" and hasattr(v, "shape") else shifted(v))
                    for k, v in tree.items()}
        return tree

    def apply_kw(base, self, v, x, kw):
        return base(self, {c: (shifted(t) if c == "params" else t) for c, t in v.items()}, x, kw)

    return dict(apply_kw=apply_kw, modules=TIER)


@fault("zoo: real layers", "apply(mutable=[...]) never writes back a collection of a team's own Variable type")
def custom_collection_not_written_back():
    flax_own = ("params", "batch_stats", "intermediates")
    return dict(apply_kw=_rewriting_updates(lambda v, updates: {c: t for c, t in updates.items() if c in flax_own}),
                modules=TIER)


@fault("user module", "a team's module whose apply ignores its params (declared through --module)")
def user_module_ignores_params():
    return dict(modules="conformance.selfcheck.zoo_faults:params_ignoring_modules")


def params_ignoring_modules():
    """A team's declaration whose module computes with a constant instead of its kernel."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from conformance.modules.declare import ModuleSpec

    class IgnoresParams(nnx.Module):
        def __init__(self, width: int, features: int, rngs):
            self.linear = nnx.Linear(width, features, rngs=rngs)

        def __call__(self, x):
            return jnp.tanh(x @ jnp.full(self.linear.kernel.shape, 0.1, x.dtype))

    x = np.random.default_rng(0).uniform(-1, 1, (4, 8)).astype(np.float32)
    return ModuleSpec(name="user_ignores_params", nnx_class=IgnoresParams, kwargs=dict(width=8, features=5), inputs=(x,))


# --- layers as published: premises taken from the layer (zero scales, sampling in every mode, read-only and created state)


@fault("zoo: real layers", "a training-mode apply re-initialises a collection it may not update (an inference-mode "
                           "BatchNorm's statistics read as zeros and ones)")
def readonly_state_reinitialised():
    def apply_kw(base, self, v, x, kw):
        jax, jnp = _jax()

        def fresh(path, a):  # BatchNorm's initial statistics: var ones, everything else zeros
            return jnp.ones_like(a) if getattr(path[-1], "key", None) == "var" else jnp.zeros_like(a)

        frozen = [c for c in v if c not in ("params", *kw.get("mutable", ()))]
        if "rngs" in kw and frozen:  # a training step (the harness always passes rngs= there)
            v = {**v, **{c: jax.tree_util.tree_map_with_path(fresh, v[c]) for c in frozen}}
        return base(self, v, x, kw)

    return dict(apply_kw=apply_kw, modules=TIER)


@fault("zoo: real layers", "apply(mutable=[...]) drops a collection the call created (it returns only those init made)")
def created_collection_dropped():
    return dict(apply_kw=_rewriting_updates(lambda v, updates: {c: t for c, t in updates.items() if c in v}),
                modules=TIER)


@fault("zoo: real layers", "apply passes on only the RNG streams it knows ('params', 'dropout'): a VAE's 'noise' "
                           "draws from the fixed fallback key, in training and in evaluation")
def unknown_streams_dropped():
    def apply_kw(base, self, v, x, kw):
        if kw.get("rngs"):
            kw["rngs"] = {s: k for s, k in kw["rngs"].items() if s in ("params", "dropout")}
        return base(self, v, x, kw)

    return dict(apply_kw=apply_kw, modules=TIER)


@fault("zoo: real layers", "init draws a constant-initialised param (a zero scale) from the params key")
def constant_params_redrawn():
    def init(base, self, key, x):
        jax, jnp = _jax()
        v = base(self, key, x)

        def redraw(path, a):
            if hasattr(a, "shape") and a.size > 1 and jnp.issubdtype(a.dtype, jnp.floating):
                return jnp.where(jnp.all(a == 0), 1e-3 * jax.random.normal(key, a.shape, a.dtype), a)
            return a

        return {**v, "params": jax.tree_util.tree_map_with_path(redraw, v["params"])}

    return dict(init=init, modules=TIER)
