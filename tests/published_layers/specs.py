"""The published layers declared as a newcomer declares them from the README: ``published_layers.specs:specs``.

Small shapes (batch 2, widths 8-16, images 8x8 or 16x16; the MNIST CNN keeps
its published 28x28 inputs, which its Linear(3136, ...) fixes). Each layer is
declared as written: the fields say how the published code is called, no
adapter class stands between it and the bridge.
"""

import functools

import jax.numpy as jnp
import numpy as np

from conformance.declare import Call, ModuleSpec
from published_layers import (array_leaves, functional_mlp, mnist_cnn, mnist_example, parameter_surgery, resnet,
                              scan_over_layers, vae)
from published_layers.gemma import layers, modules
from published_layers.gemma.transformer_config import TransformerConfig

BATCH, SEQ, WIDTH, HIDDEN, VOCAB = 2, 5, 16, 32, 20
HEADS, KV_HEADS, HEAD_DIM, WINDOW, SOFT_CAP = 4, 2, 8, 3, 50.0


def _sequence_call(r) -> Call:
    """Gemma's attention call: ``(x, segment_pos, cache, attn_mask)``, no cache, a causal mask."""
    x = r.normal(size=(BATCH, SEQ, WIDTH)).astype(np.float32)
    segment_pos = np.broadcast_to(np.arange(SEQ, dtype=np.int32), (BATCH, SEQ)).copy()
    causal = np.broadcast_to(np.tril(np.ones((SEQ, SEQ), bool)), (BATCH, SEQ, SEQ)).copy()
    return Call(args=(x, segment_pos, None, causal))


def _gemma_specs(r) -> list:
    config = TransformerConfig(
        num_layers=1, num_embed=VOCAB, embed_dim=WIDTH, hidden_dim=HIDDEN, num_heads=HEADS, head_dim=HEAD_DIM,
        num_kv_heads=KV_HEADS, final_logit_softcap=None, use_post_attn_norm=True, use_post_ffw_norm=True,
        attention_types=(modules.AttentionType.LOCAL_SLIDING,), attn_logits_soft_cap=SOFT_CAP,
        sliding_window_size=WINDOW, use_qk_norm=True)
    seq = r.normal(size=(BATCH, SEQ, WIDTH)).astype(np.float32)
    return [
        # The scale starts at zeros (the layer computes x * (1 + scale)): every seed gives the same params.
        ModuleSpec(name="gemma_rmsnorm", nnx_class=layers.RMSNorm, args=(WIDTH,), inputs=(seq,)),
        # 'BTD,...' names its batch axis: a row alone has no B, so the layer needs its batch axis.
        ModuleSpec(name="gemma_einsum", nnx_class=layers.Einsum,
                   kwargs=dict(einsum_str="BTD,NDH->BTNH", shape=(HEADS, WIDTH, HEAD_DIM)),
                   inputs=(seq,), batch_axis=None),
        ModuleSpec(name="gemma_embedder_encode", nnx_class=modules.Embedder, kwargs=dict(vocab_size=VOCAB, embed_dim=WIDTH),
                   inputs=(r.integers(0, VOCAB, size=(BATCH, SEQ)).astype(np.int32),), method="encode"),
        ModuleSpec(name="gemma_embedder_decode", nnx_class=modules.Embedder, kwargs=dict(vocab_size=VOCAB, embed_dim=WIDTH),
                   inputs=(seq,), method="decode"),
        # Grouped queries (4 heads over 2 key/value heads), a sliding window of 3 and a soft cap on the logits.
        # float32: the class's default dtype is float16; the Block below passes its config's float32 too.
        ModuleSpec(name="gemma_attention", nnx_class=modules.Attention,
                   kwargs=dict(num_heads=HEADS, num_kv_heads=KV_HEADS, features=WIDTH, head_dim=HEAD_DIM,
                               query_pre_attn_scalar=HEAD_DIM**-0.5, attn_type=modules.AttentionType.LOCAL_SLIDING,
                               attn_logits_soft_cap=SOFT_CAP, sliding_window_size=WINDOW, dtype=jnp.float32),
                   inputs=(_sequence_call(r),), batch_axis=None),
        ModuleSpec(name="gemma_feedforward", nnx_class=modules.FeedForward, kwargs=dict(features=WIDTH, hidden_dim=HIDDEN),
                   inputs=(seq,)),
        ModuleSpec(name="gemma_block", nnx_class=modules.Block,
                   args=(config, modules.AttentionType.LOCAL_SLIDING), inputs=(_sequence_call(r),), batch_axis=None),
    ]


