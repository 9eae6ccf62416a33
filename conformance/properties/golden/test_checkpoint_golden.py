"""Checkpoints across the upgrade: the baseline's orbax checkpoint restores into this environment's tree and applies.

Under the gate, the baseline's environment saved every module's variables
(``conformance/golden/checkpoints.py``, ``CONFORMANCE_CHECKPOINT``); here
they are restored into the abstract tree of this environment's own ``init``
and applied to the same input. Outputs are two computations of one function
on the same variables: identical, drift within the error model, or changed.
Outside the gate each property saves its own checkpoint first (a round trip
through disk in one environment).
"""

import os

import jax
import pytest

from conformance.golden import checkpoints as golden_ckpt
from conformance.helpers.harness import outputs_same_params
from conformance.modules import module_harness as zh


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """(directory, whether this run wrote it): the baseline's, or a fresh one each property writes into."""
    chosen = golden_ckpt.chosen_dir()
    return (chosen, False) if chosen else (str(tmp_path_factory.mktemp("checkpoints")), True)


def _restored(checkpoint_dir, name, init, apply, inputs):
    directory, own = checkpoint_dir
    if own:
        import flax

        golden_ckpt.save(directory, name, init, apply, inputs, {"flax": flax.__version__, "jax": jax.__version__})
    elif not os.path.isdir(os.path.join(directory, name)):
        pytest.fail(f"the baseline's checkpoint directory {directory} has no {name!r}: the baseline could not save it "
                    "(see its log), or the module was declared on this side only")
    saver = golden_ckpt.saved_by(directory, name)
    where = f"checkpoint {name!r} saved by flax {saver.get('flax')} (jax {saver.get('jax')})"
    try:
        restored, outputs = golden_ckpt.restore(directory, name, init, inputs)
    except Exception as exc:  # a checkpoint that no longer fits the tree is the change this property exists for
        raise AssertionError(f"{where} does not restore into this environment's init tree: {type(exc).__name__}: {exc}") from exc
    own = golden_ckpt.layout(jax.eval_shape(lambda: init(golden_ckpt.PARAMS_SEED, inputs)))
    got = golden_ckpt.layout(restored)
    assert got == own, f"{where} restored as {got}, but this environment's init has {own}"
    saved = saver.get("layout", got)
    changed = {p: (saved.get(p), got.get(p)) for p in set(saved) | set(got) if saved.get(p) != got.get(p)}
    assert not changed, (f"{where}: this environment's init tree differs from the saved one, so the restore "
                         f"converted it (path: (saved, restored)): {changed}")
    return restored, outputs, where


@pytest.mark.parametrize("shape", golden_ckpt.CONTRACT_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_checkpoint_restores_contract(checkpoint_dir, shape):
    width, features = shape
    init, apply, x = golden_ckpt.contract_module(width, features)
    restored, outputs, where = _restored(checkpoint_dir, golden_ckpt.contract_name(width, features), init, apply, x)
    y = zh.array_leaves(apply(restored, x))[""]
    zh.within_model("y of the restored variables", y, outputs[""], outputs_same_params(x, restored),
                    f"the output saved with the {where}")


def test_checkpoint_restores_module(checkpoint_dir, spec):
    init, apply, call = golden_ckpt.spec_module(spec)
    restored, outputs, where = _restored(checkpoint_dir, spec.name, init, apply, call)
    with zh.explained(spec, "evaluation-mode apply of restored variables"):
        y = apply(restored, call)
    zh.trees_within_model(f"{spec.name} y of the restored variables", y, outputs,
                          zh.difference_bound(zh.evaluate_fn(spec), restored, call), f"the output saved with the {where}")
