"""Golden record: the installed versions reproduce a committed record.

Structure (paths, shapes, dtypes) must match exactly. Numerics have three
outcomes: identical, drift within the error model (passes, reported), or
changed (fails). For a change the message says what explains it when it can:
it re-derives the values with jax_threefry_partitionable flipped.
"""

import pytest

from conformance.golden import contract as golden
from conformance.golden import records


@pytest.fixture(scope="module")
def installed():
    return golden.compute()


def test_golden_structure(installed):
    path = golden.chosen_record()
    golden.assert_structure(installed, records.load(path), path, "to_linen")


def test_golden_numerics(installed):
    path = golden.chosen_record()
    want = records.load(path)
    if golden.structure(installed) != golden.structure(want["cases"]):
        pytest.skip("structure changed: reported by test_golden_structure")
    golden.assert_numerics(installed, want, path, "to_linen")