def _vae_specs(r) -> list:
    images = (r.random(size=(BATCH, 8, 8)) > 0.5).astype(np.float32)  # binarised, as the example's data
    # The encoder samples from self.rngs.noise() in every call and assigns a Loss Variable in __call__;
    # it flattens with x.shape[0], so it needs its batch axis.
    return [
        ModuleSpec(name="vae_encoder", nnx_class=vae.Encoder, args=(64, 16, 8), inputs=(images,), batch_axis=None,
                   rng_streams=("noise",), created=("Loss",)),
        ModuleSpec(name="vae_decoder", nnx_class=vae.Decoder, args=(8, 16, 64),
                   inputs=(r.normal(size=(BATCH, 8)).astype(np.float32),)),
        ModuleSpec(name="vae", nnx_class=vae.VAE, kwargs=dict(din=64, hidden_size=16, latent_size=8, output_shape=(8, 8)),
                   inputs=(images,), batch_axis=None, rng_streams=("noise",), created=("Loss",)),
    ]


def _image_specs(r) -> list:
    return [
        # The tutorial as written: .train()/.eval() (nnx.view) switch dropout and BatchNorm; an nnx.Rngs at call time.
        ModuleSpec(name="mnist_cnn", nnx_class=mnist_cnn.CNN, inputs=(r.normal(size=(BATCH, 28, 28, 1)).astype(np.float32),),
                   batch_axis=None, mode_switch="train_eval", call_rngs="rngs", rng_streams=("dropout",),
                   mutable=("batch_stats",)),
        # flax's examples/mnist: the same switch, an nnx.Rngs it requires (model(x, None) in evaluation), dropout
        # before BatchNorm.
        ModuleSpec(name="mnist_example_cnn", nnx_class=mnist_example.CNN,
                   inputs=(r.normal(size=(BATCH, 28, 28, 1)).astype(np.float32),), batch_axis=None,
                   mode_switch="train_eval", call_rngs="rngs", rng_streams=("dropout",), mutable=("batch_stats",)),
        ModuleSpec(name="resnet_block", nnx_class=resnet.ResNetBlock, args=(8, 8),
                   inputs=(r.normal(size=(BATCH, 8, 8, 8)).astype(np.float32),), batch_axis=None,
                   mode_switch="train_eval", mutable=("batch_stats",)),
        ModuleSpec(name="resnet_stage", nnx_class=resnet.ResNetStage, args=(8, 16, 2),
                   inputs=(r.normal(size=(BATCH, 16, 16, 8)).astype(np.float32),), batch_axis=None,
                   mode_switch="train_eval", mutable=("batch_stats",)),
        # Inference mode: BatchNorm normalises with its stored statistics, which apply only reads.
        ModuleSpec(name="resnet_stage_inference", nnx_class=resnet.ResNetStage, args=(8, 16, 2),
                   kwargs=dict(use_running_average=True),
                   inputs=(r.normal(size=(BATCH, 16, 16, 8)).astype(np.float32),), batch_axis=None,
                   readonly=("batch_stats",)),
    ]


def _toy_specs(r) -> list:
    return [
        # A Count Variable the call increments; params drawn with jax.random.uniform.
        ModuleSpec(name="toy_count_mlp", nnx_class=functional_mlp.MLP, kwargs=dict(din=1, dhidden=32, dout=1),
                   inputs=(r.normal(size=(4, 1)).astype(np.float32),), mutable=("Count",)),
        # Blocks made under nnx.vmap (one dropout key per layer) and run under nnx.scan; as published it always
        # trains: dropout draws and BatchNorm uses the batch's statistics in every call.
        # Weights and a counter held as plain jax arrays, not nnx.Variables: a recorded deviation (the bridge does not
        # carry them through jit(init)), so every test of it is an expected failure naming it.
        ModuleSpec(name="toy_array_leaves_mlp", nnx_class=array_leaves.MLP, kwargs=dict(din=1, dhidden=32, dout=1),
                   inputs=(r.normal(size=(4, 1)).astype(np.float32),)),
        # A backbone drawn from a fixed nnx.Rngs(0): only the head depends on the params key.
        ModuleSpec(name="toy_surgery_classifier", nnx_class=parameter_surgery.Classifier,
                   inputs=(r.normal(size=(BATCH, 784)).astype(np.float32),)),
        ModuleSpec(name="toy_scan_mlp", nnx_class=scan_over_layers.ScanMLP, args=(10,), kwargs=dict(n_layers=5),
                   inputs=(r.normal(size=(3, 10)).astype(np.float32),), batch_axis=None, rng_streams=("dropout",),
                   mutable=("batch_stats",)),
    ]


@functools.lru_cache(maxsize=None)  # one set of declarations per process: the suite caches compiled calls by spec
def specs() -> tuple:
    r = np.random.default_rng(0)
    return tuple(_gemma_specs(r) + _vae_specs(r) + _image_specs(r) + _toy_specs(r))
