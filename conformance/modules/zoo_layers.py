"""The zoo's real-layer tier: flax's own layers, composed and declared as a team would from the README.

Attention with dropout and a mask, a CNN with BatchNorm (flax's NNX MNIST
example), an LSTM encoder, a gated MLP, a layer with its own ``nnx.Variable``
type, bf16 params, a token classifier over int ids, attention whose ``init``
needs ``deterministic``, and a Linen-style ``__call__(x, train)``. Then what
published NNX code does that those do not: a zero-initialised scale (Gemma's
RMSNorm), a layer that samples in every mode and creates a Variable during the
call (the NNX VAE example's encoder), an inference-mode BatchNorm, and a layer
switched by ``.train()``/``.eval()`` that takes ``nnx.Rngs`` at call time (the
NNX MNIST tutorial's style).

Declared through the factory ``TIER``, as a team declares its layers::

    pytest --pyargs conformance --module conformance.modules.zoo_layers:real_layer_specs

so every module property runs on each, and ``record --module`` puts their
training outputs in the golden record. Eager applies of real layers compile
hundreds of small XLA programs, so the tier is not in the default run
(tests/test_real_layers.py runs it in CI).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from conformance.modules.declare import Call, ModuleSpec
from reference import _compat

nnx = _compat.nnx


class PreNormAttention(nnx.Module):
    """x + MultiHeadAttention(LayerNorm(x)), dropout on the attention weights; a mask as a keyword input."""

    def __init__(self, width: int, heads: int, rate: float, rngs):
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=width, qkv_features=width,
                                           dropout_rate=rate, decode=False, rngs=rngs)

    def __call__(self, x, mask=None, deterministic: bool = False):
        return x + self.attn(self.norm(x), mask=mask, deterministic=deterministic)


class SmallCNN(nnx.Module):
    """Conv -> BatchNorm -> relu -> avg_pool, twice, dropout between, then Linear: flax's NNX MNIST example, smaller."""

    def __init__(self, channels: int, classes: int, rngs):
        self.conv1 = nnx.Conv(channels, 4, kernel_size=(3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(4, rngs=rngs)
        self.dropout = nnx.Dropout(0.25, rngs=rngs)
        self.conv2 = nnx.Conv(4, 8, kernel_size=(3, 3), rngs=rngs)
        self.bn2 = nnx.BatchNorm(8, rngs=rngs)
        self.linear = nnx.Linear(8 * 2 * 2, classes, rngs=rngs)

    def __call__(self, x, train: bool = True):
        x = nnx.avg_pool(nnx.relu(self.bn1(self.conv1(x), use_running_average=not train)), (2, 2), (2, 2))
        x = self.dropout(x, deterministic=not train)
        x = nnx.avg_pool(nnx.relu(self.bn2(self.conv2(x), use_running_average=not train)), (2, 2), (2, 2))
        return self.linear(x.reshape(x.shape[0], -1))


class LSTMEncoder(nnx.Module):
    """An ``nnx.RNN`` over an ``nnx.LSTMCell``: (batch, time, features) -> (batch, time, hidden)."""

    def __init__(self, features: int, hidden: int, rngs):
        self.rnn = nnx.RNN(nnx.LSTMCell(features, hidden, rngs=rngs))

    def __call__(self, x):
        return self.rnn(x)


class GatedMLP(nnx.Module):
    """x + down(gelu(gate(LayerNorm(x))) * up(LayerNorm(x)))."""

    def __init__(self, width: int, hidden: int, rngs):
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.gate = nnx.Linear(width, hidden, rngs=rngs)
        self.up = nnx.Linear(width, hidden, rngs=rngs)
        self.down = nnx.Linear(hidden, width, rngs=rngs)

    def __call__(self, x):
        h = self.norm(x)
        return x + self.down(nnx.gelu(self.gate(h)) * self.up(h))


class CallCount(nnx.Variable):
    """A team's own variable type: its collection is named after the class, 'CallCount'."""


class CountingLinear(nnx.Module):
    """A Linear that counts its calls in an int32 scalar of its own variable type, and returns (y, count)."""

    def __init__(self, width: int, features: int, rngs):
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.calls = CallCount(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        self.calls.value = self.calls.value + 1
        return self.linear(x), self.calls.value


class Bf16Linear(nnx.Module):
    """A Linear whose params are stored in bfloat16 (computing in the inputs' float32)."""

    def __init__(self, width: int, features: int, rngs):
        self.linear = nnx.Linear(width, features, param_dtype=jnp.bfloat16, rngs=rngs)

    def __call__(self, x):
        return self.linear(x)


class TokenClassifier(nnx.Module):
    """Embed int token ids, mean over the sequence, classify; ``attend`` scores a vector against the vocabulary."""

    def __init__(self, vocab: int, width: int, classes: int, rngs):
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.head = nnx.Linear(width, classes, rngs=rngs)

    def __call__(self, ids):
        return self.head(self.embed(ids).mean(axis=-2))

    def attend(self, query):
        return self.embed.attend(query)


class MHADropout(nnx.Module):
    """``nnx.MultiHeadAttention`` with dropout on its own: init and apply both need ``deterministic``."""

    def __init__(self, width: int, heads: int, rngs):
        self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=width, dropout_rate=0.1, decode=False,
                                           rngs=rngs)

    def __call__(self, q, kv, deterministic: bool):
        return self.attn(q, kv, deterministic=deterministic)


class TrainFlagMLP(nnx.Module):
    """A Linen-style ``__call__(self, x, train)``: dropout and BatchNorm switched by a positional-or-keyword flag."""

    def __init__(self, width: int, features: int, rngs):
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.bn = nnx.BatchNorm(features, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)

    def __call__(self, x, train):
        y = self.bn(self.linear(x), use_running_average=not train)
        return self.dropout(nnx.relu(y), deterministic=not train)


class ZeroScaleRMSNorm(nnx.Module):
    """RMSNorm with a scale initialised to zeros, as Gemma's, applied as ``1 + scale``; then a Linear."""

    def __init__(self, width: int, rngs):
        self.scale = nnx.Param(jnp.zeros((width,), jnp.float32))
        self.linear = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, x):
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return self.linear(x * jax.lax.rsqrt(var + 1e-6) * (1 + self.scale[...]))


class KLTerm(nnx.Variable):
    """A loss term the layer creates during its call (the NNX VAE example's ``Loss``, under a name of the tier's own)."""


class ReparamEncoder(nnx.Module):
    """The NNX VAE example's encoder: samples ``mean + std * noise`` in every call and records its KL term."""

    def __init__(self, width: int, latent: int, rngs):
        self.mean = nnx.Linear(width, latent, rngs=rngs)
        self.log_std = nnx.Linear(width, latent, rngs=rngs)
        self.rngs = rngs

    def __call__(self, x):
        mean = self.mean(x)
        std = jnp.exp(self.log_std(x))
        self.kl = KLTerm(jnp.mean(0.5 * jnp.mean(-jnp.log(std**2) - 1.0 + std**2 + mean**2, axis=-1)))
        return mean + std * jax.random.normal(self.rngs.noise(), mean.shape)


class FrozenBatchNormHead(nnx.Module):
    """An inference-mode BatchNorm (``use_running_average=True`` at construction): its statistics are only read."""

    def __init__(self, width: int, features: int, rngs):
        self.bn = nnx.BatchNorm(width, use_running_average=True, rngs=rngs)
        self.linear = nnx.Linear(width, features, rngs=rngs)

    def __call__(self, x):
        return self.linear(self.bn(x))


class TrainEvalMLP(nnx.Module):
    """Switched by ``.train()``/``.eval()``, with ``nnx.Rngs`` at call time: the NNX MNIST tutorial's style."""

    def __init__(self, width: int, features: int, rngs):
        self.linear = nnx.Linear(width, features, rngs=rngs)
        self.bn = nnx.BatchNorm(features, rngs=rngs)
        self.dropout = nnx.Dropout(0.2)

    def __call__(self, x, rngs=None):
        return self.dropout(nnx.relu(self.bn(self.linear(x))), rngs=rngs)


# --- the declarations: what a team writes ----------------------------------------------------------------


def _rng(seed: int = 0):
    return np.random.default_rng(seed)


TIER = "conformance.modules.zoo_layers:real_layer_specs"


@functools.lru_cache(maxsize=None)
def real_layer_specs() -> tuple:
    r = _rng()
    seq = r.normal(size=(2, 5, 8)).astype(np.float32)
    causal = np.broadcast_to(np.tril(np.ones((5, 5), bool)), (2, 1, 5, 5)).copy()
    return (
        ModuleSpec(name="real_attention", nnx_class=PreNormAttention, kwargs=dict(width=8, heads=2, rate=0.1),
                   inputs=(Call(args=(seq,), kwargs={"mask": causal}), seq),
                   rng_streams=("dropout",), init_kwargs={"deterministic": True},
                   train_kwargs={"deterministic": False}, eval_kwargs={"deterministic": True}),
        ModuleSpec(name="real_cnn", nnx_class=SmallCNN, kwargs=dict(channels=1, classes=3),
                   inputs=(r.normal(size=(4, 8, 8, 1)).astype(np.float32),), batch_axis=None,
                   rng_streams=("dropout",), mutable=("batch_stats",), init_kwargs={"train": False},
                   train_kwargs={"train": True}, eval_kwargs={"train": False}),
        ModuleSpec(name="real_lstm", nnx_class=LSTMEncoder, kwargs=dict(features=3, hidden=6),
                   inputs=(r.normal(size=(2, 4, 3)).astype(np.float32),), batch_axis=None),
        ModuleSpec(name="real_gated_mlp", nnx_class=GatedMLP, kwargs=dict(width=8, hidden=16),
                   inputs=(r.normal(size=(4, 8)).astype(np.float32),)),
        ModuleSpec(name="real_counter", nnx_class=CountingLinear, kwargs=dict(width=6, features=3),
                   inputs=(r.normal(size=(4, 6)).astype(np.float32),), mutable=("CallCount",)),
        ModuleSpec(name="real_bf16_params", nnx_class=Bf16Linear, kwargs=dict(width=8, features=4),
                   inputs=(r.normal(size=(4, 8)).astype(np.float32),)),
        ModuleSpec(name="real_token_classifier", nnx_class=TokenClassifier, kwargs=dict(vocab=20, width=8, classes=3),
                   inputs=(r.integers(0, 20, size=(4, 6)).astype(np.int32),)),
        ModuleSpec(name="real_mha_dropout", nnx_class=MHADropout, kwargs=dict(width=8, heads=2),
                   inputs=(Call(args=(seq, r.normal(size=(2, 3, 8)).astype(np.float32))),),
                   rng_streams=("dropout",), init_kwargs={"deterministic": True},
                   train_kwargs={"deterministic": False}, eval_kwargs={"deterministic": True}),
        ModuleSpec(name="real_train_flag", nnx_class=TrainFlagMLP, kwargs=dict(width=6, features=5),
                   inputs=(r.normal(size=(4, 6)).astype(np.float32),), rng_streams=("dropout",),
                   mutable=("batch_stats",), init_kwargs={"train": False}, train_kwargs={"train": True},
                   eval_kwargs={"train": False}),
        ModuleSpec(name="real_zero_scale_norm", nnx_class=ZeroScaleRMSNorm, kwargs=dict(width=8),
                   inputs=(r.normal(size=(4, 8)).astype(np.float32),)),
        ModuleSpec(name="real_reparam_encoder", nnx_class=ReparamEncoder, kwargs=dict(width=8, latent=4),
                   inputs=(r.normal(size=(4, 8)).astype(np.float32),), rng_streams=("noise",), created=("KLTerm",)),
        ModuleSpec(name="real_frozen_batchnorm", nnx_class=FrozenBatchNormHead, kwargs=dict(width=6, features=3),
                   inputs=(r.normal(size=(4, 6)).astype(np.float32),), readonly=("batch_stats",)),
        ModuleSpec(name="real_train_eval", nnx_class=TrainEvalMLP, kwargs=dict(width=6, features=5),
                   inputs=(r.normal(size=(4, 6)).astype(np.float32),), mode_switch="train_eval", call_rngs="rngs",
                   rng_streams=("dropout",), mutable=("batch_stats",)),
    )
