"""Bottom layer: defaults (``config``), process and jax set-up, cache directories, verified releases, known deviations.

Imports nothing of the project's: every other layer may import it.
"""
