"""The gate's verdict on synthetic JUnit XML: parsing, the matrix, the change rules, accept files, reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from junit_helpers import (
    drifted,
    errored,
    failed,
    junit,
    ok,
    outcomes,
    skipped,
    xfailed,
    xpassed,
)

from conformance.gate import reports as gate_reports

# --- parsing and collapsing --------------------------------------------------------------------
from conformance.gate import verdict


@pytest.mark.parametrize("name, prop", [
    ("test_a[cpu:0]", "test_a"),
    ("test_a[gpu:3]", "test_a"),
    ("test_a", "test_a"),
    ("test_a[closure]", "test_a[closure]"),
    ("test_a[closure-cpu:1]", "test_a[closure]"),
])
def test_property_of_drops_only_the_device(name, prop):
    assert verdict.property_of(name) == prop


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
        drifted("test_oracle[cpu:0]"),
        drifted("test_exact", drifted=0),
    )
    got = outcomes(xml)
    assert got == {
        "test_pass[cpu:0]": verdict.PASS, "test_fail[cpu:0]": verdict.FAIL, "test_err": verdict.FAIL,
        "test_dev[cpu:0]": verdict.DEVIATION, "test_fixed": verdict.FIXED, "test_skip": verdict.SKIPPED,
        "test_own_xfail": verdict.SKIPPED, "test_golden_numerics": verdict.FAIL, "test_golden_structure": verdict.FAIL,
        "test_oracle[cpu:0]": verdict.DRIFT, "test_exact": verdict.PASS,
    }
    by_test = {r.test: r for r in verdict.parse_junit(xml)}
    assert by_test["test_golden_numerics"].category == "numerics change"
    assert by_test["test_golden_structure"].category == "structure change"
    assert by_test["test_skip"].message.startswith("flax.nnx.bridge.to_linen has no abstract_init")
    assert by_test["test_own_xfail"].message == "xfail: flaky upstream"
    assert by_test["test_fixed"].message.startswith("known deviation")
    assert by_test["test_oracle[cpu:0]"].drift["max_ulps"] == 2.0 and by_test["test_oracle[cpu:0]"].message == "y[0] 2 ulp"


def test_collapse_adds_drift_counts_and_keeps_the_largest():
    cells = verdict.collapse(verdict.parse_junit(junit(
        drifted("test_o[cpu:0]", drifted=1, comparisons=5, max_ulps=1.0, worst="a"),
        drifted("test_o[cpu:1]", drifted=2, comparisons=5, max_ulps=3.0, worst="b"), ok("test_o[gpu:0]"))))
    d = cells["test_o"].drift
    assert cells["test_o"].outcome == verdict.DRIFT and (d["comparisons"], d["drifted"], d["max_ulps"]) == (10, 3, 3.0)


def test_golden_error_is_a_failure_without_a_category():
    """An error while computing the record (not an assertion about it) is a plain failure."""
    assert outcomes(junit(errored("test_golden_numerics"))) == {"test_golden_numerics": verdict.FAIL}


def test_parse_reads_files_too(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(junit(ok("test_a[cpu:0]"), failed("test_a[cpu:1]")))
    assert [r.outcome for r in verdict.parse_junit(str(path))] == [verdict.PASS, verdict.FAIL]


def test_collapse_worst_wins_and_keeps_the_first_failing_message():
    results = verdict.parse_junit(junit(
        ok("test_a[cpu:0]"), failed("test_a[cpu:1]", "first"), failed("test_a[gpu:0]", "second"),
        skipped("test_b[cpu:0]"), ok("test_b[cpu:1]"),
        xfailed("test_c[cpu:0]"), xfailed("test_c[cpu:1]"),
    ))
    cells = verdict.collapse(results)
    assert list(cells) == ["test_a", "test_b", "test_c"]
    assert (cells["test_a"].outcome, cells["test_a"].message, cells["test_a"].tests) == (verdict.FAIL, "first", 3)
    assert cells["test_b"].outcome == verdict.SKIPPED
    assert cells["test_c"].outcome == verdict.DEVIATION


def test_build_matrix_fills_missing_cells_and_keeps_order():
    m = verdict.build_matrix({
        "base": verdict.parse_junit(junit(ok("test_a[cpu:0]"), ok("test_b"))),
        "cand": verdict.parse_junit(junit(ok("test_b"), ok("test_new"))),
        "broken": None,
    })
    assert m["properties"] == ["test_a", "test_b", "test_new"]
    assert m["cells"]["cand"]["test_a"].outcome == verdict.MISSING
    assert {c.outcome for c in m["cells"]["broken"].values()} == {verdict.MISSING}


# --- verdicts ---------------------------------------------------------------------------------------

BASE = junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), ok("test_b"), xfailed("test_c"), failed("test_d"),
             ok("test_golden_numerics"), ok("test_e"), ok("test_f"))


def decide(candidate_xml, base_xml=BASE, accepts=None, versions=None):
    m = verdict.build_matrix({"base": verdict.parse_junit(base_xml), "cand": verdict.parse_junit(candidate_xml)})
    return m, verdict.verdict(m, "base", ["cand"], versions={"cand": versions or {"flax": "0.12.0"}}, accepts=accepts)


def props(entries):
    return [e["property"] for e in entries]


def test_identical_results_exit_0():
    _, v = decide(BASE)
    comp = v["comparisons"][0]
    assert v["exit_code"] == 0 and not comp["differences"] and not comp["changes"]


def test_a_failure_on_one_device_is_a_change():
    m, v = decide(BASE.replace(ok("test_a[cpu:1]"), failed("test_a[cpu:1]", "y differs on cpu:1")))
    assert v["exit_code"] == 1
    comp = v["comparisons"][0]
    assert comp["regressed"] and props(comp["changes"]) == ["test_a"]
    assert comp["changes"][0]["kind"] == "now fails" and comp["changes"][0]["message"] == "y differs on cpu:1"
    assert "**FAIL (CHANGE)**" in gate_reports.to_markdown(m, v)


def test_pass_to_known_deviation_is_a_change_with_its_recorded_reason():
    m, v = decide(BASE.replace(ok("test_b"), xfailed("test_b", "known deviation (flax>=0.12): apply re-initialises (PR #4937)")))
    assert v["exit_code"] == 1
    (ch,) = v["comparisons"][0]["changes"]
    assert (ch["property"], ch["baseline"], ch["candidate"], ch["kind"]) == ("test_b", "pass", "deviation",
                                                                             "now a known deviation")
    assert ch["reason"] == "apply re-initialises (PR #4937)" and ch["evidence"] == "docs/known-deviations.md"
    md = gate_reports.to_markdown(m, v)
    assert "CHANGE `test_b`: pass -> deviation (now a known deviation); recorded reason: apply re-initialises" in md


def test_golden_numerics_beyond_the_error_model_is_a_change():
    _, v = decide(BASE.replace(ok("test_golden_numerics"),
                               failed("test_golden_numerics", "AssertionError: numerics change against r.json")))
    (ch,) = v["comparisons"][0]["changes"]
    assert v["exit_code"] == 1 and ch["kind"] == "numerics change"


def test_known_deviation_to_failure_is_a_change():
    _, v = decide(BASE.replace(xfailed("test_c"), failed("test_c")))
    assert v["exit_code"] == 1 and v["comparisons"][0]["changes"][0]["kind"] == "deviation now fails"


def test_drift_skip_fixed_and_improvements_pass_the_gate():
    cand = junit(ok("test_a"), ok("test_b"), xpassed("test_c"), ok("test_d"),
                 drifted("test_golden_numerics", drifted=4, comparisons=15, max_ulps=3.0),
                 skipped("test_e"), ok("test_f"))
    m, v = decide(cand)
    assert v["exit_code"] == 0
    comp = v["comparisons"][0]
    assert not comp["changes"]
    assert props(comp["drift"]) == ["test_golden_numerics"] and comp["drift"][0]["drift"]["drifted"] == 4
    assert props(comp["fixed"]) == ["test_c"]
    assert props(comp["improvements"]) == ["test_c", "test_d"]  # a deviation gone, a failure gone
    assert props(comp["skipped"]) == ["test_e"]
    assert set(props(comp["differences"])) == {"test_c", "test_d", "test_golden_numerics", "test_e"}
    md = gate_reports.to_markdown(m, v)
    assert "drift `test_golden_numerics` (baseline pass): 4 of 15 comparisons drift, at most 3 ulp" in md
    assert "improvement `test_d`: fail -> pass" in md and "fixed `test_c`" in md and "skipped `test_e`" in md


def test_a_deviation_that_goes_away_is_an_improvement():
    _, v = decide(BASE.replace(xfailed("test_c"), ok("test_c")))
    assert v["exit_code"] == 0 and props(v["comparisons"][0]["improvements"]) == ["test_c"]


def test_failing_on_both_sides_is_not_a_regression():
    _, v = decide(BASE.replace(ok("test_f"), failed("test_f")), BASE.replace(ok("test_f"), failed("test_f")))
    assert v["exit_code"] == 0


def test_a_property_missing_from_the_candidate_is_a_change():
    _, v = decide(BASE.replace(ok("test_f"), ""))
    assert v["exit_code"] == 1 and v["comparisons"][0]["changes"][0]["property"] == "test_f"


def test_any_regressing_candidate_fails_the_gate():
    bad = junit(failed("test_b"))
    m = verdict.build_matrix({"base": verdict.parse_junit(junit(ok("test_b"))), "good": verdict.parse_junit(junit(ok("test_b"))),
                           "bad": verdict.parse_junit(bad)})
    v = verdict.verdict(m, "base", ["good", "bad"])
    assert v["exit_code"] == 1 and [c["regressed"] for c in v["comparisons"]] == [False, True]


def test_sides_without_results_give_no_verdict():
    m = verdict.build_matrix({"base": verdict.parse_junit(BASE), "cand": None})
    assert verdict.verdict(m, "base", ["cand"], {"cand": "env would not build"})["exit_code"] == 2
    m = verdict.build_matrix({"base": None, "cand": verdict.parse_junit(BASE)})
    assert verdict.verdict(m, "base", ["cand"], {"base": "env would not build"})["exit_code"] == 2


def test_junit_report_has_one_testcase_per_property_and_candidate():
    base = verdict.parse_junit(junit(ok("test_a"), ok("test_b"), ok("test_c")))
    m = verdict.build_matrix({"base": base, "c1": verdict.parse_junit(junit(ok("test_a"), failed("test_b", 'say "x" & <y>'), skipped("test_c"))),
                           "c2": verdict.parse_junit(junit(ok("test_a"), ok("test_b"), ok("test_c")))})
    v = verdict.verdict(m, "base", ["c1", "c2"])
    root = ET.fromstring(gate_reports.to_junit(m, v))
    cases = root.findall("testcase")
    assert len(cases) == 6 and root.get("failures") == "1" and root.get("skipped") == "1"
    failing = [c for c in cases if c.find("failure") is not None]
    assert failing[0].get("classname") == "gate.c1" and failing[0].get("name") == "test_b"
    assert 'say "x" & <y>' in failing[0].find("failure").get("message")
    doc = gate_reports.to_json(m, v)
    json.dumps(doc)
    assert doc["matrix"]["c1"]["test_b"]["outcome"] == verdict.FAIL and doc["exit_code"] == 1


# --- accepted changes -----------------------------------------------------------------------------------

ACCEPT = """# changes our pipeline has been checked against
test_b | flax>=0.12,<0.13 | we never restore partial checkpoints (ticket 123)
test_a | flax>=0.12 jax<0.8 | kernel layout change reviewed
test_e | flax>=0.12 | nothing changes here
"""


@pytest.fixture
def accept_file(tmp_path):
    path = tmp_path / "accept.txt"
    path.write_text(ACCEPT)
    return str(path)


def test_accept_file_parses_like_known_deviations(accept_file):
    entries = verdict.load_accepts(accept_file)
    assert [(a.property, a.requirements, a.source.endswith(":2")) for a in entries][:2] == [
        ("test_b", ("flax>=0.12,<0.13",), True), ("test_a", ("flax>=0.12", "jax<0.8"), False)]


@pytest.mark.parametrize("line, word", [("test_b | flax>=0.12", "expected"), ("test_b | flax >= 0.12 | why", "not a pip requirement"),
                                        ("test_b | flax=>0.12 | why", "not a pip requirement")])
def test_bad_accept_lines_name_the_file_line_and_format(tmp_path, line, word):
    path = tmp_path / "a.txt"
    path.write_text("# c\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"a.txt:2: .*{word}"):
        verdict.load_accepts(str(path))


def test_an_accepted_change_passes_the_gate_and_is_listed(accept_file):
    cand = BASE.replace(ok("test_b"), xfailed("test_b")).replace(ok("test_a[cpu:1]"), failed("test_a[cpu:1]"))
    m, v = decide(cand, accepts=verdict.load_accepts(accept_file), versions={"flax": "0.12.0", "jax": "0.7.2"})
    comp = v["comparisons"][0]
    assert v["exit_code"] == 0 and not comp["changes"] and props(comp["accepted"]) == ["test_a", "test_b"]
    assert comp["accepted"][1]["accepted_by"].endswith("test_b | flax>=0.12,<0.13 | we never restore partial checkpoints (ticket 123)")
    assert [a.split(": ", 1)[1] for a in v["unmatched_accepts"]] == ["test_e | flax>=0.12 | nothing changes here"]
    md = gate_reports.to_markdown(m, v)
    assert "no change in behaviour (2 accepted)" in md and "accepted `test_b`: pass -> deviation" in md
    assert "warning: accept entry matched no change" in md and "| deviation (accepted) |" in md


def test_accept_entries_outside_their_range_accept_nothing(accept_file):
    cand = BASE.replace(ok("test_b"), xfailed("test_b")).replace(ok("test_a[cpu:1]"), failed("test_a[cpu:1]"))
    _, v = decide(cand, accepts=verdict.load_accepts(accept_file), versions={"flax": "0.13.0", "jax": "0.9.0"})
    comp = v["comparisons"][0]
    assert v["exit_code"] == 1 and props(comp["changes"]) == ["test_a", "test_b"] and not comp["accepted"]
    assert len(v["unmatched_accepts"]) == 3


def test_an_accept_entry_names_a_property_with_or_without_its_parameters():
    a = verdict.Accept("test_k", ("flax>=0.12",), "why", "f:1")
    assert a.matches("test_k[closure]", {"flax": "0.12.1"}) and a.matches("test_k", {"flax": "0.12.1"})
    assert not a.matches("test_kx", {"flax": "0.12.1"}) and not a.matches("test_k", {"jax": "0.12.1"})


def test_junit_report_fails_only_changes_not_accepted(accept_file):
    cand = BASE.replace(ok("test_b"), xfailed("test_b")).replace(ok("test_f"), failed("test_f", "boom"))
    m, v = decide(cand, accepts=verdict.load_accepts(accept_file))
    root = ET.fromstring(gate_reports.to_junit(m, v))
    failing = [c.get("name") for c in root.findall("testcase") if c.find("failure") is not None]
    assert failing == ["test_f"] and "pass on the baseline, fail on cand (now fails): boom" in \
        root.find("testcase[@name='test_f']/failure").get("message")
    assert json.loads(json.dumps(gate_reports.to_json(m, v)))["comparisons"][0]["accepted"][0]["property"] == "test_b"


def test_the_report_opens_with_the_verdict_and_names_failures_on_every_side():
    """test_d fails on both sides: no change, yet the summary names it; the matrix comes after the verdict."""
    m, v = decide(BASE.replace(ok("test_a[cpu:1]"), failed("test_a[cpu:1]", "y differs on cpu:1")))
    md = gate_reports.to_markdown(m, v)
    first = md.splitlines()[0]
    assert first == "Verdict: exit 1, a candidate changes or regresses.", first
    assert "- fails `test_d` on base, cand (every side: present before the upgrade too)" in md
    assert "- fails `test_a` on cand" in md
    assert md.index("CHANGE `test_a`") < md.index("| property |") < md.index("Exit code: 1")
    _, same = decide(BASE)
    assert "fails `test_d` on base, cand" in gate_reports.to_markdown(*decide(BASE)) and same["exit_code"] == 0


PREMISE = "premise: zoo_dropout (zoo): the class samples in evaluation mode natively (two stream keys, two outputs)"


@pytest.mark.parametrize("base, cand, word", [
    (ok("test_module_apply_is_pure[zoo_dropout]"), skipped("test_module_apply_is_pure[zoo_dropout]", PREMISE),
     "now skips this property because zoo_dropout (zoo): the class samples in evaluation mode natively"),
    (skipped("test_module_apply_is_pure[zoo_dropout]", PREMISE), ok("test_module_apply_is_pure[zoo_dropout]"),
     "the candidate's no longer does"),
])
def test_a_premise_that_flips_between_the_sides_is_a_change(base, cand, word):
    """A fact about the layer, taken from its class run natively, that holds on one side only: the layer changed."""
    matrix = verdict.build_matrix({"b": verdict.parse_junit(junit(base)), "c": verdict.parse_junit(junit(cand))})
    v = verdict.verdict(matrix, "b", ["c"])
    (change,) = v["comparisons"][0]["changes"]
    assert v["exit_code"] == 1 and change["kind"] == verdict.PREMISE_CHANGED and word in change["message"], change


@pytest.mark.parametrize("base, cand", [
    (skipped("test_module_apply_is_pure[zoo_dropout]", PREMISE), skipped("test_module_apply_is_pure[zoo_dropout]", PREMISE)),
    (ok("test_x"), skipped("test_x", "optax is not installed")),
])
def test_a_premise_that_holds_on_both_sides_and_other_skips_are_no_change(base, cand):
    matrix = verdict.build_matrix({"b": verdict.parse_junit(junit(base)), "c": verdict.parse_junit(junit(cand))})
    v = verdict.verdict(matrix, "b", ["c"])
    assert v["exit_code"] == 0 and not v["comparisons"][0]["changes"], v


def test_module_premise_skips_carry_the_mark_the_gate_reads():
    """Every skip of the module properties that rests on the native class goes through premise_skip."""
    import pathlib

    here = pathlib.Path(verdict.__file__).parents[1] / "properties" / "modules"
    for path in here.glob("test_*.py"):
        for line in path.read_text().splitlines():
            if "pytest.skip(" in line:
                assert "natively" not in line, f"{path.name}: a native premise skipped without the mark: {line.strip()}"
