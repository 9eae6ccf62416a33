"""The upgrade gate's logic on synthetic JUnit XML: no environment is built, nothing is fetched."""

from __future__ import annotations

import io
import json
import os

import pytest
from junit_helpers import failed, junit, ok, xfailed

from conformance.core import config

# --- the command, with the environments faked ------------------------------------------------------------
from conformance.gate import envs
from conformance.gate import command as gate
from conformance.gate import verdict


def fake_record(side, env_python, out_dir, modules, timeout, logfile):
    """``envs.record_golden`` without an environment: the variables it would return."""
    return {config.GOLDEN_RECORD_ENV: os.path.join(out_dir, "contract.json"),
            config.ZOO_RECORD_ENV: os.path.join(out_dir, "zoo.json"), "RECORDED_IN": side.label}


@pytest.fixture
def fake_sides(monkeypatch, tmp_path):
    """``run_side`` answers from canned XML per flax version; the PyPI lookup is canned too."""
    canned = {
        "0.12.8": junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), xfailed("test_b")),
        "0.12.0": junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), xfailed("test_b")),
        "0.9.0": junit(ok("test_a[cpu:0]"), failed("test_a[cpu:1]", "kernel differs"), ok("test_b")),
    }
    calls = []

    def run_side(side, out_dir, cache_dir, python, project, profile, timeout, deps=None, prepare=None):
        calls.append((side.label, side.role, side.exclude_newer, tuple(side.pytest_args), profile))
        version = envs.pinned_version(side.requirements)
        if version not in canned:
            return {"label": side.label, "results": None, "error": "no such flax", "versions": {}, "pytest_args": []}
        if prepare is not None:
            prepare(side, "python", {"versions": {"flax": version}}, io.StringIO())
        return {"label": side.label, "results": verdict.parse_junit(canned[version]), "error": None,
                "versions": {"flax": version, "jax": "x"}, "pytest_args": side.pytest_args}

    monkeypatch.setattr(gate, "run_side", run_side)
    monkeypatch.setattr(envs, "record_golden", fake_record)
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))  # the suite's wheel goes there
    monkeypatch.setattr(envs, "pypi_upload_time", lambda pkg, v: {"0.12.8": "2026-07-20T18:29:38Z",
                                                                   "0.12.0": "2025-09-25T23:58:58Z",
                                                                   "0.9.0": "2024-08-27T17:51:42Z",
                                                                   "0.1.0": "2020-01-01T00:00:00Z"}[v])
    return calls


def test_gate_command_exit_codes(fake_sides, tmp_path, capsys):
    from conformance.cli import main

    out = tmp_path / "ok"
    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.0", "--out", str(out),
                 "--profile", "dev", "--jobs", "1"]) == 0
    assert ("flax-0.12.0", "candidate", "2025-09-26T23:59:59Z", (), "dev") in fake_sides
    printed = capsys.readouterr().out
    assert "| `test_a` | pass | pass |" in printed and "| `test_b` | deviation | deviation |" in printed
    assert sorted(os.listdir(out)) == ["gate-junit.xml", "gate.html", "gate.json", "gate.md"]

    out = tmp_path / "bad"
    code = main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.0", "--candidate", "flax==0.9.0",
                 "--out", str(out), "--candidate-pytest-args", "-p conformance.faults --fault apply_ignores_bias"])
    assert code == 1
    report = json.loads((out / "gate.json").read_text())
    assert report["exit_code"] == 1
    assert [c["regressed"] for c in report["comparisons"]] == [False, True]
    assert report["matrix"]["flax-0.9.0"]["test_a"] == {"outcome": "fail", "message": "kernel differs", "category": "",
                                                        "tests": 2, "drift": None, "fingerprint": ""}
    assert ("flax-0.9.0", "candidate", "2024-08-28T23:59:59Z", ("-p", "conformance.faults", "--fault", "apply_ignores_bias"), "gate") in fake_sides
    assert ("flax-0.12.8", "baseline", "2026-07-21T23:59:59Z", (), "gate") in fake_sides

    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.1.0", "--out", str(tmp_path / "e")]) == 2


