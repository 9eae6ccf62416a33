"""Wrong usage of any command: exit 2 and one line naming the argument and its valid values, before any work."""

import os
import subprocess
import sys

import pytest
from cache_helpers import private_cache_env

from conformance.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, says", [
    ([], "no command given; commands: selfcheck, faults, record, gate"),
    (["--bogus"], "unknown command '--bogus'; commands: selfcheck, faults, record, gate"),
    (["selftest"], "unknown command 'selftest'; commands: selfcheck, faults, record, gate"),
    (["selfcheck", "--fault", "no_such_fault"], "--fault 'no_such_fault' is not a fault of the corpus; one of: apply_ignores_bias"),
    (["selfcheck", "--profile", "nope"], "--profile 'nope' is not a Hypothesis profile; one of: gate, dev"),
    (["selfcheck", "--jobs", "0"], "--jobs must be a positive int"),
    (["selfcheck", "--json", "/no/such/dir/x.json"], "--json '/no/such/dir/x.json': directory"),
    (["selfcheck", "--bogus"], "unrecognized arguments: --bogus"),
    (["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.7", "--profile", "nope"], "--profile 'nope'"),
    (["gate", "--baseline", "flax===", "--candidate", "flax==0.12.7"], "--baseline 'flax===' is not a pip requirement"),
    (["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.7", "--candidate-pytest-args", "--fault nope"],
     "--fault 'nope' is not a fault of the corpus"),
    (["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.7", "--jobs", "-1"], "--jobs must be a positive int"),
    (["gate", "--baseline", "flax==0.12.8", "--candidate", "flax==0.12.7", "--project", "/nonexistent"], "--project"),
    (["gate", "--baseline-requirements", "/no/such/file", "--candidate", "flax==0.12.7"], "no such file"),
])
def test_usage_errors_exit_2_with_one_line(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert exit_code(argv) == 2
    assert says in one_line_error(capsys)
    assert os.listdir(tmp_path) == []  # no report folder, nothing written


def exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors (unknown options)
        return exc.code


def test_gate_without_candidate_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gate", "--baseline", "flax==0.12.8"]) == 2
    assert "--candidate" in one_line_error(capsys)
    assert os.listdir(tmp_path) == []


def test_unknown_fault_under_pytest_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "-p", "conformance.faults",
                           "--fault", "no_such_fault", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 4, out  # pytest's usage error
    assert "INTERNALERROR" not in out
    assert "ERROR: --fault 'no_such_fault' is not a fault of the corpus; one of: " in out
    assert len(out.splitlines()) <= 2, out
    assert os.listdir(tmp_path) == []


def test_record_writes_under_the_cache_directory_and_says_where(tmp_path):
    """Without --out, record never writes into the installed package: the committed records stay as they are."""
    from conformance.core import config

    committed = {n: os.path.getmtime(os.path.join(config.RECORDS_DIR, n)) for n in os.listdir(config.RECORDS_DIR)
                 if n.endswith(".json")}
    env = private_cache_env(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-m", "conformance", "record"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [line.rsplit(" written to ", 1)[1] for line in proc.stdout.splitlines() if " written to " in line]
    assert len(written) == 2, proc.stdout
    for path in written:
        assert path.startswith(str(tmp_path / "cache" / "records")) and os.path.isfile(path), path
    assert {n: os.path.getmtime(os.path.join(config.RECORDS_DIR, n)) for n in committed} == committed


def test_gate_direction_reaches_every_sides_pytest():
    """gate --direction NAME: each side's pytest runs with --direction NAME, before the user's own --pytest-args."""
    from conformance.cli import parse_gate

    plan = parse_gate(["--baseline", "flax==0.12.7", "--candidate", "flax==0.12.8", "--direction", "to_nnx",
                       "--pytest-args=-x"])
    assert plan.pytest_args == ("--direction", "to_nnx", "-x")
    assert parse_gate(["--baseline", "flax==0.12.7", "--candidate", "flax==0.12.8"]).pytest_args == ()
