"""The gate's report of new public surface and new warnings, on two synthetic sides: no environment is built.

The candidate adds a keyword to ``to_linen`` and a DeprecationWarning on init; its properties all pass. The report
names both; the exit code is 0, and 1 with ``--fail-on-new-warnings``.
"""

from __future__ import annotations

import io
import json
import os
from xml.sax.saxutils import quoteattr

import pytest
from junit_helpers import ok

from conformance.core import surface as inventory
from conformance.core import warnrecords
from conformance.gate import command as gate
from conformance.gate import envs
from conformance.gate import surface
from conformance.gate import verdict

WARNING = {"category": "DeprecationWarning", "message": "ToLinen.init: this form of init is deprecated",
           "where": "flax/nnx/bridge/wrappers.py:330", "count": 3}
OLD = {"category": "UserWarning", "message": "Found unknown module paths in incoming state:",
       "where": "flax/nnx/bridge/wrappers.py:375", "count": 1}


def warned(name, *records, cls="conformance.test_x"):
    value = json.dumps(list(records))
    return (f'<testcase classname="{cls}" name="{name}"><properties>'
            f'<property name="{warnrecords.PROPERTY}" value={quoteattr(value)} /></properties></testcase>')


def side_xml(surface_record: dict, *cases: str) -> str:
    prop = f'<property name="{surface.SURFACE_PROPERTY}" value={quoteattr(json.dumps(surface_record))} />'
    return (f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"><properties>{prop}'
            f'</properties>{"".join(cases)}</testsuite></testsuites>')


BASE_SURFACE = inventory.at("0.12.8")
CAND_SURFACE = {**BASE_SURFACE, "to_linen": BASE_SURFACE["to_linen"][:-1] + ["lazy", "**kwargs"]}
BASELINE = side_xml(BASE_SURFACE, ok("test_a[cpu:0]"), ok("test_deterministic[cpu:0]"), warned("test_apply_flags_unknown_leaf[cpu:0]", OLD))
CANDIDATE = side_xml(CAND_SURFACE, ok("test_a[cpu:0]"), warned("test_apply_flags_unknown_leaf[cpu:0]", OLD),
                     warned("test_deterministic[cpu:0]", WARNING), warned("test_deterministic[cpu:1]", WARNING))


def test_read_side_finds_the_surface_and_each_warning_with_its_properties():
    side = surface.read_side(CANDIDATE)
    assert side["surface"] == CAND_SURFACE
    rec = side["warnings"][warnrecords.key(WARNING)]
    assert rec["properties"] == ["test_deterministic"] and rec["where"] == WARNING["where"]
    assert surface.read_side("<not xml") == {"surface": None, "warnings": {}}


def test_surface_diff_names_the_added_keyword_and_no_property_covering_it():
    (entry,) = inventory.diff(BASE_SURFACE, CAND_SURFACE)
    assert entry == {"record": "to_linen", "change": "added", "name": "lazy", "covered_by": []}
    moved = {**BASE_SURFACE, "ToLinen": ["nnx_class", "args", "kwargs", "metadata_fn", "skip_rng"]}
    assert [e["change"] for e in inventory.diff(BASE_SURFACE, moved)] == ["reordered"]
    assert inventory.diff(None, CAND_SURFACE) == []  # an older suite reported no surface: nothing to say


@pytest.fixture
def two_sides(monkeypatch, tmp_path):
    """``run_side`` answers with the canned XML, written where a real side writes its JUnit."""
    canned = {"0.12.8": BASELINE, "0.13.0": CANDIDATE}

    def run_side(side, out_dir, cache_dir, python, project, profile, timeout, deps=None, prepare=None):
        version = envs.pinned_version(side.requirements)
        path = os.path.join(out_dir, f"{side.label}.xml")
        with open(path, "w") as fh:
            fh.write(canned[version])
        if prepare is not None:
            prepare(side, "python", {"versions": {"flax": version}}, io.StringIO())
        return {"label": side.label, "role": side.role, "requirements": side.requirements,
                "results": verdict.parse_junit(canned[version]), "error": None, "junit": path, "sources": [],
                "versions": {"flax": version, "jax": "x"}, "pytest_args": side.pytest_args, "seconds": 1.0}

    monkeypatch.setattr(gate, "run_side", run_side)
    monkeypatch.setattr(envs, "record_golden", lambda *a, **k: {})
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(envs, "pypi_upload_time", lambda pkg, v: {"0.12.8": "2026-07-20T18:29:38Z",
                                                                   "0.13.0": "2026-09-01T00:00:00Z",
                                                                   "0.1.0": "2020-01-01T00:00:00Z"}[v])


@pytest.mark.parametrize("flag, code", [((), 0), (("--fail-on-new-warnings",), 1)])
def test_gate_reports_new_surface_and_new_warnings(two_sides, tmp_path, capsys, flag, code):
    from conformance.cli import main

    out = tmp_path / "report"
    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.13.0", "--out", str(out),
                 "--no-attribution", *flag]) == code
    md = (out / "gate.md").read_text()
    assert "surface added to_linen: lazy (surface no property covers yet): information, not a failure" in md
    assert "new warning DeprecationWarning: ToLinen.init: this form of init is deprecated " \
           "(at flax/nnx/bridge/wrappers.py:330), seen by `test_deterministic`" in md
    assert "UserWarning" not in md  # the baseline saw it too: not new
    page = (out / "gate.html").read_text()  # the page people look at says it too, under its own heading
    beside = page.split('<h2 id="beside">Surface and warnings</h2>')[1].split("<h2>")[0]
    assert "surface added to_linen: lazy (surface no property covers yet): information, not a failure" in beside
    assert "new warning DeprecationWarning: ToLinen.init: this form of init is deprecated" in beside
    assert "<code>test_deterministic</code>" in beside
    report = json.loads((out / "gate.json").read_text())
    (comp,) = report["comparisons"]
    assert [w["message"] for w in comp["new_warnings"]] == [WARNING["message"]]
    assert report["exit_code"] == code
    kinds = [c["kind"] for c in comp["changes"]]
    assert kinds == ([surface.NEW_WARNING] if flag else [])
    if flag:
        assert "CHANGE `test_deterministic`: no such warning -> warns (new warning)" in md
        junit = (out / "gate-junit.xml").read_text()
        assert 'name="test_deterministic"><failure message="change: no such warning on the baseline' in junit


@pytest.mark.parametrize("flag, code", [((), 0), (("--fail-on-new-warnings",), 1)])
def test_sides_apart_then_merged_report_the_same(two_sides, tmp_path, flag, code):
    """One job per side, then ``merge``: the flag travels with the sides' command, the JUnit XMLs with their reports."""
    from conformance.cli import main

    common = ["--baseline", "flax==0.12.8", "--candidate", "flax==0.13.0", "--no-attribution", "--golden", "committed",
              *flag]
    assert main(["gate", *common, "--side", "baseline", "--out", str(tmp_path / "b")]) == 0
    assert main(["gate", *common, "--side", "candidate:1", "--out", str(tmp_path / "c")]) == 0
    assert main(["merge", str(tmp_path / "b"), str(tmp_path / "c"), "--out", str(tmp_path / "m")]) == code
    md = (tmp_path / "m" / "gate.md").read_text()
    assert "surface added to_linen: lazy (surface no property covers yet)" in md
    assert "new warning DeprecationWarning: ToLinen.init: this form of init is deprecated" in md