def test_same_requirements_get_distinct_labels(fake_sides, tmp_path):
    from conformance.cli import main

    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.8", "--exclude-newer", "none",
                 "--out", str(tmp_path)]) == 0
    assert [c[:3] for c in fake_sides] == [("flax-0.12.8", "baseline", None), ("flax-0.12.8#2", "candidate", None)]


def test_requirements_files(fake_sides, tmp_path):
    from conformance.cli import main

    base, cand = tmp_path / "base.txt", tmp_path / "cand.txt"
    base.write_text("flax==0.12.8\n# a comment\noptax<0.3\n")
    cand.write_text("flax==0.12.0\n")
    assert main(["gate", "--baseline-requirements", str(base), "--candidate-requirements", str(cand),
                 "--out", str(tmp_path / "r")]) == 0
    assert [c[:3] for c in fake_sides] == [("flax-0.12.8", "baseline", "2026-07-21T23:59:59Z"),
                                           ("flax-0.12.0", "candidate", "2025-09-26T23:59:59Z")]


def test_usage_errors_exit_2(fake_sides, tmp_path, capsys):
    from conformance.cli import main

    assert main(["gate", "--candidate", "flax==0.12.0", "--out", str(tmp_path)]) == 2
    assert main(["gate", "--baseline", "flax==0.12.8", "--out", str(tmp_path)]) == 2
    assert main(["gate", "--baseline", "flax==7.7.7", "--candidate", "flax==0.12.0", "--out", str(tmp_path)]) == 2
    assert not fake_sides and "required" in capsys.readouterr().err


# --- changes, accept files, attribution and bisection, with a fake world of releases ------------------------

DATES = {"0.11.0": "2025-07-29T21:05:14Z", "0.11.1": "2025-08-08T21:26:09Z", "0.11.2": "2025-08-28T17:56:32Z",
         "0.12.0": "2025-09-25T23:58:58Z"}
JAX_AT = [("2025-07-01", "0.6.2"), ("2025-08-01", "0.7.0"), ("2025-08-20", "0.7.1"), ("2025-09-20", "0.7.2")]


def jax_of_time(exclude_newer):
    return [j for d, j in JAX_AT if d <= exclude_newer[:10]][-1]


def world_xml(flax, jax):
    """flax 0.12 re-initialises a missing leaf (a known deviation); jax 0.7.2 moved the golden numerics."""
    missing = xfailed("test_apply_rejects_missing_leaf", "known deviation (flax>=0.12): apply re-initialises a missing leaf") \
        if flax >= "0.12.0" else ok("test_apply_rejects_missing_leaf")
    golden = failed("test_golden_numerics", "AssertionError: numerics change against r.json") if jax >= "0.7.2" \
        else ok("test_golden_numerics")
    return junit(ok("test_apply_is_pure"), missing, golden)


@pytest.fixture
def fake_world(monkeypatch, tmp_path):
    runs = []

    def run_side(side, out_dir, cache_dir, python, project, profile, timeout, deps=None, prepare=None):
        flax = envs.pinned_version(side.requirements)
        jax = envs.pinned_version(side.requirements, "jax") or jax_of_time(side.exclude_newer)
        if prepare is not None:
            prepare(side, "python", {"versions": {"flax": flax, "jax": jax}}, io.StringIO())
        runs.append((side.role, flax, jax, side.exclude_newer, tuple(side.pytest_args), dict(side.env_vars)))
        return {"label": side.label, "results": verdict.parse_junit(world_xml(flax, jax)), "error": None,
                "versions": {"flax": flax, "jax": jax, "jaxlib": jax}, "pytest_args": side.pytest_args,
                "requirements": side.requirements, "exclude_newer": side.exclude_newer}

    monkeypatch.setattr(gate, "run_side", run_side)
    monkeypatch.setattr(envs, "record_golden", fake_record)
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))  # the suite's wheel goes there
    monkeypatch.setattr(envs, "pypi_upload_time", lambda pkg, v: DATES[v])
    monkeypatch.setattr(gate, "flax_releases", lambda: ["0.10.7", "0.11.0", "0.11.1", "0.11.2", "0.12.0"])
    return runs


