"""The assert helpers and repro notes."""

import numpy as np
import pytest

from conformance.helpers.hypothesis_helpers import Case, XSpec
from conformance.helpers.pytest_helpers import assert_close, assert_equal, assert_shape, assert_trees_equal, reporting


def test_shape_message_reads_like_the_spec():
    with pytest.raises(AssertionError, match=r"y\.shape=\(2,\), but should be \(3,\)"):
        assert_shape("y", (2,), (3,))


def test_assert_close_names_the_worst_element():
    with pytest.raises(AssertionError, match=r"y\[1\]=.*but should be 2\.0.*1 of 3 elements"):
        assert_close("y", [0.0, 2.5, 1.0], [0.0, 2.0, 1.0], 1e-3)
    assert_close("y", [1.0], [1.0 + 1e-7], 1e-6)
    with pytest.raises(AssertionError):  # NaN is never close
        assert_close("y", [np.nan], [0.0], 1.0)


def test_assert_equal_is_bitwise():
    assert_equal("a", np.float32([0.0, np.nan]), np.float32([0.0, np.nan]))
    with pytest.raises(AssertionError, match="should be"):
        assert_equal("a", np.float32([1.0]), np.float32([np.nextafter(1.0, 2.0, dtype=np.float32)]))


def test_tree_assert_names_the_leaf_path():
    a = {"params": {"linear": {"kernel": np.zeros(2, np.float32), "bias": np.zeros(1, np.float32)}}}
    b = {"params": {"linear": {"kernel": np.ones(2, np.float32), "bias": np.zeros(1, np.float32)}}}
    with pytest.raises(AssertionError, match="params/linear/kernel"):
        assert_trees_equal("variables", a, b)


def test_failures_carry_property_inputs_and_repro():
    case = Case(seed=3.0, features=2, width=3, dtype="float32", x=XSpec((3,), "float32", "uniform", 7), device="cpu:1")
    with pytest.raises(AssertionError) as info:
        with reporting("output length", case, "assert y.shape == (2,)"):
            raise AssertionError("y.shape=(1,), but should be (2,)")
    notes = "\n".join(info.value.__notes__)
    assert "property: output length" in notes
    assert "seed=3.0 (float)" in notes and "device=cpu:1" in notes
    assert "make_x((3,), 'float32', 'uniform', 7)" in notes and 'jax.devices("cpu")[1]' in notes


def test_repro_snippet_runs(monkeypatch):
    from conformance.selfcheck import faults
    from conformance.helpers.pytest_helpers import repro_snippet

    monkeypatch.setattr(faults, "ACTIVE", None)  # run in this process: it must not swap a fault in
    case = Case(seed=3.0, features=2, width=3, dtype="float32", x=XSpec((3,), "float32", "uniform", 7), device="cpu:0")

    exec(repro_snippet(case, "assert y.shape == (2,)"), {})


def test_repro_snippet_of_the_tonnx_direction_runs(monkeypatch):
    """A case of the ToNNX direction: the snippet builds the model, its params and the contract's output."""
    from conformance.selfcheck import faults
    from conformance.helpers.pytest_helpers import repro_snippet

    monkeypatch.setattr(faults, "ACTIVE", None)
    case = Case(seed=3.0, features=2, width=3, dtype="float32", x=XSpec((3,), "float32", "uniform", 7), device="cpu:0",
                direction="to_nnx")
    assert "direction=to_nnx" in case.describe()
    code = repro_snippet(case, "assert sorted(variables) == ['bias', 'kernel'] and y.shape == (2,)\n"
                               "assert_product_close('y', y, np.asarray(x, np.float64) @ np.asarray(variables['kernel'], np.float64), "
                               "x, variables, exact=True)")
    assert "linen_inside_nnx(seed, x, features)" in code and "nnx_inside_linen" not in code
    exec(code, {})


def test_kernel_bias_reads_either_direction():
    from conformance.helpers.harness import kernel_bias

    k, b = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    for variables in ({"params": {"linear": {"kernel": k, "bias": b}}}, {"kernel": k, "bias": b}):
        got = kernel_bias(variables)
        assert got[0] is k and got[1] is b
    with pytest.raises(KeyError, match="params/linear"):
        kernel_bias({"bias": b})


def test_repro_snippet_re_applies_the_injected_fault(monkeypatch):
    from conformance.selfcheck import faults
    from conformance.helpers.pytest_helpers import repro_snippet

    case = Case(seed=3, features=2, width=3, dtype="float32", x=XSpec((3,), "float32", "uniform", 7), device="cpu:0")
    monkeypatch.setattr(faults, "ACTIVE", "output_truncated")
    lines = repro_snippet(case, "assert y.shape == (2,)").splitlines()
    install = lines.index('from conformance import faults; faults.install("output_truncated")  # the fault this run injected')
    assert install < next(i for i, ln in enumerate(lines) if ln.startswith("from reference import"))
    monkeypatch.setattr(faults, "ACTIVE", None)
    assert "faults.install" not in repro_snippet(case)
