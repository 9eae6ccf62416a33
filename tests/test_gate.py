"""The upgrade gate's logic on synthetic JUnit XML: no environment is built, nothing is fetched."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest

from conformance import gate

# --- synthetic JUnit -------------------------------------------------------------------------


def junit(*cases: str) -> str:
    body = "".join(cases)
    return f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">{body}</testsuite></testsuites>'


def ok(name, cls="conformance.test_x"):
    return f'<testcase classname="{cls}" name="{name}" time="0.1" />'


def failed(name, message="AssertionError: y differs", cls="conformance.test_x"):
    return f'<testcase classname="{cls}" name="{name}"><failure message={quoteattr(message)}>traceback</failure></testcase>'


def errored(name, message='failed on setup with "RuntimeError: boom"'):
    return f'<testcase classname="conformance.test_x" name="{name}"><error message={quoteattr(message)}>tb</error></testcase>'


def xfailed(name, reason="known deviation (flax>=0.12): apply re-initialises"):
    return f'<testcase classname="conformance.test_x" name="{name}"><skipped type="pytest.xfail" message={quoteattr(reason)} /></testcase>'


def xpassed(name, reason="known deviation (flax>=0.12): apply re-initialises"):
    msg = f"[XPASS(strict)] {reason}"
    return f'<testcase classname="conformance.test_x" name="{name}"><failure message={quoteattr(msg)}>{escape(msg)}</failure></testcase>'


def skipped(name, reason="flax.nnx.bridge.to_linen has no abstract_init in this release"):
    return f'<testcase classname="conformance.test_x" name="{name}"><skipped type="pytest.skip" message={quoteattr(reason)}>where</skipped></testcase>'


def outcomes(xml):
    return {r.test: r.outcome for r in gate.parse_junit(xml)}


# --- parsing and collapsing --------------------------------------------------------------------


@pytest.mark.parametrize("name, prop", [
    ("test_a[cpu:0]", "test_a"),
    ("test_a[gpu:3]", "test_a"),
    ("test_a", "test_a"),
    ("test_a[closure]", "test_a[closure]"),
    ("test_a[closure-cpu:1]", "test_a[closure]"),
])
def test_property_of_drops_only_the_device(name, prop):
    assert gate.property_of(name) == prop


def test_parse_classifies_every_outcome():
    xml = junit(
        ok("test_pass[cpu:0]"),
        failed("test_fail[cpu:0]"),
        errored("test_err"),
        xfailed("test_dev[cpu:0]"),
        xpassed("test_fixed"),
        skipped("test_skip"),
        '<testcase classname="c" name="test_own_xfail"><skipped type="pytest.xfail" message="flaky upstream" /></testcase>',
        failed("test_golden_numerics", "AssertionError: numerics drift against flax-0.12.8_jax-0.10.2.json"),
        failed("test_golden_structure", "AssertionError: structure change against flax-0.12.8_jax-0.10.2.json"),
    )
    got = outcomes(xml)
    assert got == {
        "test_pass[cpu:0]": gate.PASS, "test_fail[cpu:0]": gate.FAIL, "test_err": gate.FAIL,
        "test_dev[cpu:0]": gate.DEVIATION, "test_fixed": gate.FIXED, "test_skip": gate.SKIPPED,
        "test_own_xfail": gate.SKIPPED, "test_golden_numerics": gate.DRIFT, "test_golden_structure": gate.DRIFT,
    }
    by_test = {r.test: r for r in gate.parse_junit(xml)}
    assert by_test["test_golden_numerics"].category == "numerics drift"
    assert by_test["test_golden_structure"].category == "structure change"
    assert by_test["test_skip"].message.startswith("flax.nnx.bridge.to_linen has no abstract_init")
    assert by_test["test_own_xfail"].message == "xfail: flaky upstream"
    assert by_test["test_fixed"].message.startswith("known deviation")


def test_golden_error_is_a_failure_not_drift():
    """An error while computing the record (not an assertion about it) is a plain failure."""
    assert outcomes(junit(errored("test_golden_numerics"))) == {"test_golden_numerics": gate.FAIL}


def test_parse_reads_files_too(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(junit(ok("test_a[cpu:0]"), failed("test_a[cpu:1]")))
    assert [r.outcome for r in gate.parse_junit(str(path))] == [gate.PASS, gate.FAIL]


def test_collapse_worst_wins_and_keeps_the_first_failing_message():
    results = gate.parse_junit(junit(
        ok("test_a[cpu:0]"), failed("test_a[cpu:1]", "first"), failed("test_a[gpu:0]", "second"),
        skipped("test_b[cpu:0]"), ok("test_b[cpu:1]"),
        xfailed("test_c[cpu:0]"), xfailed("test_c[cpu:1]"),
    ))
    cells = gate.collapse(results)
    assert list(cells) == ["test_a", "test_b", "test_c"]
    assert (cells["test_a"].outcome, cells["test_a"].message, cells["test_a"].tests) == (gate.FAIL, "first", 3)
    assert cells["test_b"].outcome == gate.SKIPPED
    assert cells["test_c"].outcome == gate.DEVIATION


def test_build_matrix_fills_missing_cells_and_keeps_order():
    m = gate.build_matrix({
        "base": gate.parse_junit(junit(ok("test_a[cpu:0]"), ok("test_b"))),
        "cand": gate.parse_junit(junit(ok("test_b"), ok("test_new"))),
        "broken": None,
    })
    assert m["properties"] == ["test_a", "test_b", "test_new"]
    assert m["cells"]["cand"]["test_a"].outcome == gate.MISSING
    assert {c.outcome for c in m["cells"]["broken"].values()} == {gate.MISSING}


# --- verdicts ---------------------------------------------------------------------------------------

BASE = junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), ok("test_b"), xfailed("test_c"), failed("test_d"),
             ok("test_golden_numerics"), ok("test_e"), ok("test_f"))


def decide(candidate_xml, base_xml=BASE):
    m = gate.build_matrix({"base": gate.parse_junit(base_xml), "cand": gate.parse_junit(candidate_xml)})
    return m, gate.verdict(m, "base", ["cand"])


def test_identical_results_exit_0():
    _, v = decide(BASE)
    assert v["exit_code"] == 0 and not v["comparisons"][0]["changes"]


def test_a_failure_on_one_device_is_a_regression():
    m, v = decide(junit(ok("test_a[cpu:0]"), failed("test_a[cpu:1]", "y differs on cpu:1"), ok("test_b"),
                        xfailed("test_c"), failed("test_d"), ok("test_golden_numerics"), ok("test_e"), ok("test_f")))
    assert v["exit_code"] == 1
    comp = v["comparisons"][0]
    assert comp["regressed"] and comp["regressions"] == [{"property": "test_a", "message": "y differs on cpu:1"}]
    assert "**FAIL (regression)**" in gate.to_markdown(m, v)


def test_deviation_drift_skip_and_fixed_are_not_regressions():
    cand = junit(ok("test_a"), xfailed("test_b"), xpassed("test_c"), failed("test_d"),
                 failed("test_golden_numerics", "AssertionError: numerics drift against r.json"),
                 skipped("test_e"), ok("test_f"))
    m, v = decide(cand)
    assert v["exit_code"] == 0
    comp = v["comparisons"][0]
    assert not comp["regressions"]
    assert comp["drift"] == [{"property": "test_golden_numerics", "category": "numerics drift",
                              "message": "AssertionError: numerics drift against r.json"}]
    assert [d["property"] for d in comp["new_deviations"]] == ["test_b"]
    assert [d["property"] for d in comp["fixed"]] == ["test_c"]
    assert {c["property"] for c in comp["changes"]} == {"test_b", "test_c", "test_golden_numerics", "test_e"}
    md = gate.to_markdown(m, v)
    assert "numerics drift `test_golden_numerics`" in md and "fixed `test_c`" in md and "skipped `test_e`" in md


def test_failing_on_both_sides_is_not_a_regression():
    _, v = decide(BASE.replace(ok("test_f"), failed("test_f")), BASE.replace(ok("test_f"), failed("test_f")))
    assert v["exit_code"] == 0


def test_a_property_missing_from_the_candidate_is_a_regression():
    _, v = decide(BASE.replace(ok("test_f"), ""))
    assert v["exit_code"] == 1 and v["comparisons"][0]["regressions"][0]["property"] == "test_f"


def test_any_regressing_candidate_fails_the_gate():
    bad = junit(failed("test_b"))
    m = gate.build_matrix({"base": gate.parse_junit(junit(ok("test_b"))), "good": gate.parse_junit(junit(ok("test_b"))),
                           "bad": gate.parse_junit(bad)})
    v = gate.verdict(m, "base", ["good", "bad"])
    assert v["exit_code"] == 1 and [c["regressed"] for c in v["comparisons"]] == [False, True]


def test_sides_without_results_give_no_verdict():
    m = gate.build_matrix({"base": gate.parse_junit(BASE), "cand": None})
    assert gate.verdict(m, "base", ["cand"], {"cand": "env would not build"})["exit_code"] == 2
    m = gate.build_matrix({"base": None, "cand": gate.parse_junit(BASE)})
    assert gate.verdict(m, "base", ["cand"], {"base": "env would not build"})["exit_code"] == 2


def test_junit_report_has_one_testcase_per_property_and_candidate():
    base = gate.parse_junit(junit(ok("test_a"), ok("test_b"), ok("test_c")))
    m = gate.build_matrix({"base": base, "c1": gate.parse_junit(junit(ok("test_a"), failed("test_b", 'say "x" & <y>'), skipped("test_c"))),
                           "c2": gate.parse_junit(junit(ok("test_a"), ok("test_b"), ok("test_c")))})
    v = gate.verdict(m, "base", ["c1", "c2"])
    root = ET.fromstring(gate.to_junit(m, v))
    cases = root.findall("testcase")
    assert len(cases) == 6 and root.get("failures") == "1" and root.get("skipped") == "1"
    failing = [c for c in cases if c.find("failure") is not None]
    assert failing[0].get("classname") == "gate.c1" and failing[0].get("name") == "test_b"
    assert 'say "x" & <y>' in failing[0].find("failure").get("message")
    doc = gate.to_json(m, v)
    json.dumps(doc)
    assert doc["matrix"]["c1"]["test_b"]["outcome"] == gate.FAIL and doc["exit_code"] == 1


# --- resolution dates --------------------------------------------------------------------------------


def test_exclude_newer_is_the_end_of_the_day_after_the_upload():
    assert gate.exclude_newer_after("2024-08-27T17:51:42.413523Z") == "2024-08-28T23:59:59Z"
    assert gate.exclude_newer_after("2025-09-25T23:58:58Z") == "2025-09-26T23:59:59Z"
    assert gate.exclude_newer_after("2024-12-31T23:00:00+00:00") == "2025-01-01T23:59:59Z"
    assert gate.exclude_newer_after("2024-03-01T01:00:00+02:00") == "2024-03-01T23:59:59Z"  # Feb 29 in UTC


def test_upload_time_comes_from_the_version_document():
    seen = []

    def fetch(url):
        seen.append(url)
        return {"urls": [{"upload_time_iso_8601": "2024-08-27T17:51:42.413523Z"}, {"upload_time_iso_8601": "later"}]}

    assert gate.pypi_upload_time("flax", "0.9.0", fetch) == "2024-08-27T17:51:42.413523Z"
    assert seen == ["https://pypi.org/pypi/flax/0.9.0/json"]


def test_upload_time_falls_back_to_the_project_document():
    def fetch(url):
        if url.endswith("/0.10.0/json"):
            raise OSError("HTTP Error 404: Not Found")
        return {"releases": {"0.10.0": [{"upload_time_iso_8601": "2024-10-16T23:26:23Z"}]}}

    assert gate.pypi_upload_time("flax", "0.10.0", fetch) == "2024-10-16T23:26:23Z"


def test_upload_time_of_an_unknown_version_is_an_error():
    with pytest.raises(LookupError):
        gate.pypi_upload_time("flax", "9.9.9", lambda url: {"urls": [], "releases": {}})


@pytest.mark.parametrize("reqs, version", [
    (["flax==0.9.0"], "0.9.0"), (["jax<0.5", "flax == 0.10.6"], "0.10.6"), (["flax[all]==0.11.2 ; python_version>'3'"], "0.11.2"),
    (["flax>=0.12"], None), (["flaxen==1.0"], None), (["# flax==1.0"], None),
])
def test_pinned_flax_version(reqs, version):
    assert gate.pinned_version(reqs) == version


def test_resolve_exclude_newer_modes():
    lookup = lambda pkg, v: {"0.9.0": "2024-08-27T17:51:42Z"}[v]  # noqa: E731
    assert gate.resolve_exclude_newer("auto", ["flax==0.9.0"], lookup)[0] == "2024-08-28T23:59:59Z"
    assert gate.resolve_exclude_newer("auto", ["flax>=0.10"], lookup)[0] is None
    assert gate.resolve_exclude_newer("none", ["flax==0.9.0"], lookup)[0] is None
    assert gate.resolve_exclude_newer("2025-01-02", ["flax==0.9.0"], lookup)[0] == "2025-01-02T23:59:59Z"
    assert gate.resolve_exclude_newer("2025-01-02T10:00:00Z", [], lookup)[0] == "2025-01-02T10:00:00Z"
    with pytest.raises(ValueError):
        gate.resolve_exclude_newer("yesterday", [], lookup)


def test_env_key_depends_on_what_is_installed():
    k = gate.env_key("3.11.7", ["flax==0.9.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")
    assert k == gate.env_key("3.11.7", ["flax==0.9.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")
    assert k != gate.env_key("3.11.7", ["flax==0.9.0"], ["jax>=0.4.27"], None)
    assert k != gate.env_key("3.12.1", ["flax==0.9.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")
    assert k != gate.env_key("3.11.7", ["flax==0.10.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")


# --- the command, with the environments faked ------------------------------------------------------------


@pytest.fixture
def fake_sides(monkeypatch, tmp_path):
    """``run_side`` answers from canned XML per flax version; the PyPI lookup is canned too."""
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))  # the suite's wheel goes there
    canned = {
        "0.12.8": junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), xfailed("test_b")),
        "0.12.0": junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), xfailed("test_b")),
        "0.9.0": junit(ok("test_a[cpu:0]"), failed("test_a[cpu:1]", "kernel differs"), ok("test_b")),
    }
    calls = []

    def run_side(side, out_dir, cache_dir, python, project, profile, timeout, deps=None):
        calls.append((side.label, side.role, side.exclude_newer, tuple(side.pytest_args), profile))
        version = gate.pinned_version(side.requirements)
        if version not in canned:
            return {"label": side.label, "results": None, "error": "no such flax", "versions": {}, "pytest_args": []}
        return {"label": side.label, "results": gate.parse_junit(canned[version]), "error": None,
                "versions": {"flax": version, "jax": "x"}, "pytest_args": side.pytest_args}

    monkeypatch.setattr(gate, "run_side", run_side)
    monkeypatch.setattr(gate, "pypi_upload_time", lambda pkg, v: {"0.12.8": "2026-07-20T18:29:38Z",
                                                                   "0.12.0": "2025-09-25T23:58:58Z",
                                                                   "0.9.0": "2024-08-27T17:51:42Z",
                                                                   "0.1.0": "2020-01-01T00:00:00Z"}[v])
    return calls


def test_gate_command_exit_codes(fake_sides, tmp_path, capsys):
    from conformance.__main__ import main

    out = tmp_path / "ok"
    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.0", "--out", str(out),
                 "--profile", "dev", "--jobs", "1"]) == 0
    assert ("flax-0.12.0", "candidate", "2025-09-26T23:59:59Z", (), "dev") in fake_sides
    printed = capsys.readouterr().out
    assert "| `test_a` | pass | pass |" in printed and "| `test_b` | deviation | deviation |" in printed
    assert sorted(os.listdir(out)) == ["gate-junit.xml", "gate.json", "gate.md"]

    out = tmp_path / "bad"
    code = main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.0", "--candidate", "flax==0.9.0",
                 "--out", str(out), "--candidate-pytest-args", "-p conformance.faults --fault apply_ignores_bias"])
    assert code == 1
    report = json.loads((out / "gate.json").read_text())
    assert report["exit_code"] == 1
    assert [c["regressed"] for c in report["comparisons"]] == [False, True]
    assert report["matrix"]["flax-0.9.0"]["test_a"] == {"outcome": "fail", "message": "kernel differs", "category": "", "tests": 2}
    assert ("flax-0.9.0", "candidate", "2024-08-28T23:59:59Z", ("-p", "conformance.faults", "--fault", "apply_ignores_bias"), "gate") in fake_sides
    assert ("flax-0.12.8", "baseline", "2026-07-21T23:59:59Z", (), "gate") in fake_sides

    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.1.0", "--out", str(tmp_path / "e")]) == 2


def test_same_requirements_get_distinct_labels(fake_sides, tmp_path):
    from conformance.__main__ import main

    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.8", "--exclude-newer", "none",
                 "--out", str(tmp_path)]) == 0
    assert [c[:3] for c in fake_sides] == [("flax-0.12.8", "baseline", None), ("flax-0.12.8#2", "candidate", None)]


def test_requirements_files(fake_sides, tmp_path):
    from conformance.__main__ import main

    base, cand = tmp_path / "base.txt", tmp_path / "cand.txt"
    base.write_text("flax==0.12.8\n# a comment\noptax<0.3\n")
    cand.write_text("flax==0.12.0\n")
    assert main(["gate", "--baseline-requirements", str(base), "--candidate-requirements", str(cand),
                 "--out", str(tmp_path / "r")]) == 0
    assert [c[:3] for c in fake_sides] == [("flax-0.12.8", "baseline", "2026-07-21T23:59:59Z"),
                                           ("flax-0.12.0", "candidate", "2025-09-26T23:59:59Z")]


def test_usage_errors_exit_2(fake_sides, tmp_path, capsys):
    from conformance.__main__ import main

    assert main(["gate", "--candidate", "flax==0.12.0", "--out", str(tmp_path)]) == 2
    assert main(["gate", "--baseline", "flax==0.12.8", "--out", str(tmp_path)]) == 2
    assert main(["gate", "--baseline", "flax==7.7.7", "--candidate", "flax==0.12.0", "--out", str(tmp_path)]) == 2
    assert not fake_sides and "required" in capsys.readouterr().err