def test_a_change_fails_the_gate_until_accepted(fake_world, tmp_path, capsys):
    from conformance.cli import main

    args = ["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--no-attribution"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 1
    printed = capsys.readouterr().out
    assert "CHANGE `test_apply_rejects_missing_leaf`: pass -> deviation (now a known deviation); " \
           "recorded reason: apply re-initialises a missing leaf; evidence: docs/known-deviations.md" in printed
    assert "CHANGE `test_golden_numerics`: pass -> fail (numerics change)" in printed

    accept = tmp_path / "accepted-changes.txt"
    accept.write_text("test_apply_rejects_missing_leaf | flax>=0.12,<0.13 | our checkpoints are complete\n"
                      "test_golden_numerics | jax>=0.7.2 | we re-baselined our outputs\n"
                      "test_apply_is_pure | flax>=0.12 | not changed: listed as unused\n")
    assert main(args + ["--out", str(tmp_path / "b"), "--accept", str(accept)]) == 0
    printed = capsys.readouterr().out
    assert "no change in behaviour (2 accepted)" in printed
    assert "accepted `test_apply_rejects_missing_leaf`: pass -> deviation" in printed
    assert "warning: accept entry matched no change" in printed and "test_apply_is_pure" in printed


def test_bad_accept_file_exits_2(fake_world, tmp_path, capsys):
    from conformance.cli import main

    bad = tmp_path / "accept.txt"
    bad.write_text("test_x | flax >= 0.12 | spaces inside\n")
    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--accept", str(bad),
                 "--out", str(tmp_path)]) == 2
    assert "accept.txt:1: requirements" in capsys.readouterr().err and not fake_world


def test_attribution_runs_only_the_changes_in_cross_environments(fake_world, tmp_path):
    from conformance.cli import main

    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--out", str(tmp_path),
                 "--pytest-args", "-x -k 'golden or pipeline_contract'"]) == 1
    cross = [r for r in fake_world if r[0] == "cross"]
    assert sorted(r[1:3] for r in cross) == [("0.11.2", "0.7.2"), ("0.12.0", "0.7.1")]
    assert {r[3] for r in cross} == {"2025-09-26T23:59:59Z"}  # the later side's date
    assert {r[4] for r in cross} == {("-x", "-k", "test_apply_rejects_missing_leaf or test_golden_numerics")}
    report = json.loads((tmp_path / "gate.json").read_text())
    origins = report["comparisons"][0]["origins"]
    assert origins["test_apply_rejects_missing_leaf"]["origin"] == "flax"
    assert origins["test_golden_numerics"]["origin"] == "jax"
    assert "origin of `test_golden_numerics`: **jax**" in (tmp_path / "gate.md").read_text()


def test_bisect_names_the_first_release_with_the_jax_of_its_time(fake_world, tmp_path):
    from conformance.cli import main

    assert main(["gate", "--baseline", "flax==0.11.0", "--candidate", "flax==0.12.0", "--bisect", "--no-attribution",
                 "--out", str(tmp_path)]) == 1
    bis = json.loads((tmp_path / "gate.json").read_text())["comparisons"][0]["bisection"]
    assert bis["test_apply_rejects_missing_leaf"]["first"] == "0.12.0"
    assert bis["test_golden_numerics"]["first"] == "0.12.0" and bis["test_golden_numerics"]["first_jax"] == "0.7.2"
    assert all(r[0] in ("baseline", "candidate", "bisect") and r[1] != "0.10.7" for r in fake_world)


