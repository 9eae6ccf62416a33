"""The suite as the gate installs it: a wheel of the running suite, and the environment builders."""

import base64
import hashlib
import io
import zipfile

from conformance.gate import dist
from conformance.gate import envs
from conformance.gate import sides


def test_wheel_holds_the_running_suite_and_its_plugin_entry_point():
    name, data = dist.wheel_bytes()
    assert name == f"flax_bridge_conformance-{dist.distribution().version}-py3-none-any.whl"
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = set(zf.namelist())
    info = name.split("-py3")[0] + ".dist-info"
    for needed in ("conformance/reporting/plugin.py", "conformance/known_deviations.txt", "conformance/properties/contract/test_shape.py",
                   "reference/__init__.py", f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(n.startswith("conformance/records/") and n.endswith(".json") for n in names)
    assert "conformance = conformance.reporting.plugin" in zf.read(f"{info}/entry_points.txt").decode()
    # RECORD matches the contents (installers may check it).
    for line in zf.read(f"{info}/RECORD").decode().splitlines():
        path, digest, size = line.rsplit(",", 2)
        if digest:
            blob = zf.read(path)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(blob).digest()).rstrip(b"=").decode()
            assert int(size) == len(blob)


def test_wheel_is_reproducible(tmp_path):
    a = dist.suite_wheel(str(tmp_path))
    b = dist.suite_wheel(str(tmp_path))
    assert a == b and a.startswith(str(tmp_path))


def test_dependencies_leave_out_extras_and_the_gate_tools():
    deps = dist.dependencies()
    names = {dist._name(d) for d in deps}
    assert {"flax", "jax", "hypothesis", "pytest"} <= names
    assert "uv" not in names  # the gate's tool, not the suite's
    assert not [d for d in deps if "extra ==" in d]


def test_without_uv_the_gate_uses_venv_and_pip(monkeypatch, tmp_path):
    import subprocess
    import sys

    calls = []

    def fake_run(cmd, logfile, **kw):
        calls.append(cmd)
        if "venv" in cmd:  # the environment's directory appears
            (tmp_path / cmd[-1]).mkdir(parents=True, exist_ok=True)

    real = subprocess.run

    def fake_subprocess_run(cmd, *a, **kw):  # the version probes answer for the env
        if cmd[0].startswith(str(tmp_path)):
            return subprocess.CompletedProcess(cmd, 0, stdout='{"flax": "0.12.8", "python": "3.11.7"}', stderr="")
        return real(cmd, *a, **kw)

    monkeypatch.setattr(envs, "find_uv", lambda: None)
    monkeypatch.setattr(envs, "_run", fake_run)
    monkeypatch.setattr(envs.subprocess, "run", fake_subprocess_run)
    side = envs.Side("flax-0.12.8", "baseline", ["flax==0.12.8"], exclude_newer="2026-07-21T23:59:59Z")
    with open(tmp_path / "log", "w") as log:
        env_python, versions = envs.build_env(side, str(tmp_path / "envs"), sys.executable, "/x/suite.whl", log,
                                              deps=["jax>=0.4.27"])
    assert calls[0] == [sys.executable, "-m", "venv", calls[0][-1]]
    assert calls[1][0].endswith("/bin/python") and calls[1][1:4] == ["-m", "pip", "install"]  # the venv's own pip
    assert "flax==0.12.8" in calls[1] and "jax>=0.4.27" in calls[1]
    assert "--exclude-newer" not in calls[1]  # pip cannot date the resolution; the note says so
    assert calls[2][0] == env_python and calls[2][-1] == "/x/suite.whl" and "--no-deps" in calls[2]
    assert versions["flax"] == "0.12.8"


def test_a_side_that_cannot_be_built_shows_its_log_tail(monkeypatch, tmp_path, capsys):
    def failing_build(side, cache_dir, python, project, logfile, deps=None):
        logfile.write("resolving...\nerror: No solution found when resolving dependencies: flax==9.9.9\n")
        logfile.flush()
        raise RuntimeError("uv pip install ... exited 1")

    monkeypatch.setattr(sides, "build_env", failing_build)
    side = sides.Side("flax-9.9.9", "candidate", ["flax==9.9.9"])
    info = sides.run_side(side, str(tmp_path), str(tmp_path / "envs"), "python", "/x/suite.whl", "gate", None, [])
    assert info["results"] is None and "exited 1" in info["error"]
    err = capsys.readouterr().err
    assert "NO RESULTS" in err and "No solution found when resolving dependencies: flax==9.9.9" in err
