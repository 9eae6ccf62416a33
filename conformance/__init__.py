"""Conformance gate for flax's NNX->Linen bridge (``flax.nnx.bridge.to_linen``).

Run it with ``pytest --pyargs conformance``. The properties live in the
``test_*.py`` modules of this package; the helpers beside them:

* ``config``: every default (profiles, tolerances, shape menus, devices).
* ``hypothesis_helpers``: strategies, every draw labelled.
* ``pytest_helpers``: asserts whose messages name what differs, and repro notes.
* ``harness``: devices, compiled (cached) init/apply, the float64 oracle.
"""

__version__ = "0.1.0"
