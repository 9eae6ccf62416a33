"""Where each benign perturbation acts (conformance/selfcheck/reach.py): observed in the clean run, then each
benign run runs only there. A test left out wrongly would hide a false alarm, so the observation must count a
program one test traced and a later one reuses for both."""

from __future__ import annotations

import json
import types

from conformance.selfcheck import benign
from conformance.selfcheck import forked
from conformance.selfcheck import reach
from conformance.selfcheck import runner

PROBE = '''
import jax
import numpy as np

import reference

X = np.ones((3,), np.float32)
_jit_init = jax.jit(lambda seed, x: reference.linen_module(3, 2).init(reference.prng_key(seed), x))


def test_a_traces_the_init():
    _jit_init(0, X)


def test_b_reuses_that_trace():
    _jit_init(0, X)


def test_c_runs_eagerly():
    reference.nnx_inside_linen(0, X, 2)


def test_d_touches_no_hook():
    assert np.add(1, 1) == 2
'''


def _acting(path) -> dict[str, set[str]]:
    data = json.loads(path.read_text())
    return {p: {t.split("::")[-1] for t in ids} for p, ids in data["perturbations"].items()}


def test_the_clean_run_sees_a_reused_trace_act_in_the_test_that_reuses_it(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    out = tmp_path / "reach.json"
    proc = forked.run_pytest(["-q", "-p", "no:cacheprovider", "-p", "conformance.benign", "-p", "conformance.selfcheck.reach",
                              "--observe-reach", str(out), "test_probe.py"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    acting = _acting(out)
    assert acting["sampler_ulp_under_jit"] == {"test_a_traces_the_init", "test_b_reuses_that_trace"}, acting
    assert acting["sampler_ulp_everywhere"] == {"test_a_traces_the_init", "test_b_reuses_that_trace", "test_c_runs_eagerly"}
    assert acting["batched_last_bit"] == set() and acting["bias_fma_under_jit"] == set(), acting  # nothing applied under jit
    assert len(acting["compiled_without_optimisation"]) == 4, acting  # compiler flags act on every program

    # the benign run then runs only there
    run = forked.run_pytest(["-q", "-p", "no:cacheprovider", "-p", "conformance.benign", "-p", "conformance.selfcheck.reach",
                             "--perturb", "sampler_ulp_under_jit", "--reach", str(out), "test_probe.py"], cwd=str(tmp_path))
    assert run.returncode == 0 and "2 passed, 2 deselected" in run.stdout, run.stdout[-3000:]


def test_observing_takes_no_perturbation(tmp_path):
    (tmp_path / "test_probe.py").write_text("def test_x():\n    pass\n")
    proc = forked.run_pytest(["-q", "-p", "no:cacheprovider", "-p", "conformance.benign", "-p", "conformance.selfcheck.reach",
                              "--observe-reach", str(tmp_path / "r.json"), "--perturb", "batched_last_bit", "test_probe.py"],
                             cwd=str(tmp_path))
    assert proc.returncode == 4 and "--observe-reach observes the clean run" in proc.stdout, proc.stdout[-2000:]


def test_a_mark_counts_for_its_test_for_the_tests_of_a_wider_fixture_and_outside_tests_for_all(monkeypatch):
    monkeypatch.setattr(reach, "_marks", {"t1": {"batched_last_bit"}, "fixture:installed": {"bias_fma_under_jit"},
                                          "session": {"sampler_ulp_everywhere"}})
    items = [types.SimpleNamespace(nodeid="t1", fixturenames=[]), types.SimpleNamespace(nodeid="t2", fixturenames=["installed"]),
             types.SimpleNamespace(nodeid="t3", fixturenames=["tmp_path"])]
    got = reach.reach(items, benign.PERTURBATIONS)
    assert got["batched_last_bit"] == ["t1"]
    assert got["bias_fma_under_jit"] == ["t2"]
    assert got["sampler_ulp_everywhere"] == ["t1", "t2", "t3"]
    assert got["compiled_without_optimisation"] == ["t1", "t2", "t3"]
    assert got["product_reordered_under_jit"] == []


def test_every_hook_of_a_perturbation_has_its_predicate():
    for name, p in benign.PERTURBATIONS.items():
        assert (p.numbers is None) == (p.numbers_when is None), name
        assert p.sampler or p.numbers or p.modules_when or p.nested or p.xla_flags, f"{name} acts nowhere"


def test_a_perturbation_that_acts_nowhere_is_not_run_and_is_unseen_not_rejected(tmp_path):
    path = tmp_path / "reach.json"
    path.write_text(json.dumps({"tests": ["t1", "t2"], "perturbations": {"batched_last_bit": []}}))
    result = runner._benign_run("batched_last_bit", "selfcheck", str(tmp_path), [], str(path), None)
    assert result["tests"] == 0 and result["ran_where_it_acts"] == [0, 2]
    assert runner._acts_nowhere(result) and not runner._accepted(result)
