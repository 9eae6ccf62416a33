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

# Source: https://github.com/google/flax, examples/nnx_toy_examples/09_parameter_surgery.py, tag v0.12.6 (commit 1572c84e34a8).
# The model class (Classifier) copied as published: its backbone draws from a fixed nnx.Rngs(0), so only the
# head depends on the params key. The surgery and filtering code after it is left out.
from flax import nnx


class Classifier(nnx.Module):
  def __init__(self, *, rngs: nnx.Rngs):
    self.backbone = nnx.Linear(784, 128, rngs=nnx.Rngs(0))
    self.head = nnx.Linear(128, 10, rngs=rngs)

  def __call__(self, x):
    x = self.backbone(x)
    x = nnx.relu(x)
    x = self.head(x)
    return x
