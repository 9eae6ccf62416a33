"""Every change to the suite proves it still catches every fault of the corpus.

Runs ``python -m conformance selfcheck --first-catch``: each fault's run stops
at its first failing property, and the clean run must pass.
"""

import subprocess
import sys


def test_selfcheck_catches_every_fault():
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "selfcheck", "--first-catch"], capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, f"selfcheck failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "MISSED" not in proc.stdout


def test_a_perturbation_is_seen_only_where_the_clean_run_drifts_otherwise():
    from conformance.selfcheck.runner import seen_in

    same = {"comparisons": 4, "drifted": 4, "max_ulps": 9.0}
    clean = {"drift": {"m::test_module_grads[zoo_dropout]": same}}
    run = {"drift": {"m::test_module_grads[zoo_dropout]": dict(same),
                     "j::test_jit_whole_matches_eager[cpu:0]": {"comparisons": 2, "drifted": 1, "max_ulps": 1.0}}}
    assert seen_in(run, clean) == ["test_jit_whole_matches_eager"]
    assert seen_in({"drift": {"m::test_module_grads[zoo_dropout]": dict(same)}}, clean) == []  # drifts as without it
    assert seen_in({"drift": {"m::test_module_grads[zoo_dropout]": {**same, "max_ulps": 3.0}}}, clean) == ["test_module_grads"]
