"""Sides run apart and merged give the single-process gate's verdict and reports (synthetic sides: no environment)."""

from __future__ import annotations

import io
import json
import os
import re

import pytest
from junit_helpers import drifted, failed, junit, ok, skipped, xfailed

from conformance.core import config
from conformance.gate import command as gate
from conformance.gate import envs, verdict

# Per flax version: what its side's suite reports. 0.12.0 changes two properties against 0.11.2; 0.12.8 against 0.12.7 nothing.
XML = {
    "0.11.2": junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), ok("test_golden_numerics"), ok("test_leaf"),
                    skipped("test_abstract"), ok("test_drift")),
    "0.12.0": junit(ok("test_a[cpu:0]"), failed("test_a[cpu:1]", "AssertionError: y[0]=1.001, but should be 1.0"),
                    failed("test_golden_numerics", "AssertionError: numerics changed against contract.json"),
                    xfailed("test_leaf", "known deviation (flax>=0.12): apply re-initialises a missing leaf"),
                    skipped("test_abstract"), drifted("test_drift")),
    "0.12.7": junit(ok("test_a[cpu:0]"), ok("test_a[cpu:1]"), ok("test_golden_numerics"),
                    xfailed("test_leaf", "known deviation (flax>=0.12): apply re-initialises a missing leaf"),
                    skipped("test_abstract"), ok("test_drift")),
}
XML["0.12.8"] = XML["0.12.7"]
JAX = {"0.11.2": "0.7.1", "0.12.0": "0.7.2", "0.12.7": "0.10.0", "0.12.8": "0.10.2"}  # the jax of each side's date
DATES = {"0.11.2": "2025-08-01T00:00:00Z", "0.12.0": "2025-09-25T23:58:58Z", "0.12.7": "2026-06-01T00:00:00Z",
         "0.12.8": "2026-07-20T18:29:38Z"}


@pytest.fixture
def fake_sides(monkeypatch, tmp_path):
    """``run_side`` writes a side's JUnit XML and log as the real one does; recording writes golden files."""
    seen = []

    def run_side(side, out_dir, cache_dir, python, project, profile, timeout, deps=None, prepare=None):
        flax = envs.pinned_version(side.requirements)
        jax = envs.pinned_version(side.requirements, "jax") or JAX[flax]  # a cross environment pins it
        info = {"label": side.label, "role": side.role, "requirements": side.requirements,
                "exclude_newer": side.exclude_newer, "exclude_newer_note": side.exclude_newer_note,
                "pytest_args": side.pytest_args, "log": os.path.join(out_dir, f"{side.label}.log"), "results": None,
                "error": None, "versions": {"flax": flax, "jax": jax, "jaxlib": jax}, "sources": [],
                "env": os.path.join(cache_dir, side.label), "seconds": 1.5, "build_seconds": 0.5, "run_seconds": 1.0}
        if prepare is not None:
            prepare(side, "python", info, io.StringIO())
        seen.append((side.label, dict(side.env_vars), cache_dir, side.role))
        xml = os.path.join(out_dir, f"{side.label}.xml")
        with open(xml, "w") as fh:
            fh.write(XML[flax])
        with open(info["log"], "w") as fh:
            fh.write(f"log of {side.label}\n")
        info.update(junit=xml, pytest_exit_code=0, results=verdict.parse_junit(XML[flax]))
        return info

    def record_golden(side, env_python, out_dir, modules, timeout, logfile):
        os.makedirs(os.path.join(out_dir, "checkpoints", "contract-2x5"), exist_ok=True)
        found = {}
        for var, name in ((config.GOLDEN_RECORD_ENV, "contract.json"), (config.ZOO_RECORD_ENV, "zoo.json")):
            with open(os.path.join(out_dir, name), "w") as fh:
                fh.write(f'{{"recorded_in": "{side.label}"}}')
            found[var] = os.path.join(out_dir, name)
        found[config.CHECKPOINT_DIR_ENV] = os.path.join(out_dir, "checkpoints")
        return found

    monkeypatch.setattr(gate, "run_side", run_side)
    monkeypatch.setattr(envs, "record_golden", record_golden)
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(envs, "pypi_upload_time", lambda pkg, v: DATES[v])
    return seen


TIMINGS = ("seconds", "build_seconds", "run_seconds", "wall_seconds")


def normalised(path, *dirs) -> str:
    """A report's text with the directories involved replaced and timings zeroed."""
    text = open(path).read()
    for i, d in enumerate(dirs):
        text = text.replace(str(d), f"<DIR{i}>")
    return re.sub(r'"(%s)": [0-9.]+' % "|".join(TIMINGS), r'"\1": 0', text)


@pytest.mark.parametrize("baseline, candidate, code, extra", [("0.11.2", "0.12.0", 1, []),
                                                            ("0.11.2", "0.12.0", 1, ["--no-attribution"]),
                                                            ("0.12.7", "0.12.8", 0, [])])
