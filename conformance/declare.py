"""Public alias of ``conformance.modules.declare``: `from conformance.declare import ModuleSpec`, the declaration a team writes.

The name is documented, so it stays; the module object is the same one
(``sys.modules`` points here at it), so state and hooks are never doubled.
"""

import sys

from conformance.modules import declare as _module

sys.modules[__name__] = _module
