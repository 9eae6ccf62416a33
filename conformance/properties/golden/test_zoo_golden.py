"""The zoo's golden record: dropout masks bitwise, batch statistics within the error model.

A mask change is a change of RNG routing (flax) or of how jax draws (jax):
the failure says which committed release records the installed mask matches,
and whether flipping ``jax_threefry_partitionable`` reproduces the record.
"""

import os

import numpy as np
import pytest

from conformance.numerics import errormodel
from conformance.golden import zoo as zoo_golden
from conformance.modules import module_harness as zh


@pytest.fixture(scope="module")
def installed():
    return zoo_golden.compute()  # masks and batch statistics; declared modules are compared one by one below


def test_zoo_golden_dropout_masks(installed, record_property):
    from conformance.numerics import drift

    record_property(drift.FINGERPRINT, zoo_golden.fingerprint(installed))  # which routing, for the gate's bisection
    path = zoo_golden.chosen_record()
    want = zoo_golden.load(path)
    if zoo_golden.same_masks(installed, want):
        return
    import jax

    # committed records (a flax release with the jax of its time, or one held fixed) holding the installed masks
    matches = [zoo_golden.label(r) for r in map(zoo_golden.load, zoo_golden.all_records())
               if zoo_golden.same_masks(installed, r)]
    flag = bool(jax.config.jax_threefry_partitionable)
    jax.config.update("jax_threefry_partitionable", not flag)
    try:
        flipped = zoo_golden.compute()
    finally:
        jax.config.update("jax_threefry_partitionable", flag)
    why = (f"jax: with jax_threefry_partitionable={not flag} (installed default {flag}) the record's masks come back"
           if zoo_golden.same_masks(flipped, want) else "not jax_threefry_partitionable: the bridge routes the key differently")
    bad = [s for s in want["dropout_masks"] if installed["dropout_masks"].get(s) != want["dropout_masks"][s]]
    raise AssertionError(
        f"dropout masks changed against {os.path.basename(path)} ({zoo_golden.label(want)}) for key seeds {bad}: "
        f"the same apply rng drops other cells; {why}; the installed masks equal the committed records of "
        f"{', '.join(matches) if matches else 'no committed release'}"
    )


def test_zoo_golden_batch_stats(installed):
    """One training step's statistics against the record: identical, drift within twice the model's bound, or changed."""
    from conformance.modules import zoo

    path = zoo_golden.chosen_record()
    want = zoo_golden.load(path)
    assert sorted(installed["batch_stats"]) == sorted(want["batch_stats"]), (
        f"batch_stats paths {sorted(installed['batch_stats'])}, but {os.path.basename(path)} has {sorted(want['batch_stats'])}")
    e_mean, e_var = errormodel.batch_moments_error(zoo.batchnorm_spec().inputs[0])
    m = zoo.config.ZOO_BN_MOMENTUM
    # Each side's update m old + (1 - m) stat is within errormodel.momentum_error of the exact
    # value; two sides, twice that. old is BatchNorm's initial value (mean 0, var 1),
    # stat = (new - m old) / (1 - m).
    for p, e, old in (("batch_stats/bn/mean", e_mean, 0.0), ("batch_stats/bn/var", e_var, 1.0)):
        w = np.asarray(want["batch_stats"][p])
        stat = np.abs(w - m * old) / (1 - m)
        bound = 2 * errormodel.momentum_error(m, old, stat, 0.0, e)
        # Compared (and drift counted) in float32, the dtype the zoo's BatchNorm computes in.
        zh.within_model(p, np.asarray(installed["batch_stats"][p], np.float32), w.astype(np.float32), bound,
                        f"{os.path.basename(path)} ({zoo_golden.label(want)})")


def test_zoo_golden_declared_modules(declared_module, request):
    """A declared module (the real-layer tier, a team's) against the record of its declaration, in two parts.

    One test per declared module (``[none]`` when none is declared). Outputs:
    the installed bridge applied to the recorded variables, call and keys, within
    the running-error bound of that computation. Init: the installed ``init``'s
    variables within the running-error bound of ``init``. Integers bitwise.
    The record is the first with this declaration's fingerprint among
    $CONFORMANCE_ZOO_RECORD, or the one ``record --module`` wrote for the
    installed versions, then the newest committed one (zoo_modules.choose).
    """
    if declared_module is None:
        pytest.skip("no module declared (--module PACKAGE.MODULE:FACTORY): nothing to compare with a record")
    from conformance.golden import zoo_modules
    from conformance.modules import declare

    specs = {s.name: s for s in declare.user_specs(request.config.getoption("conformance_modules", None))}
    spec = specs[declared_module]
    choice = zoo_modules.choose(spec)
    if choice.entry is None:
        pytest.skip(choice.reason)
    zoo_modules.compare(spec, choice)
