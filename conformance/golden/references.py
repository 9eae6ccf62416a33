"""Which golden record each golden property compares against, and whether it is a committed one.

Known deviations describe the committed records, so they apply to a golden
property only while one of those is chosen (not, say, a gate baseline's own).
"""

from __future__ import annotations

from conformance.golden import contract, records, zoo


def reference_is_committed(prop: str) -> bool:
    """For a golden property, whether its chosen record is a committed one; True for any other property."""
    if prop in contract.GOLDEN_PROPERTIES:
        return records.is_committed(contract.chosen_record())
    if prop in zoo.GOLDEN_PROPERTIES:
        return records.is_committed(zoo.chosen_record(), zoo.RECORDS)
    return True
