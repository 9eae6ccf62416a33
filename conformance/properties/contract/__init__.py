"""The contract's properties: ``reference.nnx_inside_linen`` and its one ``nnx.Linear``."""
