"""The gate's checkpoint step: the baseline saves every module's variables with orbax, every side restores them."""

from __future__ import annotations

import os
import subprocess
import sys

from conformance.core import config
from conformance.gate import envs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_baseline_records_checkpoints_and_every_side_is_pointed_at_them(tmp_path, monkeypatch):
    seen = []

    def fake_run(side, python, cmd, timeout, logfile):
        seen.append(cmd)
        out = cmd[cmd.index("--out") + 1]
        open(out, "w").close()
        open(cmd[cmd.index("--zoo-out") + 1], "w").close()
        os.makedirs(cmd[cmd.index("--checkpoint-out") + 1])
        return 0

    monkeypatch.setattr(envs, "run_in_env", fake_run)
    found = envs.record_golden(envs.Side("flax-0.12.7", "baseline", ["flax==0.12.7"]), "python", str(tmp_path), [], None, None)
    assert found[config.CHECKPOINT_DIR_ENV] == str(tmp_path / "checkpoints")
    assert "--checkpoint-out" in seen[0]


def _suite(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
                           "-k", "test_checkpoint_restores", "-rf", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)


def test_a_candidate_whose_tree_changed_fails_to_restore_the_baselines_checkpoint(tmp_path):
    """Saved by the real bridge, restored by one whose params are float16: the change is named, with who saved it."""
    ckpt = str(tmp_path / "checkpoints")
    record = subprocess.run([sys.executable, "-m", "conformance", "record", "--out", str(tmp_path / "c.json"),
                             "--zoo-out", str(tmp_path / "z.json"), "--checkpoint-out", ckpt],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert record.returncode == 0, record.stderr[-2000:]
    same = _suite({config.CHECKPOINT_DIR_ENV: ckpt})
    assert same.returncode == 0, same.stdout[-3000:]
    changed = _suite({config.CHECKPOINT_DIR_ENV: ckpt}, "-p", "conformance.faults", "--fault", "params_float16")
    assert changed.returncode == 1, changed.stdout[-3000:]
    assert "saved by flax" in changed.stdout and "the restore converted it" in changed.stdout, changed.stdout[-3000:]
