"""A metadata box that holds its array as static metadata (the fault ``kernel_box_static``).

Its own module: a struct class must be defined once per process, not once per fault install.
"""

from __future__ import annotations

from typing import Any

from flax import struct
from flax.core import meta


class StaticBox(struct.PyTreeNode, meta.AxisMetadata):
    value: Any = struct.field(pytree_node=False)

    def unbox(self):
        return self.value

    def replace_boxed(self, val):
        return self.replace(value=val)

    def add_axis(self, index, params):
        return self

    def remove_axis(self, index, params):
        return self
