# Licensed under the Apache License, Version 2.0, the license of the repository it comes from
# (https://github.com/google/flax/blob/v0.12.6/LICENSE); the tutorial itself carries no header.
#
# Source: https://github.com/google/flax, docs_nnx/mnist_tutorial.md ("3. Define the model with Flax NNX"),
# tag v0.12.6 (commit 1572c84e34a8). The model cell copied as published; its
# `model = CNN(...)` line, and the tutorial's data and training code, are left out. The tutorial switches
# the model's mode with nnx.view(model, deterministic=..., use_running_average=...) and passes an nnx.Rngs
# to the training call: `model(batch['image'], rngs)`.
from flax import nnx  # The Flax NNX API.
from functools import partial
from typing import Optional

class CNN(nnx.Module):
  """A simple CNN model."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
    self.batch_norm1 = nnx.BatchNorm(32, rngs=rngs)
    self.dropout1 = nnx.Dropout(rate=0.025)
    self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
    self.batch_norm2 = nnx.BatchNorm(64, rngs=rngs)
    self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    self.linear1 = nnx.Linear(3136, 256, rngs=rngs)
    self.dropout2 = nnx.Dropout(rate=0.025)
    self.linear2 = nnx.Linear(256, 10, rngs=rngs)

  def __call__(self, x, rngs: nnx.Rngs | None = None):
    x = self.avg_pool(nnx.relu(self.batch_norm1(self.dropout1(self.conv1(x), rngs=rngs))))
    x = self.avg_pool(nnx.relu(self.batch_norm2(self.conv2(x))))
    x = x.reshape(x.shape[0], -1)  # flatten
    x = nnx.relu(self.dropout2(self.linear1(x), rngs=rngs))
    x = self.linear2(x)
    return x
