"""Which golden record each golden property compares against, and whether it is a committed one.

Known deviations describe the committed records, so they apply to a golden
property only while one of those is chosen (not, say, a gate baseline's own,
or the record ``record --module`` wrote for the installed versions).
"""

from __future__ import annotations

from conformance.golden import contract, records, zoo, zoo_modules

DECLARED_MODULES_PROPERTY = "test_zoo_golden_declared_modules"


def reference_is_committed(prop: str, declared_module: str | None = None, factories=None) -> bool:
    """For a golden property, whether its chosen record is a committed one; True for any other property.

    ``declared_module`` (a name among the modules ``factories`` declare): each
    declared module chooses its own record (zoo_modules.choose).
    """
    if prop == DECLARED_MODULES_PROPERTY and declared_module is not None:
        from conformance.modules import declare

        specs = {s.name: s for s in declare.user_specs(factories)}
        return declared_module not in specs or zoo_modules.reference_is_committed(specs[declared_module])
    if prop in contract.GOLDEN_PROPERTIES:
        return records.is_committed(contract.chosen_record())
    if prop in zoo.GOLDEN_PROPERTIES:
        return records.is_committed(zoo.chosen_record(), zoo.RECORDS)
    return True