def test_help_documents_the_exit_codes(capsys):
    from conformance.cli import main

    with pytest.raises(SystemExit):
        main(["gate", "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "0  safe" in out and "1  a candidate changes or regresses" in out and "2  no verdict" in out


@pytest.mark.parametrize("args, want", [
    (["-x", "-k", "golden"], ["-x", "-k", "test_a or test_b"]),
    (["-kgolden", "-q"], ["-q", "-k", "test_a or test_b"]),
    ([], ["-k", "test_a or test_b"]),
])
def test_extra_runs_replace_the_sides_k_with_the_changed_properties(args, want):
    assert gate.narrowed(args, ["test_b", "test_a[closure]"]) == want


def test_bisect_without_a_release_list_says_so_and_keeps_the_verdict(fake_world, tmp_path, monkeypatch):
    from conformance.cli import main

    def unreachable():
        raise LookupError("cannot list the releases of flax on PyPI: timed out")

    monkeypatch.setattr(gate, "flax_releases", unreachable)
    assert main(["gate", "--baseline", "flax==0.11.0", "--candidate", "flax==0.12.0", "--bisect", "--no-attribution",
                 "--out", str(tmp_path)]) == 1
    bis = json.loads((tmp_path / "gate.json").read_text())["comparisons"][0]["bisection"]
    assert {b["explanation"] for b in bis.values()} == {"cannot list the releases of flax on PyPI: timed out"}


def test_a_missing_accept_file_is_named(fake_world, tmp_path, capsys):
    from conformance.cli import main

    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--accept",
                 str(tmp_path / "nope.txt"), "--out", str(tmp_path)]) == 2
    assert "--accept " in capsys.readouterr().err and not fake_world


# --- the golden reference: the baseline's own records -------------------------------------------------------


def test_every_side_compares_golden_properties_with_the_baselines_records(fake_world, tmp_path):
    from conformance.cli import main

    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--out", str(tmp_path)]) == 1
    golden = str(tmp_path / "golden")
    want = {config.GOLDEN_RECORD_ENV: os.path.join(golden, "contract.json"),
            config.ZOO_RECORD_ENV: os.path.join(golden, "zoo.json"), "RECORDED_IN": "flax-0.11.2"}
    assert {r[0] for r in fake_world} == {"baseline", "candidate", "cross"}
    assert all(r[5] == want for r in fake_world)  # baseline, candidate and both cross environments
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["golden_reference"].startswith("the baseline's own records (flax-0.11.2: flax 0.11.2, jax 0.7.1)")
    assert "Golden properties compared against the baseline's own records" in (tmp_path / "gate.md").read_text()


def test_golden_committed_records_nothing(fake_world, tmp_path, monkeypatch):
    from conformance.cli import main

    monkeypatch.setattr(envs, "record_golden", lambda *a: pytest.fail("recorded under --golden committed"))
    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--golden", "committed",
                 "--no-attribution", "--out", str(tmp_path)]) == 1
    assert all(r[5] == {} for r in fake_world)
    assert json.loads((tmp_path / "gate.json").read_text())["golden_reference"] == "the committed records (--golden committed)"


def test_a_failed_recording_falls_back_to_the_committed_records_with_a_note(fake_world, tmp_path, monkeypatch, capsys):
    from conformance.cli import main

    def broken(*a):
        raise RuntimeError("python -m conformance record exited 1 in flax-0.11.2")

    monkeypatch.setattr(envs, "record_golden", broken)
    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--no-attribution",
                 "--out", str(tmp_path)]) == 1  # still a verdict
    assert all(r[5] == {} for r in fake_world)
    note = json.loads((tmp_path / "gate.json").read_text())["golden_reference"]
    assert note == "the committed records (recording the baseline's failed: python -m conformance record exited 1 in flax-0.11.2)"
    assert "note: golden reference: the committed records" in capsys.readouterr().err


def test_candidates_do_not_wait_for_a_baseline_that_never_built(monkeypatch, tmp_path):
    """The baseline fails before its prepare step: candidates are released, the gate gives no verdict (2)."""
    from conformance.cli import main

    def run_side(side, out_dir, cache_dir, python, project, profile, timeout, deps=None, prepare=None):
        if side.role == "baseline":
            return {"label": side.label, "results": None, "error": "no build", "versions": {}, "pytest_args": []}
        prepare(side, "python", {"versions": {}}, io.StringIO())  # would hang without the baseline's done-callback
        return {"label": side.label, "results": verdict.parse_junit(junit(ok("test_a"))), "error": None,
                "versions": {"flax": "0.12.0"}, "pytest_args": []}

    monkeypatch.setattr(gate, "run_side", run_side)
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.0", "--exclude-newer", "none",
                 "--jobs", "2", "--out", str(tmp_path)]) == 2
    assert "the baseline gave no environment" in json.loads((tmp_path / "gate.json").read_text())["golden_reference"]
