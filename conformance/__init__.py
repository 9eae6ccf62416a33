"""Conformance gate for flax's NNX->Linen bridge (``flax.nnx.bridge.to_linen``).

Run it with ``pytest --pyargs conformance``, or ``python -m conformance gate``.
One folder per idea, layers top to bottom (``lint-imports`` enforces the order):

* ``cli`` (``python -m conformance``): parses each command once, then hands values down.
* ``gate/``: environments, runs, verdict, attribution, reports. ``selfcheck/``:
  the fault corpus, benign perturbations and the runner.
* ``properties/``: the ``test_*.py`` files, by area. ``reporting/``: the pytest plugin.
* ``golden/``: golden records. ``modules/``: declared modules (``ModuleSpec``) and the zoo.
* ``helpers/``: strategies, asserts, the harness of devices and compiled calls.
* ``reference`` (a package beside this one): the contract under test.
* ``numerics/``: the error model and drift. ``core/``: every default (``core/config.py``), set-up, caches.

The public names stay at the top: ``conformance.declare`` (``ModuleSpec``),
``conformance.faults`` and ``conformance.benign`` (``-p`` plugins), and the
data files ``records/`` and ``known_deviations.txt``.
"""

__version__ = "0.1.0"
