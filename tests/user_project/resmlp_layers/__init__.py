"""A team's NNX layers, used inside a Linen pipeline through ``nnx.bridge.to_linen``."""

from resmlp_layers.blocks import ResidualMLPBlock

__all__ = ["ResidualMLPBlock"]
