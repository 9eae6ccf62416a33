# Copyright 2024 The Flax Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# Source: not a copy. No public NNX ResNet was at hand (flax's repository holds none at tag v0.12.6), so
# this is flax's Linen ResNet V1.5 block (https://github.com/google/flax, examples/imagenet/models.py,
# tag v0.12.6: ResNetBlock, with `norm = partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)` and
# `conv = partial(nn.Conv, use_bias=False)`, the last norm's scale initialised to zeros) written in the
# style of flax's NNX examples (the MNIST tutorial's CNN): explicit in/out features, `rngs` in the
# constructor, mode switched by `model.train()` / `model.eval()` (or nnx.view), and BatchNorm's
# `use_running_average` settable at construction as nnx.BatchNorm's own argument is.
"""A ResNet V1.5 stage in NNX: a few residual blocks with BatchNorm."""

from functools import partial

from flax import nnx
import jax


class ResNetBlock(nnx.Module):
  """ResNet block."""

  def __init__(self, in_features: int, filters: int, strides: tuple[int, int] = (1, 1), *,
               use_running_average: bool = False, rngs: nnx.Rngs):
    conv = partial(nnx.Conv, use_bias=False, rngs=rngs)
    norm = partial(nnx.BatchNorm, use_running_average=use_running_average, momentum=0.9, epsilon=1e-5, rngs=rngs)
    self.conv1 = conv(in_features, filters, (3, 3), strides)
    self.norm1 = norm(filters)
    self.conv2 = conv(filters, filters, (3, 3))
    self.norm2 = norm(filters, scale_init=nnx.initializers.zeros_init())
    if in_features != filters or strides != (1, 1):
      self.conv_proj = conv(in_features, filters, (1, 1), strides)
      self.norm_proj = norm(filters)
    else:
      self.conv_proj = None
      self.norm_proj = None

  def __call__(self, x):
    residual = x
    y = self.conv1(x)
    y = self.norm1(y)
    y = nnx.relu(y)
    y = self.conv2(y)
    y = self.norm2(y)

    if self.conv_proj is not None:
      residual = self.conv_proj(residual)
      residual = self.norm_proj(residual)

    return nnx.relu(residual + y)


class ResNetStage(nnx.Module):
  """A stage: the first block changes width and stride, the others keep them."""

  def __init__(self, in_features: int, filters: int, num_blocks: int, strides: tuple[int, int] = (2, 2), *,
               use_running_average: bool = False, rngs: nnx.Rngs):
    self.blocks = nnx.List([
        ResNetBlock(in_features if i == 0 else filters, filters, strides if i == 0 else (1, 1),
                    use_running_average=use_running_average, rngs=rngs)
        for i in range(num_blocks)
    ])

  def __call__(self, x: jax.Array) -> jax.Array:
    for block in self.blocks:
      x = block(x)
    return x
