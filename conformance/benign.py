"""Public alias of ``conformance.selfcheck.benign``: `pytest --pyargs conformance -p conformance.benign --perturb NAME` and `benign.install(NAME)` in repro snippets.

The name is documented, so it stays; the module object is the same one
(``sys.modules`` points here at it), so state and hooks are never doubled.
"""

import sys

from conformance.selfcheck import benign as _module

sys.modules[__name__] = _module
