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


# --- reference/_compat.py: the shims the other direction needs on old releases (the 21-release matrix) -----------


def test_flat_state_takes_the_dict_form_of_old_releases(monkeypatch):
    import types

    from reference import _compat

    class OldState:  # flax before 0.10.3: State.flat_state() is a dict {path: variable}
        def flat_state(self):
            return {("dense", "kernel"): 1, ("dense", "bias"): 2}

    monkeypatch.setattr(_compat, "nnx", types.SimpleNamespace())  # no nnx.to_flat_state, as before 0.10.3
    assert _compat.flat_state(OldState()) == [(("dense", "kernel"), 1), (("dense", "bias"), 2)]


def test_pure_dict_walks_a_state_without_to_pure_dict():
    from reference import _compat

    class Var:
        def __init__(self, v):
            self.value = v

    assert _compat._walk_pure({"params": {"kernel": Var(1), "bias": Var(2)}}) == {"params": {"kernel": 1, "bias": 2}}


def test_collection_levels_are_dropped_only_in_the_first_layout(monkeypatch):
    from reference import _compat

    monkeypatch.setattr(_compat, "TONNX_PATHS_BEGIN_WITH_COLLECTION", True)
    assert _compat.without_collection(("params", "Dense_0", "kernel"), "params") == ("Dense_0", "kernel")
    assert _compat.without_collection(("Dense_0", "kernel"), "params") == ("Dense_0", "kernel")
    assert _compat.tonnx_params({"params": {"kernel": 1}}) == {"kernel": 1}
    monkeypatch.setattr(_compat, "TONNX_PATHS_BEGIN_WITH_COLLECTION", False)
    assert _compat.without_collection(("params", "kernel"), "params") == ("params", "kernel")  # a module named so
    assert _compat.tonnx_params({"params": {"kernel": 1}}) == {"params": {"kernel": 1}}


def test_optimizer_update_and_hyperparams_take_both_signatures():
    import jax.numpy as jnp

    from reference import _compat

    calls = []

    class New:
        def update(self, model, grads):
            calls.append(("new", model, grads))

    class Old:
        def update(self, grads):
            calls.append(("old", grads))

    _compat.optimizer_update(New(), "m", "g")
    _compat.optimizer_update(Old(), "m", "g")
    assert calls == [("new", "m", "g"), ("old", "g")]

    class State:
        hyperparams = {"learning_rate": jnp.asarray(1.0, jnp.float32)}

    class Opt:
        opt_state = State()

    opt = Opt()
    _compat.set_hyperparam(opt, "learning_rate", 0.25)  # flax 0.9: a plain array in the state's dict
    got = opt.opt_state.hyperparams["learning_rate"]
    assert float(got) == 0.25 and got.dtype == jnp.float32


def test_collection_of_names_the_linen_collection_of_a_tonnx_variable_type():
    from flax import nnx
    from flax.nnx import variablelib

    from reference import _compat

    assert _compat.collection_of(nnx.Param) == "params"
    assert _compat.collection_of(nnx.BatchStat) == "batch_stats"
    made = variablelib.variable_type_from_name("conformance_test_collection", allow_register=True)
    assert _compat.collection_of(made) == "conformance_test_collection"

    class Unregistered(nnx.Variable):
        pass

    assert _compat.collection_of(Unregistered) is None
