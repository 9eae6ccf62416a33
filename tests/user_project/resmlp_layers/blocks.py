"""A residual MLP block: pre-LayerNorm, an expanding Linear, GELU, dropout, a projecting Linear, the skip."""

from flax import nnx
import jax


class ResidualMLPBlock(nnx.Module):
    def __init__(self, width: int, hidden: int, dropout_rate: float, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, hidden, rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
        self.down = nnx.Linear(hidden, width, rngs=rngs)

    def __call__(self, x, deterministic: bool = False):
        h = jax.nn.gelu(self.up(self.norm(x)))
        h = self.dropout(h, deterministic=deterministic)
        return x + self.down(h)
