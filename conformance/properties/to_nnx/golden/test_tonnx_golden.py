"""Golden record of the other direction: a lazily initialised ``ToNNX(nn.Dense)`` reproduces the record's grid.

The same grid and error model as the to_linen record (conformance/golden/contract.py): for each seed and shape, the
model's ``nnx.Param`` state (paths, shapes, dtypes exactly; values through the sampler's model) and ``model(x)``
(through the affine model). Which key ``lazy_init`` hands Linen, and how the wrapper names and stores the Linen
variables, are what a same-seed-same-params property cannot see and this one does.
"""

import pytest

from conformance.golden import contract as golden
from conformance.golden import records


@pytest.fixture(scope="module")
def recorded():
    path = golden.chosen_record()
    want = records.load(path)
    if golden.recorded_cases(want, "to_nnx") is None:
        why = want.get("to_nnx_error") or "it was written before records held the to_nnx direction: record it again"
        pytest.skip(f"{path} has no to_nnx cases: {why}")
    return path, want


@pytest.fixture(scope="module")
def installed():
    return golden.compute(direction="to_nnx")


def test_tonnx_golden_structure(recorded, installed):
    path, want = recorded
    golden.assert_structure(installed, want, path, "to_nnx")


def test_tonnx_golden_numerics(recorded, installed):
    path, want = recorded
    if golden.structure(installed) != golden.structure(golden.recorded_cases(want, "to_nnx")):
        pytest.skip("structure changed: reported by test_tonnx_golden_structure")
    golden.assert_numerics(installed, want, path, "to_nnx")