def test_sides_apart_then_merged_equal_the_single_process_gate(fake_sides, tmp_path, baseline, candidate, code, extra):
    from conformance.cli import main

    common = ["--baseline", f"flax=={baseline}", "--candidate", f"flax=={candidate}", "--profile", "dev", *extra]
    single = tmp_path / "single"
    assert main(["gate", *common, "--out", str(single), "--cache-dir", str(tmp_path / "cache-single")]) == code

    base_dir, cand_dir, merged = tmp_path / "job-baseline", tmp_path / "job-candidate", tmp_path / "merged"
    assert main(["gate", *common, "--side", "baseline", "--out", str(base_dir),
                 "--cache-dir", str(tmp_path / "cache-a")]) == 0
    assert main(["gate", *common, "--side", "candidate:1", "--golden-from", str(base_dir), "--out", str(cand_dir),
                 "--cache-dir", str(tmp_path / "cache-b")]) == 0
    # The candidate's job compared against the baseline job's records and checkpoints, shipped in its directory.
    cand_env = next(env for label, env, _, _ in fake_sides[-1:] if label == f"flax-{candidate}")
    assert cand_env[config.GOLDEN_RECORD_ENV] == str(base_dir / "golden" / "contract.json")
    assert cand_env[config.CHECKPOINT_DIR_ENV] == str(base_dir / "golden" / "checkpoints")
    assert main(["merge", str(cand_dir), str(base_dir), "--out", str(merged),  # any order of directories
                 "--cache-dir", str(tmp_path / "cache-single")]) == code

    for name in ("gate.md", "gate.json", "gate-junit.xml", "gate.html"):
        want = normalised(single / name, single, tmp_path / "cache-single")
        got = normalised(merged / name, merged, tmp_path / "cache-a", tmp_path / "cache-b").replace("<DIR2>", "<DIR1>")
        assert got == want, name
    assert (merged / "golden" / "contract.json").exists() and (merged / "golden" / "checkpoints").is_dir()
    report = json.loads((merged / "gate.json").read_text())
    assert report["exit_code"] == code
    traced = [c.get("origins") for c in report["comparisons"] if c.get("origins")]
    assert bool(traced) == (code == 1 and not extra)  # the merge traced the changes when the command asked for it
    if traced:
        assert {o["origin"] for o in traced[0].values()} == {"flax"}
        # The cross environments compared against the baseline job's records, copied beside the merged report.
        cross = [env for label, env, _, role in fake_sides if role == "cross"]
        assert cross and all(env.get(config.GOLDEN_RECORD_ENV, "").startswith(str(tmp_path)) for env in cross)
        assert any(env[config.GOLDEN_RECORD_ENV] == str(merged / "golden" / "contract.json") for env in cross)


def test_a_side_whose_job_never_reported_means_no_verdict(fake_sides, tmp_path, capsys):
    from conformance.cli import main

    common = ["--baseline", "flax==0.12.7", "--candidate", "flax==0.12.0", "--candidate", "flax==0.12.8",
              "--no-attribution"]  # 0.12.8 reports no change; 0.12.0's job never reports
    assert main(["gate", *common, "--side", "baseline", "--out", str(tmp_path / "b")]) == 0
    assert main(["gate", *common, "--side", "flax-0.12.8", "--golden-from", str(tmp_path / "b"),
                 "--out", str(tmp_path / "c2")]) == 0
    assert main(["merge", str(tmp_path / "b"), str(tmp_path / "c2"), "--out", str(tmp_path / "m")]) == 2
    report = json.loads((tmp_path / "m" / "gate.json").read_text())
    assert report["errors"] == {"flax-0.12.0": f"no side report for flax-0.12.0 in {tmp_path / 'b'}, {tmp_path / 'c2'}"}


def test_side_usage_errors_name_the_argument(fake_sides, tmp_path, capsys):
    from conformance.cli import main

    common = ["--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0"]
    assert main(["gate", *common, "--side", "candidate"]) == 2
    assert "--side candidate compares against the baseline's golden records: give --golden-from DIR" in capsys.readouterr().err
    assert main(["gate", *common, "--side", "candidate:3", "--golden", "committed", "--out", str(tmp_path / "x")]) == 2
    assert "--side candidate:3: there are 1 candidates (candidate:1 to candidate:1)" in capsys.readouterr().err
    assert main(["gate", *common, "--side", "candidate", "--golden-from", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert f"--golden-from {str(tmp_path)!r}: no baseline side report" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "nowhere")]) == 2
    assert "'" + str(tmp_path / "nowhere") + "': no such directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["merge", str(empty), "--out", str(tmp_path / "m")]) == 2
    assert "no side reports (side-*.json) in" in capsys.readouterr().err


def test_merging_reports_of_two_different_gates_is_refused(fake_sides, tmp_path, capsys):
    from conformance.cli import main

    assert main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--side", "baseline",
                 "--no-attribution", "--out", str(tmp_path / "a")]) == 0
    assert main(["gate", "--baseline", "flax==0.12.7", "--candidate", "flax==0.12.0", "--side", "baseline",
                 "--no-attribution", "--out", str(tmp_path / "b")]) == 0
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "the side reports come from different gate commands" in capsys.readouterr().err
