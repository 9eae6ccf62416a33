"""Public alias of ``conformance.selfcheck.faults``: `pytest --pyargs conformance -p conformance.faults --fault NAME` and `faults.install(NAME)` in repro snippets.

The name is documented, so it stays; the module object is the same one
(``sys.modules`` points here at it), so state and hooks are never doubled.
"""

import sys

from conformance.selfcheck import faults as _module

sys.modules[__name__] = _module
