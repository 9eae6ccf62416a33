"""What a run says it tested: the verified-release check, the summary line, the JSON report's outcomes."""

import types

import pytest

from conformance.core import config
from conformance.reporting import jsonreport
from conformance.core import versions
from conformance.reporting.plugin import run_line


@pytest.mark.parametrize("found, newer", [
    ({"flax": "0.12.8", "jax": "0.10.2"}, []),
    ({"flax": "0.9.0", "jax": "0.4.31"}, []),
    ({"flax": "0.13.0", "jax": "0.10.2"}, ["flax 0.13.0"]),
    ({"flax": "0.12.8", "jax": "0.11.0"}, ["jax 0.11.0"]),
    ({"flax": "1.0.0rc1", "jax": "0.10.3"}, ["flax 1.0.0rc1", "jax 0.10.3"]),
    ({"flax": "0.12.9.dev0", "jax": "0.10.2"}, ["flax 0.12.9.dev0"]),
    ({"flax": "not-a-version"}, ["flax not-a-version"]),
    ({}, []),
])
def test_newer_than_verified(found, newer):
    assert versions.newer_than_verified(found) == newer


def test_verification_note_names_the_last_verified_pair(monkeypatch):
    monkeypatch.setattr(config, "LAST_VERIFIED", {"flax": "0.12.8", "jax": "0.10.2"})
    note = versions.verification_note({"flax": "0.13.0", "jax": "0.10.2"})
    assert note.startswith("UNVERIFIED: flax 0.13.0 newer than the last verified release (flax 0.12.8 / jax 0.10.2)")
    assert versions.verification_note({"flax": "0.12.8", "jax": "0.10.2"}).startswith("within the verified releases")


def test_open_ranged_deviations_apply_to_a_newer_release():
    from conformance.core import deviations

    newer = {"flax": "0.13.0", "jax": "0.10.2", "jaxlib": "0.10.2"}
    applying = {d.test for d in deviations.load() if d.applies(newer)}
    assert {"test_apply_rejects_missing_leaf", "test_apply_is_pure"} <= applying  # flax>=0.12, flax>=0.11


def test_no_upper_bound_on_flax_or_jax():
    import os
    import re

    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "pyproject.toml")) as fh:
        text = fh.read()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    for name in ("flax", "jax", "jaxlib"):
        spec = re.search(rf'"{name}([^"]*)"', deps).group(1)
        assert "<" not in spec, f"{name}{spec}: an upper bound would block installing the release the gate is to judge"


def test_run_line_names_everything():
    info = {"flax": "0.13.0", "jax": "0.10.2", "jaxlib": "0.10.2", "python": "3.11.7", "devices": ["cpu:0", "cpu:1"],
            "profile": "gate", "fault": "drift_1e5", "perturbation": None}
    assert run_line(info) == ("conformance: tested flax 0.13.0, jax 0.10.2, jaxlib 0.10.2, python 3.11.7 on "
                                 "[cpu:0, cpu:1]; profile 'gate'; fault drift_1e5; perturbation none")


def _report(when="call", outcome="passed", longrepr=None, wasxfail=None, props=()):
    r = types.SimpleNamespace(nodeid="test_x.py::test_p[cpu:0]", when=when, outcome=outcome, longrepr=longrepr,
                              passed=outcome == "passed", failed=outcome == "failed", skipped=outcome == "skipped",
                              user_properties=list(props), duration=0.5)
    if wasxfail is not None:
        r.wasxfail = wasxfail
    return r


@pytest.mark.parametrize("report, outcome", [
    (_report(), "pass"),
    (_report(props=[("conformance_drift", '{"comparisons": 4, "drifted": 2, "max_ulps": 1.0}')]), "drift"),
    (_report(props=[("conformance_drift", '{"comparisons": 4, "drifted": 0}')]), "pass"),
    (_report(outcome="failed", longrepr="AssertionError: y differs"), "fail"),
    (_report(when="setup", outcome="failed", longrepr="RuntimeError: boom"), "error"),
    (_report(outcome="failed", longrepr="[XPASS(strict)] known deviation (flax>=0.12): gone"), "fixed"),
    (_report(outcome="skipped", longrepr=("f", 1, "xfail"), wasxfail="known deviation (flax>=0.12): why"), "known deviation"),
    (_report(outcome="skipped", longrepr=("f", 1, "Skipped: one device only")), "skipped"),
])
def test_json_report_outcomes(report, outcome):
    assert jsonreport.classify(report) == outcome


def test_json_report_keeps_the_drift_record():
    rep = jsonreport.JsonReport(types.SimpleNamespace(), "unused.json", lambda config: {})
    rep.pytest_runtest_logreport(_report(when="setup"))
    rep.pytest_runtest_logreport(_report(props=[("conformance_drift", '{"comparisons": 4, "drifted": 1}')]))
    rep.pytest_runtest_logreport(_report(when="teardown"))
    entry = rep.tests["test_x.py::test_p[cpu:0]"]
    assert entry["outcome"] == "drift" and entry["drift"] == {"comparisons": 4, "drifted": 1}
    assert entry["property"] == "test_p" and entry["params"] == "cpu:0"
