"""The two names the Gemma example imports from jaxtyping, as plain aliases (jaxtyping is not a dependency here)."""

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
